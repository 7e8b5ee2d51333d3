"""Explanation-based attention (EBA): integrated gradients of the loss at internal layers."""

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from torch_al.checks import LogitsCheck, first_output
from torch_al.nn.capture import DescriptorCapture, LossFn, Tokens, backward_to_layers, resolve_layers, sum_cross_entropy
from torch_al.ops.ig_accumulate import ig_accumulate


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class _PathGradientCapture(DescriptorCapture):
    """Gradient hooks that add every chunk's layer gradients, (S·B, C, *spatial) with the S path
    steps outermost, into per-layer (B, C) accumulators through ``ig_accumulate``; the maps are
    dropped as soon as they are reduced."""

    def __init__(
        self, model: nn.Module, layers: Sequence[str], steps: int, channel_dim: int, tokens: Tokens, accumulators: dict[str, Tensor]
    ) -> None:
        super().__init__(model, layers, capture="gradients", channel_dim=channel_dim, tokens=tokens)
        self.steps = steps
        self.accumulators = accumulators
        self.chunk_shape = (0, 0)  # (S, B) of the chunk being back-propagated

    def _record(self, kind: str, name: str, tensor: Tensor) -> None:
        self._gradients_seen.add(name)
        grad = self._channels_second(name, tensor).unflatten(0, self.chunk_shape)
        if name not in self.accumulators:
            dtype = torch.float64 if grad.dtype == torch.float64 else torch.float32
            self.accumulators[name] = grad.new_zeros(grad.shape[1:3], dtype=dtype)
        ig_accumulate(grad, self.steps, self.accumulators[name])


def _logits_of(outputs, rows: int, check: LogitsCheck | None) -> Tensor:
    if check is not None:
        return check.shape(outputs, rows)
    return first_output(outputs)


class IntegratedGradients:
    """Pooled integrated-gradient attention at chosen layers, the EBA of Gudovskiy et al.
    (ICLR-W 2019, eq. 1) generalised to any baseline X⁰:

        a_i = φ((1/K) Σ_{k=1..K} ∂L(f(X⁰ + (k/K)(X_i − X⁰)), ŷ_i) / ∂F_i)

    with φ the mean over the spatial dims and F_i the output of each chosen layer (multi-scale).
    This is the average *gradient* along the path (a right Riemann sum), not captum's attribution,
    which multiplies by the difference F(X) − F(X⁰). ``steps=1`` is plain saliency: the gradient
    descriptor of ``compute_descriptors``.

    The K scaled copies of a batch run ``chunk`` steps at a time: one forward and one input-gradient
    backward (no parameter gradients) of chunk·B rows per chunk, so memory is bounded by ``chunk``,
    not K. A gradient hook reduces each chunk's layer gradients straight into (B, C) accumulators
    with ``torch_al.ig_accumulate``, which applies the 1/K; no full map outlives its chunk. The
    chunks go from k = K down, so the first forward already holds the un-scaled input (k = K) and
    the pseudo-labels ŷ = argmax f(X) cost no extra pass: a batch costs exactly K forward/backward
    passes per image.

    The model runs in eval mode during a call (batch-norm on running statistics, no dropout, so
    every step and every sample is independent of the rest of the chunk) and gets its mode back
    afterwards. Hooks exist only during a call.

    Args:
        model: the task model; outputs logits Tensor[B, classes] (or a tuple whose first item is).
        layers: layer names from ``model.named_modules()`` or the submodules themselves.
        steps: K, the number of path steps; the paper uses 128.
        baseline: X⁰, a number or a Tensor broadcastable to a batch (e.g. Tensor[*input_shape]);
            0 is the paper's path k·X/K.
        chunk: path steps per forward/backward (the model sees chunk·B rows); clipped to K.
        loss_fn: (logits, labels) -> summed loss; the sum makes each sample's gradient its own.
        channel_dim: channel dim of the layer outputs (1, or -1 for (B, T, C)).
        tokens: ``"mean"`` over every position, or ``"first"``: the first token (as in
            :class:`~torch_al.nn.DescriptorCapture`).

    Call with a batch ``x`` (Tensor[B, *input_shape]) and optional ``labels`` (int64 Tensor[B];
    default: the argmax pseudo-labels) to get ``(attention, labels)``: layer name → Tensor[B, C]
    in the order the layers were given (float32, or float64 for float64 models), and the labels
    used. ``out`` (layer name → Tensor[B, C], e.g. column slices of an (N, L) store) makes the
    call add into those tensors instead. NaN/inf gradients at any step propagate to the result.
    ``check`` (a :class:`~torch_al.checks.LogitsCheck` whose row i is row i of ``x``)
    validates every chunk's raw outputs as logits and the un-scaled rows' logits as finite;
    without it, a tuple's first item is taken as the logits.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str | nn.Module],
        steps: int = 128,
        baseline: float | Tensor = 0.0,
        chunk: int = 16,
        loss_fn: LossFn = sum_cross_entropy,
        channel_dim: int = 1,
        tokens: Tokens = "mean",
    ) -> None:
        self.model = model
        self.layers = list(resolve_layers(model, layers))
        self.steps = _positive_int("steps", steps)
        self.chunk = min(_positive_int("chunk", chunk), steps)
        self.baseline = baseline
        self.loss_fn = loss_fn
        self.channel_dim = channel_dim
        self.tokens = tokens

    def __call__(
        self, x: Tensor, labels: Tensor | None = None, out: Mapping[str, Tensor] | None = None, check: LogitsCheck | None = None
    ) -> tuple[dict[str, Tensor], Tensor]:
        if torch.is_inference_mode_enabled():
            raise RuntimeError("IntegratedGradients needs autograd: call it outside torch.inference_mode()")
        if not x.is_floating_point():
            raise ValueError(f"IntegratedGradients interpolates the inputs from the baseline; inputs of dtype {x.dtype} (token ids?) have no path between them: EBA needs floating-point inputs")
        batch = x.shape[0]
        if labels is not None and (labels.shape != (batch,) or labels.dtype != torch.int64):
            raise ValueError(
                f"labels must be an int64 Tensor[{batch}], got shape {tuple(labels.shape)} dtype {labels.dtype}"
            )
        baseline = self._baseline_like(x)
        accumulators = dict(out or {})
        was_training = self.model.training
        self.model.eval()
        try:
            hooks = _PathGradientCapture(self.model, self.layers, self.steps, self.channel_dim, self.tokens, accumulators)
            with hooks, torch.enable_grad():
                for highest in range(self.steps, 0, -self.chunk):
                    ks = torch.arange(highest, max(highest - self.chunk, 0), -1, dtype=torch.float64)
                    alphas = (ks / self.steps).to(x.device, x.dtype).view(-1, *([1] * x.dim()))
                    # lerp is exact at both ends: k = K gives x itself, bit for bit.
                    path = torch.lerp(baseline, x.detach().unsqueeze(0), alphas).flatten(0, 1).requires_grad_()
                    logits = _logits_of(self.model(path), path.shape[0], check)
                    if check is not None and highest == self.steps:
                        # The k = K rows are x itself, the model's answer for the batch: one
                        # host sync per batch, not per chunk. Path points are not checked.
                        check.finite(logits[:batch], 0)
                    if labels is None:
                        labels = logits.detach()[:batch].argmax(1)  # the rows of k = K
                    hooks.chunk_shape = (ks.numel(), batch)
                    loss = self.loss_fn(logits, labels.to(logits.device).repeat(ks.numel()))  # step-major rows
                    backward_to_layers(hooks, loss, path)
        finally:
            self.model.train(was_training)
        return {name: accumulators[name] for name in self.layers}, labels

    def _baseline_like(self, x: Tensor) -> Tensor:
        baseline = torch.as_tensor(self.baseline, dtype=x.dtype, device=x.device)
        try:
            broadcast = torch.broadcast_shapes(baseline.shape, x.shape)
        except RuntimeError:
            broadcast = None
        if broadcast != x.shape:
            raise ValueError(
                f"baseline of shape {tuple(baseline.shape)} does not broadcast to the batch shape {tuple(x.shape)}"
            )
        return baseline
