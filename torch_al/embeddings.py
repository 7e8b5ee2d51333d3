"""A model's embeddings for the strategies that work on them (core-set, BADGE, Suggestive
annotation, DAL): the input of its last ``nn.Linear`` or a named layer's output, captured by a
hook in eval mode and checked row by row."""

import torch
from torch import Tensor, nn

from torch_al.checks import LogitsCheck
from torch_al.devices import model_device
from torch_al.nn.capture import Tokens, channels_second, check_tokens, layer_tensor

LAYER_OPTION = ("CoreSet", "DiscriminativeAL")  # the strategies whose embedding layer can be named
SHOWN_LAYER_NAMES = 40


def layer_names(modules: dict[str, nn.Module]) -> str:
    """The named submodules, for an error message (a ResNet has hundreds: the first few)."""
    names = [name for name in modules if name]
    if not names:
        return "(none)"
    rest = len(names) - SHOWN_LAYER_NAMES
    return ", ".join(names[:SHOWN_LAYER_NAMES]) + (f", ... ({rest} more)" if rest > 0 else "")


def last_linear(model: nn.Module, name: str = "CoreSet") -> nn.Linear:
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    if not linears:
        hint = "; name the embedding layer with layer=..." if name in LAYER_OPTION else " (its input is the last-layer embedding)"
        raise ValueError(f"{name}: the model has no nn.Linear{hint}")
    return linears[-1]


def embed(model: nn.Module, loader, layer: str | None = None, indices: Tensor | None = None, name: str = "CoreSet", tokens: Tokens | None = None) -> Tensor:
    """Embeddings Tensor[N, D] in loader order, in eval mode: the output of ``layer``, or by
    default the input of the model's last ``nn.Linear`` (the last-layer embedding). A layer's
    output is flattened, or with ``tokens`` read as a (B, T, C) token sequence and pooled to
    (B, C): ``"mean"`` over the tokens, ``"first"`` its first (class) token; a layer returning a
    tuple or a model output is read at its first Tensor item. Each batch's embeddings must be
    finite, one row per input; a bad row is named by its global index ``indices[row]`` (None: the
    loader row). The model's outputs are not read. Errors start with ``name`` (the strategy)."""
    return _capture(model, loader, layer, indices, name, tokens, with_logits=False)[0]


def embed_with_logits(model: nn.Module, loader, indices: Tensor | None, name: str, layer: str | None = None, tokens: Tokens | None = None) -> tuple[Tensor, Tensor]:
    """:func:`embed`, plus the model's logits Tensor[N, C] from the same forward passes, checked
    by a :class:`LogitsCheck` named ``name`` (the strategy)."""
    embeddings, logits = _capture(model, loader, layer, indices, name, tokens, with_logits=True)
    return embeddings, logits


def check_embedding_layer(name: str, layer: object, tokens: object) -> None:
    """A strategy's ``layer`` (a module name or None) and ``tokens`` (None, ``"mean"``, ``"first"``;
    only with a named layer) options."""
    if layer is not None and not isinstance(layer, str):
        raise TypeError(f"{name}: layer must be a module name (str) or None, got {layer!r}")
    check_tokens(tokens, f"{name}: tokens")
    if tokens is not None and layer is None:
        raise ValueError(f"{name}: tokens={tokens!r} pools a named layer's token outputs; name the layer (layer=...), or leave tokens None for the last nn.Linear's input")


def layer_embedding(layer: str, output, tokens: Tokens | None) -> Tensor:
    """One batch of a layer's embeddings, float32 Tensor[B, D]: flattened, or pooled over tokens."""
    output = layer_tensor(layer, output)
    if tokens is None:
        return output.flatten(1).float()
    pooled = channels_second(layer, output, -1, tokens)
    return pooled.float().flatten(2).mean(2) if pooled.dim() > 2 else pooled.float()


@torch.no_grad()
def _capture(model: nn.Module, loader, layer: str | None, indices: Tensor | None, name: str, tokens: Tokens | None, with_logits: bool) -> tuple[Tensor, Tensor | None]:
    check_embedding_layer(name, layer, tokens)
    captured: list[Tensor] = []
    if layer is None:
        handle = last_linear(model, name).register_forward_pre_hook(lambda module, args: captured.append(args[0].flatten(1).float()))
    else:
        modules = dict(model.named_modules())
        if layer not in modules:
            raise ValueError(f"{name}: the model has no layer named {layer!r}; its layers: {layer_names(modules)}")
        module = modules[layer]
        handle = module.register_forward_hook(lambda module, args, out: captured.append(layer_embedding(layer, out, tokens)))
    check = LogitsCheck(name, indices)
    device = model_device(model)
    was_training = model.training
    model.eval()
    logits: list[Tensor] = []
    start = 0
    try:
        for batch, x in enumerate(loader):
            outputs = model(x.to(device))
            if len(captured) != batch + 1:
                raise ValueError(f"{name}: the embedding layer must run once per forward; it ran {len(captured) - batch} times")
            if with_logits:  # the model's own output first: a NaN there usually explains one in the embeddings
                logits.append(check(outputs, start, x.shape[0]))
            _check_embeddings(captured[-1], x.shape[0], start, check)
            start += x.shape[0]
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(captured), torch.cat(logits) if with_logits else None


def _check_embeddings(embeddings: Tensor, batch_size: int, start: int, check: LogitsCheck) -> None:
    if embeddings.shape[0] != batch_size:
        raise ValueError(f"{check.name}: the embedding layer must give one row per input, N = {batch_size}; got shape {tuple(embeddings.shape)}")
    check.finite(embeddings, start, what="embeddings")
