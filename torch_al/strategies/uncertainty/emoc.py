"""EMOC: Käding, Freytag, Rodner & Denzler, "Active and Continuous Exploration with Deep Neural
Networks and Expected Model Output Changes", 2016. An unlabeled item x' scores the first-order
change of the model's outputs over the pool after one gradient step on (x', y'):
E_x ‖∇_θ f(x)ᵀ ∇_θ L(θ; (x', y'))‖₁ (the paper's Eq. 4-5, the step size γ dropped).

θ is the weight and bias of chosen ``nn.Linear`` layers. For such a layer with input h and output
u (Tensor[O]), J(x) = ∂f/∂u at x (Tensor[C, O]) and δ(x', y') = J(x')ᵀ (softmax f(x') − e_y'):
∇_W f_c(x) = J_c(x) ⊗ h(x), ∇_W L = δ ⊗ h(x'), so the inner product over the layer's parameters
is (J_c(x) · δ(x', y')) (h(x) · h(x') + 1), the 1 from the bias. Summed over the layers this is a
product of small matrices: no per-parameter gradient is ever formed.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from torch_al.checks import LogitsCheck, check_int
from torch_al.devices import model_device
from torch_al.pool import ActivePool
from torch_al.sampler import inputs_loader
from torch_al.seeding import derived_seed
from torch_al.strategies.base import ItemScoreStrategy

LABELS = ("map", "expected")
_CHANGE_ELEMENTS = 2**22  # sample rows × C × batch × labels per block of output changes


def linear_layers_of(model: nn.Module, names: Sequence[str] | None) -> dict[str, nn.Linear]:
    """The layers θ belongs to, by module name: ``names``, or the model's last ``nn.Linear`` (in
    ``model.modules()`` order) when None."""
    modules = dict(model.named_modules())
    if names is None:
        linears = [name for name, module in modules.items() if isinstance(module, nn.Linear)]
        if not linears:
            raise ValueError("EMOC: the model has no nn.Linear module (an exported or TorchScript model keeps none: pass the eager model); name the layers with linear_layers=...")
        names = linears[-1:]
    for name in names:
        if name not in modules:
            raise ValueError(f"EMOC: linear_layers names {name!r}, but the model has no module of that name")
        if not isinstance(modules[name], nn.Linear):
            raise ValueError(f"EMOC: linear_layers must name nn.Linear modules; {name!r} is a {type(modules[name]).__name__}")
    return {name: modules[name] for name in names}


@dataclass
class _Forward:
    """One batch through the model: the logits f Tensor[B, C], and per chosen layer its input
    rows h Tensor[B, H] (detached), its output u Tensor[B, O] (in the graph) and whether the
    model returned u itself as f, so that J = I and no backward pass is needed."""

    logits: Tensor
    inputs: list[Tensor]
    outputs: list[Tensor]
    identity: list[bool]


class _Capture:
    """Forward hooks that record every chosen layer's input and output, once per forward. The
    model continues with a copy of the output: an in-place op after the layer (``ReLU(inplace=True)``)
    would otherwise change u itself, and the gradients would be taken at the wrong tensor."""

    def __init__(self, layers: dict[str, nn.Linear]) -> None:
        self.names = list(layers)
        self.biases = [module.bias is not None for module in layers.values()]
        self.seen: dict[str, list[tuple[Tensor, Tensor, Tensor]]] = {name: [] for name in layers}
        self.handles = [module.register_forward_hook(partial(self._record, name)) for name, module in layers.items()]

    def _record(self, name: str, module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        if not output.requires_grad:
            output.requires_grad_()  # a frozen model: the gradient at this output is still needed
        passed_on = output.clone()
        self.seen[name].append((args[0].detach(), output, passed_on))
        return passed_on

    def run(self, model: nn.Module, x: Tensor, check: LogitsCheck, start: int) -> _Forward:
        for seen in self.seen.values():
            seen.clear()
        logits = check(model(x), start, x.shape[0])
        for name, seen in self.seen.items():
            if len(seen) != 1:
                raise ValueError(f"EMOC: linear_layers layer {name!r} must run once per forward; it ran {len(seen)} times")
            if seen[0][0].shape[:1] != x.shape[:1] or seen[0][0].dim() != 2:
                raise ValueError(f"EMOC: linear_layers layer {name!r} must see inputs of shape (B, features) with B = {x.shape[0]}, one row per item; got shape {tuple(seen[0][0].shape)}")
        (inputs, outputs, passed_on) = zip(*(seen[0] for seen in self.seen.values()))
        return _Forward(logits, list(inputs), list(outputs), [tensor is logits for tensor in passed_on])

    def pullback(self, forward: _Forward, cotangents: Tensor) -> tuple[list[Tensor], bool]:
        """vᵀ ∂f/∂u_ℓ for each cotangent v (Tensor[K, B, C]), row by row: Tensor[B, K, O_ℓ] per
        layer, and whether any backward pass ran. The rows stay apart because an eval-mode
        forward treats the items independently. A layer whose output is the logits gets v itself."""
        results: list[Tensor | None] = [cotangents.transpose(0, 1) if same else None for same in forward.identity]
        hidden = [layer for layer, same in enumerate(forward.identity) if not same]
        if not hidden:
            return results, False
        if forward.logits.grad_fn is None:
            self._unused(hidden[0])
        last = cotangents.shape[0] - 1
        per_cotangent = [torch.autograd.grad(forward.logits, [forward.outputs[i] for i in hidden], v, retain_graph=k < last, allow_unused=True) for k, v in enumerate(cotangents)]
        for position, layer in enumerate(hidden):
            if per_cotangent[0][position] is None:
                self._unused(layer)
            results[layer] = torch.stack([grads[position] for grads in per_cotangent], 1)
        return results, True

    def _unused(self, layer: int) -> None:
        raise ValueError(f"EMOC: the logits do not depend on linear_layers layer {self.names[layer]!r}: its parameters cannot change the outputs")

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.seen = {name: [] for name in self.names}  # the last batch's graph


@dataclass
class _PoolSample:
    """The items x the output change is averaged over: per layer, h_ℓ(x) Tensor[S, H_ℓ] and
    J_ℓ(x) Tensor[S, C, O_ℓ], or None where u_ℓ is the logits (J = I)."""

    inputs: list[Tensor]
    jacobians: list[Tensor | None]
    biases: list[bool]
    classes: int

    def summed_changes(self, inputs: list[Tensor], deltas: list[Tensor]) -> Tensor:
        """Σ_x Σ_c |Σ_ℓ (J_ℓ,c(x) · δ_ℓ(x', y)) (h_ℓ(x) · h_ℓ(x') + [bias])| for candidates x'
        with input rows ``inputs`` (Tensor[B, H_ℓ] per layer) and output gradients ``deltas``
        (Tensor[B, Y, O_ℓ] per layer) → Tensor[B, Y]. Blocks of sample rows bound the memory."""
        size, (batch, labels, _) = self.inputs[0].shape[0], deltas[0].shape
        step = max(1, _CHANGE_ELEMENTS // (self.classes * batch * labels))
        total = deltas[0].new_zeros(batch, labels)
        for rows in torch.arange(size, device=total.device).split(step):
            change = 0
            for h, jacobian, bias, h_new, delta in zip(self.inputs, self.jacobians, self.biases, inputs, deltas):
                gram = h_new @ h[rows].T + float(bias)  # [B, s]
                along = delta.unsqueeze(2) if jacobian is None else torch.einsum("nyo,sco->nysc", delta, jacobian[rows])
                change = change + along * gram[:, None, :, None]  # [B, Y, s, C]
            total += change.abs().flatten(2).sum(2)
        return total


class EMOC(ItemScoreStrategy):
    """Expected model output change: the ``budget`` unlabeled items x' with the highest
    E_x ‖∇_θ f(x)ᵀ ∇_θ L(θ; (x', y'))‖₁ (ties to the lower global index).

    f is the logits, the input of the softmax cross-entropy L (the paper's Eq. 1 applies L to
    f). E_x is the mean over a seeded sample of the whole pool, labeled and unlabeled (the paper's
    empirical mean over the dataset), drawn from (seed, round). y' is the model's most likely
    class (the paper's MAP approximation, ``label="map"``) or, with ``label="expected"``, the
    score is Σ_y' p(y'|x') E_x ‖…‖₁ (the expectation outside the norm, as in the paper's Eq. 2).
    The model runs in eval mode (dropout off, batch-norm on running statistics, so each item's
    gradients are its own); its mode is restored and no parameter's ``.grad`` is touched.

    Cost per round, in images: S + N̂ forwards (S the sample size, N̂ the unlabeled items, C the
    classes). Layers whose output is the logits themselves (the default last layer) need no
    backward pass; if any chosen layer is hidden, C·S backwards for the sample's Jacobians plus N̂
    (``"map"``) or C·N̂ (``"expected"``) for the candidates' output gradients, each from the
    logits down to the chosen layers only. Memory: S·(Σ_ℓ H_ℓ + C·Σ_hidden O_ℓ) numbers for the
    sample.

    Args:
        label: ``"map"`` or ``"expected"``.
        linear_layers: module names of ``nn.Linear`` layers whose weight and bias are θ; each must
            run once per forward on inputs of shape (B, features). Default: the last ``nn.Linear``.
        sample_size: S, the pool items x the change is averaged over (all of them if the pool is
            smaller).
        batch_size: scoring batch size.
        seed: for the sample.
        progress: show a progress bar while scoring.
    """

    def __init__(
        self,
        label: str = "map",
        linear_layers: Sequence[str] | None = None,
        sample_size: int = 1000,
        batch_size: int = 256,
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        if not isinstance(label, str) or label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, got {label!r}")
        if linear_layers is not None:
            if isinstance(linear_layers, str) or not isinstance(linear_layers, Sequence) or not all(isinstance(name, str) for name in linear_layers):
                raise TypeError(f"linear_layers must be a sequence of module names, got {linear_layers!r}")
            if not linear_layers or len(set(linear_layers)) != len(linear_layers):
                raise ValueError(f"linear_layers must name at least one layer, each once; got {linear_layers!r}")
            linear_layers = tuple(linear_layers)
        self.label = label
        self.linear_layers = linear_layers
        self.sample_size = check_int(sample_size, "sample_size", 1)
        self.batch_size = check_int(batch_size, "batch_size", 1)
        self.seed = seed
        self.progress = progress

    def sample_indices(self, pool: ActivePool) -> Tensor:
        """The pool items x of this round's E_x: min(sample_size, len(pool)) global indices drawn
        without replacement from (seed, round), ascending (int64, CPU)."""
        generator = torch.Generator().manual_seed(derived_seed(self.seed, "emoc", pool.round))
        return torch.randperm(len(pool), generator=generator)[: self.sample_size].sort().values

    def item_scores(self, model: nn.Module | None, pool: ActivePool, rows: Tensor) -> Tensor:
        """Tensor[n] scores (CPU) of the pool items ``rows``, averaged over this round's sample of
        the whole pool."""
        if model is None:
            raise ValueError("EMOC scores with a model; got model=None")
        capture = _Capture(linear_layers_of(model, self.linear_layers))
        was_training = model.training
        model.eval()
        try:
            with torch.enable_grad():
                sample = self._pool_sample(model, capture, pool)
                scores = self._scores(model, capture, pool, rows, sample)
        finally:
            capture.close()
            model.train(was_training)
        if scores.isnan().any():
            raise ValueError("EMOC: the output changes are NaN for some items (non-finite activations in linear_layers?)")
        return scores

    def _pool_sample(self, model: nn.Module, capture: _Capture, pool: ActivePool) -> _PoolSample:
        indices = self.sample_indices(pool)
        check, device = LogitsCheck("EMOC", indices), model_device(model)
        inputs, jacobians, start = [[] for _ in capture.names], [[] for _ in capture.names], 0
        for x in inputs_loader(pool, indices, self.batch_size):
            forward = capture.run(model, x.to(device), check, start)
            classes = forward.logits.shape[1]
            basis = torch.eye(classes, dtype=forward.logits.dtype, device=device)[:, None, :].expand(classes, x.shape[0], classes)
            pulled, backward = capture.pullback(forward, basis)  # row c of J_ℓ from the c-th basis vector
            self.charge(forward=x.shape[0], backward=classes * x.shape[0] if backward else 0)
            for layer, same in enumerate(forward.identity):
                inputs[layer].append(forward.inputs[layer])
                jacobians[layer].append(None if same else pulled[layer])
            start += x.shape[0]
        jacobians = [None if any(batch is None for batch in batches) else torch.cat(batches) for batches in jacobians]
        return _PoolSample([torch.cat(batches) for batches in inputs], jacobians, capture.biases, classes)

    def _scores(self, model: nn.Module, capture: _Capture, pool: ActivePool, candidates: Tensor, sample: _PoolSample) -> Tensor:
        """Tensor[N̂] scores of ``candidates``, in their order (CPU)."""
        check, device = LogitsCheck("EMOC", candidates), model_device(model)
        chunks, start = [], 0
        for x in tqdm(inputs_loader(pool, candidates, self.batch_size), desc="EMOC", disable=not self.progress):
            forward = capture.run(model, x.to(device), check, start)
            p = forward.logits.detach().softmax(1)  # [B, C]
            if self.label == "map":
                cotangents = (p - nn.functional.one_hot(p.argmax(1), p.shape[1]).to(p.dtype)).unsqueeze(0)  # ∂L/∂f at y' = ŷ
                weights = torch.ones_like(p[:, :1])
            else:
                cotangents = p.unsqueeze(0) - torch.eye(p.shape[1], dtype=p.dtype, device=device).unsqueeze(1)  # [y', B, C]
                weights = p
            deltas, backward = capture.pullback(forward, cotangents)
            self.charge(forward=x.shape[0], backward=cotangents.shape[0] * x.shape[0] if backward else 0)
            changes = sample.summed_changes(forward.inputs, deltas) / sample.inputs[0].shape[0]
            chunks.append((changes * weights).sum(1).cpu())
            start += x.shape[0]
        return torch.cat(chunks)
