"""Forward/gradient hooks that pool layer outputs and their gradients into per-sample descriptors."""

from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torch_al.ops.pool_features import pool_features, pool_features_into

CaptureKind = Literal["features", "gradients", "both"]
_CAPTURE_KINDS = ("features", "gradients", "both")
LossFn = Callable[[Tensor, Tensor], Tensor]
Tokens = Literal["mean", "first"]
TOKEN_POOLINGS = ("mean", "first")


def layer_tensor(name: str, output) -> Tensor:
    """A hooked layer's output as one Tensor: the output itself, or the first item of a tuple, a
    list or a Hugging Face ``ModelOutput`` when that item is a Tensor (their layers return the
    hidden states first, e.g. an attention block's ``(output, weights)``)."""
    if isinstance(output, Tensor):
        return output
    items = list(output.values()) if isinstance(output, Mapping) else output if isinstance(output, (tuple, list)) else []
    if items and isinstance(items[0], Tensor):
        return items[0]
    first = f" whose first item is a {type(items[0]).__name__}" if items else ""
    raise TypeError(f"layer {name!r} returned a {type(output).__name__}{first}; hook a layer that returns a Tensor, or a tuple or model output whose first item is one")


def check_tokens(tokens: object, name: str = "tokens") -> None:
    if tokens is not None and tokens not in TOKEN_POOLINGS:
        raise ValueError(f"{name} must be None (channels second: (B, C, *spatial) outputs) or one of {TOKEN_POOLINGS} for (B, T, C) token outputs, got {tokens!r}")


def capture_layout(tokens: Tokens | None, model: nn.Module) -> dict:
    """The ``channel_dim`` and ``tokens`` capture options of a strategy's ``tokens`` option, or
    when that is None of the model's ``descriptor_tokens`` attribute (set beside
    ``descriptor_layers`` by a model whose descriptor layers are token sequences): None reads
    layer outputs as (B, C, *spatial); ``"mean"`` / ``"first"`` as (B, T, C) token sequences
    pooled over the tokens or taken at the first (class) token."""
    chosen = tokens if tokens is not None else getattr(model, "descriptor_tokens", None)
    check_tokens(chosen, "tokens" if tokens is not None else f"{type(model).__name__}.descriptor_tokens")
    return {"channel_dim": 1, "tokens": "mean"} if chosen is None else {"channel_dim": -1, "tokens": chosen}


def channels_second(name: str, tensor: Tensor, channel_dim: int, tokens: Tokens = "mean") -> Tensor:
    """The (B, C, *spatial) view of a layer output or its gradient; with ``tokens="first"`` the
    (B, C) of its first position (the class token of a (B, T, C) sequence)."""
    moved = tensor if channel_dim in (1, 1 - tensor.dim()) else tensor.movedim(channel_dim, 1)
    if tokens == "mean":
        return moved
    if tensor.dim() != 3:
        raise ValueError(f"layer {name!r}: tokens='first' takes the first token of a (B, T, C) output; got shape {tuple(tensor.shape)}")
    return moved[:, :, 0]


def resolve_layers(model: nn.Module, layers: Sequence[str | nn.Module]) -> dict[str, nn.Module]:
    """Maps each requested layer (a name from ``model.named_modules()`` or a submodule) to its
    name, in the order given."""
    if isinstance(layers, (str, nn.Module)):
        raise TypeError(f"layers must be a sequence of names or modules, got a single {type(layers).__name__}")
    if len(layers) == 0:
        raise ValueError("layers must name at least one layer")
    by_name = dict(model.named_modules())
    name_of = {id(module): name for name, module in by_name.items()}
    resolved: dict[str, nn.Module] = {}
    for layer in layers:
        if isinstance(layer, str):
            if layer not in by_name:
                raise ValueError(f"layer {layer!r} is not in the model; its layers are {[n for n in by_name if n]}")
            name = layer
        elif isinstance(layer, nn.Module) and id(layer) in name_of:
            name = name_of[id(layer)]
        else:
            raise ValueError(f"layer {layer!r} is neither a layer name nor a submodule of the model")
        if name in resolved:
            raise ValueError(f"layer {name!r} is given twice")
        resolved[name] = by_name[name]
    return resolved


class DescriptorCapture:
    """Captures pooled features z and pooled loss gradients g = pool(∂L/∂z) at chosen layers.

    One forward of a batch fills ``features``; one backward of the *summed* loss fills
    ``gradients``: since ∂(Σ_k L_k)/∂z_i = ∂L_i/∂z_i, every sample's gradient comes out of the
    same pass (Gudovskiy et al., CVPR 2020). Full feature maps are never stored: each is pooled by
    ``torch_al.pool_features`` as it appears. Backward with ``reduction="mean"`` scales every
    gradient by 1/B; use a summed loss for per-sample values.

    Args:
        model: the network; the hooks are on its submodules, so any mode (eval/train) works.
        layers: names from ``model.named_modules()`` or the submodules themselves; any number.
        capture: ``"features"``, ``"gradients"`` or ``"both"``.
        channel_dim: the channel dim of the layer outputs: 1 for (B, C, *spatial) conv / linear
            outputs, -1 for (B, T, C) sequence outputs.
        tokens: ``"mean"`` pools every position (spatial or token); ``"first"`` takes the first
            token of a 3-d output (a ViT's class token) instead.

    A layer returning a tuple, a list or a Hugging Face ``ModelOutput`` is read at its first item
    when that is a Tensor (an attention block's output before its weights); anything else is a
    TypeError naming the layer.

    A layer output modified in place afterwards (``ReLU(inplace=True)``) is fine as long as the
    backward reaches it *through* the later ops (``loss.backward()``, or ``autograd.grad`` with
    respect to the model input); its features are pooled before the in-place op runs.

    After a forward (and backward), ``features`` / ``gradients`` map layer name → Tensor[B, C] in
    the order the layers were given. Use as a context manager, or call :meth:`close`, to remove
    the hooks. Each layer must run once per forward (a module reused within one forward is an
    error, since its two outputs would overwrite each other).
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str | nn.Module],
        capture: CaptureKind = "both",
        channel_dim: int = 1,
        tokens: Tokens = "mean",
    ) -> None:
        if capture not in _CAPTURE_KINDS:
            raise ValueError(f"capture must be one of {_CAPTURE_KINDS}, got {capture!r}")
        if tokens not in TOKEN_POOLINGS:
            raise ValueError(f"tokens must be one of {TOKEN_POOLINGS}, got {tokens!r}")
        self.layers = resolve_layers(model, layers)
        self.capture = capture
        self.channel_dim = channel_dim
        self.tokens = tokens
        self.channels: dict[str, int] = {}
        self._pooled: dict[str, dict[str, Tensor]] = {"features": {}, "gradients": {}}
        self._target: tuple[dict[str, Tensor | None], Tensor, dict[str, int]] | None = None
        self._seen_in_forward: set[str] = set()
        self._gradients_seen: set[str] = set()
        self.graph_outputs: list[Tensor] = []  # this forward's hooked outputs that need a gradient
        self._handles = [model.register_forward_pre_hook(self._start_forward)]
        self._handles += [m.register_forward_hook(self._hook_for(name)) for name, m in self.layers.items()]

    @property
    def features(self) -> dict[str, Tensor]:
        return self._ordered("features")

    @property
    def gradients(self) -> dict[str, Tensor]:
        return self._ordered("gradients")

    def columns(self) -> dict[str, slice]:
        """Columns of each layer in a concatenated (B, L) descriptor, in layer order (the same for
        features and gradients)."""
        if len(self.channels) != len(self.layers):
            raise RuntimeError("run a forward pass first: channel counts are known only then")
        spans, start = {}, 0
        for name in self.layers:
            spans[name] = slice(start, start + self.channels[name])
            start += self.channels[name]
        return spans

    def write_into(self, stores: dict[str, Tensor | None], rows: Tensor | slice) -> None:
        """From now on, pool straight into ``stores[kind][rows, columns]`` (Tensor[P, L] each,
        via ``pool_features_into``) instead of filling the dicts; ``None`` stops that. ``rows``:
        an int64 Tensor[B] of store rows, or a ``slice(start, start + B)`` of consecutive ones,
        which is written with no row-value check (on CUDA, no host synchronisation)."""
        columns = {name: span.start for name, span in self.columns().items()}
        self._target = (stores, rows, columns)

    def stop_writing(self) -> None:
        self._target = None

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> "DescriptorCapture":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def missing_gradients(self) -> list[str]:
        """Layers whose gradient has not arrived since the last forward (they do not affect the
        loss, or the backward has not run yet)."""
        return [name for name in self.layers if name not in self._gradients_seen]

    def _ordered(self, kind: str) -> dict[str, Tensor]:
        pooled = self._pooled[kind]
        return {name: pooled[name] for name in self.layers if name in pooled}

    def _start_forward(self, module: nn.Module, inputs) -> None:
        self._seen_in_forward.clear()
        self._gradients_seen.clear()
        self.graph_outputs.clear()
        for pooled in self._pooled.values():
            pooled.clear()

    def _hook_for(self, name: str):
        def hook(module: nn.Module, inputs, output) -> None:
            output = layer_tensor(name, output)
            if name in self._seen_in_forward:
                raise RuntimeError(f"layer {name!r} ran twice in one forward; capture each use through its own module")
            self._seen_in_forward.add(name)
            self.channels[name] = self._channels_second(name, output).shape[1]  # checks the token layout before any backward
            if self.capture != "gradients":
                self._record("features", name, output.detach())
            if self.capture != "features" and output.requires_grad:
                output.register_hook(lambda grad: self._record("gradients", name, grad))
                self.graph_outputs.append(output)

        return hook

    def _record(self, kind: str, name: str, tensor: Tensor) -> None:
        if kind == "gradients":
            self._gradients_seen.add(name)
        channels_second = self._channels_second(name, tensor)
        if self._target is not None and self._target[0].get(kind) is not None:
            stores, rows, columns = self._target
            if isinstance(rows, slice):
                pool_features_into(channels_second, stores[kind][rows], None, columns[name])
            else:
                pool_features_into(channels_second, stores[kind], rows, columns[name])
        else:
            with torch.no_grad():
                self._pooled[kind][name] = pool_features(channels_second)

    def _channels_second(self, name: str, tensor: Tensor) -> Tensor:
        return channels_second(name, tensor, self.channel_dim, self.tokens)


def sum_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """The default loss of the gradient descriptors: summed, not averaged, so an item's gradient
    does not depend on the size of the batch it came in."""
    return F.cross_entropy(logits, labels, reduction="sum")


def backward_to_layers(hooks: DescriptorCapture, loss: Tensor, x: Tensor) -> None:
    """Backpropagates to the input without parameter gradients; the layers' hooks pool theirs on
    the way. Going through to the input (not stopping at the layer outputs) keeps the gradients
    right when a layer output is later modified in place. Integer inputs (a text model's token
    ids) have no gradient: the backward then stops at the hooked outputs, which needs them
    unmodified in place after the hook (true of transformer blocks)."""
    if x.is_floating_point():
        torch.autograd.grad(loss, x, allow_unused=True)
    elif hooks.graph_outputs:
        torch.autograd.grad(loss, hooks.graph_outputs, allow_unused=True)
    hooks.graph_outputs.clear()  # the batch's graph goes with them
    missing = hooks.missing_gradients()
    if missing:
        raise ValueError(f"layers {missing} do not affect the loss, so they have no gradient descriptor")
