"""MC-dropout uncertainty (Gal et al., ICML 2017): BALD, variation ratio and max entropy from T
stochastic forward passes with dropout on."""

import logging
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from torch_al.checks import LogitsCheck, output_logits
from torch_al.devices import model_device
from torch_al.seeding import derived_seed
from torch_al.strategies import sample_scores
from torch_al.strategies.base import ScoreStrategy
from torch_al.strategies.bayesian.consistent_dropout import ConsistentMasks, dropout_modules

logger = logging.getLogger("torch_al")

_CHUNK = 32  # passes per forward when ``chunk`` is None and every pass runs the whole model
_EXPANDED_ELEMENTS = 2**23  # prefix-once with ``chunk=None``: elements of the expanded tensor at the first dropout
_PROBE_ROWS = 2  # the probe's images ...
_PROBE_PASSES = 2  # ... and passes (2·2 rows: a 2-row tensor cannot meet a 4-row one without an error)


def _replicate(x: Tensor, count: int) -> Tensor:
    return x.unsqueeze(0).expand(count, *x.shape).flatten(0, 1)  # pass-major rows: pass t is rows t·B … t·B + B − 1


class _Expand:
    """Forward pre-hook on the first dropout module: at its first call in a forward it replaces
    the B-row input by ``count`` pass-major copies (count·B rows), so the deterministic prefix ran
    on B rows and everything from the dropout on runs on count·B rows."""

    def __init__(self, module: nn.Module) -> None:
        self.rows, self.count, self.pending, self.width = 0, 1, False, 0
        self.handle = module.register_forward_pre_hook(self)

    def __call__(self, module: nn.Module, args: tuple) -> tuple | None:
        if not self.pending:
            return None  # a module reused later in the forward gets the already expanded rows
        self.pending = False
        x = args[0]
        if not isinstance(x, Tensor) or x.dim() == 0 or x.shape[0] != self.rows:
            raise RuntimeError(f"the first dropout's input is not one row per image ({self.rows} images, input {getattr(x, 'shape', type(x))})")
        self.width = x[0].numel()
        return (_replicate(x, self.count), *args[1:])


class MonteCarloDropout(ScoreStrategy):
    """Scores from T stochastic passes p_t = softmax f(x; θ_t), t = 1..T, with consistent masks:
    pass t applies one dropout mask per module to every item (:mod:`consistent_dropout`), drawn
    from (``seed``, round, module, t), so pass t is one weight sample θ_t shared by the pool. Two
    copies of one input get the same prediction in every pass, whatever their batch or position,
    and the per-item marginal over passes is the usual MC-dropout estimate. Masks take
    O(T × features) memory per dropout module. Covered: ``nn.Dropout``, ``nn.Dropout1d/2d/3d``
    and ``nn.FeatureAlphaDropout`` (channel masks), ``nn.AlphaDropout``; another dropout module
    class with a ``forward`` of its own is an error naming it, and dropout called as ``F.dropout``
    inside ``forward`` (no module) is not seen (docs/methods.md shows how to MC-dropout such models).

    Each batch is loaded once. Every layer before the first dropout module (in forward-execution
    order) is deterministic, so by default (``prefix_once``) that prefix runs once per forward on
    the B images, and a forward pre-hook on the first dropout repeats its input ``chunk`` times
    along the batch dim (pass-major rows, as full replication lays them out): only the part of the
    network from the first dropout on runs chunk·B rows, and the repeated rows of pass t take pass
    t's masks. For LeNet the prefix (conv1, conv2) is ~96% of the multiply-adds.

    That is only valid when nothing after the dropout joins the repeated rows with a tensor
    computed before it (a residual join across the dropout, a skip connection, a captured
    tensor), and when the dropout's input has one row per image. Each :meth:`scores` call
    therefore first runs a probe: the first 2 images with passes 0 and 1, once by full replication
    and once prefix-once (the same masks, and the same RNG state for any other draw). Prefix-once
    is used only if the probe finds a dropout module that runs, the
    prefix-once forward raises nothing and its output equals full replication's (same shape,
    ``allclose``); otherwise every pass runs the whole model (full replication, as before), and
    the reason is logged once per strategy and model class (logger ``torch_al``). The probe runs
    in a forked RNG, so it leaves torch's global RNG as it was.

    Every module runs in eval mode (batch-norm keeps its running statistics, as at test time;
    dropout modules through their masks). The model's modes are restored afterwards. Scores are
    computed per batch, so memory is O(B·T·C), not O(N·T·C).

    Cost (``last_cost.forward``): images sent through the model's stochastic part, i.e. from the
    first dropout module on: T·N̂ for the scoring passes, plus the probe's 2 paths × 2 passes ×
    min(2, B) images, at most 8 (0 with ``prefix_once=False`` or T = 1, which run no probe). Under full replication each of these passes runs
    the whole model (the paper's T·N̂ forwards); prefix-once runs the deterministic prefix on
    ⌈T/chunk⌉·N̂ images on top, which is not counted separately.

    Args:
        passes: T, the number of stochastic passes; the paper uses 128.
        chunk: passes per forward (from the first dropout on, the model sees chunk·B rows);
            clipped to T. None (default): 32 under full replication; prefix-once takes as many
            passes (at least 32, at most T) as keep the repeated tensor at the first dropout
            within 2^23 elements (LeNet, B = 256: 32 passes; chunks from 4 to 128 measured in
            benchmarks/bench_mc_dropout.py), so for T <= 32 the prefix runs once per batch.
        batch_size: items per data load.
        progress: show a progress bar.
        prefix_once: run the prefix before the first dropout once per forward when the probe
            allows it; False always repeats the whole model (full replication).
        seed: base seed of the masks (with the round: every selection draws new weight samples).
    """

    def __init__(self, passes: int = 128, chunk: int | None = None, batch_size: int = 256, progress: bool = True, prefix_once: bool = True, seed: int = 0) -> None:
        super().__init__(batch_size, progress)
        bad_chunk = chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1)
        if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1 or bad_chunk:
            raise ValueError(f"{type(self).__name__}: passes and chunk must be ints >= 1, got {passes!r}, {chunk!r}")
        self.passes = passes
        self.chunk = chunk
        self.prefix_once = bool(prefix_once)
        self.seed = seed
        self._logged: set = set()

    _round = 0  # the round whose masks :meth:`scores` draws, set by :meth:`item_scores`

    def item_scores(self, model, pool, rows):
        self._round = pool.round
        return super().item_scores(model, pool, rows)

    def scores(self, model: nn.Module, loader: DataLoader, check: LogitsCheck) -> Tensor:
        return self.per_batch(model, loader, check, self.score, self._round)

    @torch.no_grad()
    def per_batch(self, model: nn.Module, loader: DataLoader, check: LogitsCheck, reduce: Callable[[Tensor], Tensor], round_: int = 0) -> Tensor:
        """``reduce`` of each batch's float32 Tensor[B, T, C] probabilities from the T passes of
        round ``round_``'s masks, concatenated along the first dim; charges the passes to ``last_cost``."""
        dropouts = dropout_modules(model)
        if not dropouts:
            raise ValueError(
                f"{type(self).__name__} needs dropout in the model: with none, all T passes are equal (dropout called as "
                "F.dropout inside forward is not a module and is not seen: torch_al.nn.dropout_as_module(model) moves a timm model's into one; docs/methods.md, MC dropout)"
            )
        masks = ConsistentMasks(dropouts, self.passes, derived_seed(self.seed, "mc-dropout", round_))
        device = model_device(model)
        was_training = model.training
        model.eval()
        chunks, start, expand, probed = [], 0, None, not self.prefix_once
        try:
            with masks.applied():
                for x in tqdm(loader, desc="MC dropout", disable=not self.progress):
                    x = x.to(device)
                    if not probed:
                        probed = True
                        expand = self._probe(model, [module for _, module in dropouts], masks, x, device)
                    logits = self._sample(model, x, check, masks, expand)
                    check.finite(logits, start)  # once per batch, not once per forward: one host sync
                    chunks.append(reduce(logits.float().softmax(-1)))
                    start += x.shape[0]
        finally:
            if expand is not None:
                expand.handle.remove()
            model.train(was_training)
        reduced = torch.cat(chunks)
        self.charge(forward=self.passes * reduced.shape[0])
        return reduced

    def _sample(self, model: nn.Module, x: Tensor, check: LogitsCheck, masks: ConsistentMasks, expand: _Expand | None = None) -> Tensor:
        """Tensor[B, T, C] logits of T stochastic passes over one batch; with ``expand``, the
        prefix before the first dropout runs once per forward."""
        batch = x.shape[0]
        if expand is None:
            chunk = self.chunk or _CHUNK
        else:
            chunk = self.chunk or max(_CHUNK, _EXPANDED_ELEMENTS // max(1, batch * expand.width))
        chunk = min(chunk, self.passes)
        passes = []
        for start in range(0, self.passes, chunk):
            count = min(chunk, self.passes - start)
            masks.passes(start, count, batch)
            if expand is None:
                logits = model(_replicate(x, count))
            else:
                expand.rows, expand.count, expand.pending = batch, count, True
                logits = model(x)
                if expand.pending:
                    expand.pending = False
                    raise RuntimeError(f"{type(self).__name__}: the first dropout module did not run in this forward (it did in the probe)")
            passes.append(check.shape(logits, count * batch).unflatten(0, (count, batch)))
        return torch.cat(passes).transpose(0, 1)

    def _fall_back(self, model: nn.Module, reason: str) -> None:
        key = (type(model).__qualname__, reason.split(":")[0])
        if key not in self._logged:
            self._logged.add(key)
            logger.warning("%s: every pass runs the whole %s (full replication): %s", type(self).__name__, type(model).__name__, reason)

    def _probe(self, model: nn.Module, dropouts: list[nn.Module], masks: ConsistentMasks, x: Tensor, device: torch.device) -> _Expand | None:
        """The hook that runs the prefix once, or None (full replication) when the probe finds
        that prefix-once does not give full replication's outputs; see the class docstring."""
        if self.passes == 1:
            return None  # one pass: nothing to repeat
        rows, count = min(_PROBE_ROWS, x.shape[0]), _PROBE_PASSES
        probe = x[:rows]
        masks.passes(0, count, rows)
        self.charge(forward=2 * rows * count)
        order: list[nn.Module] = []
        handles = [m.register_forward_pre_hook(lambda m, args: order.append(m) if not order else None) for m in dropouts]
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            state = torch.get_rng_state(), (torch.cuda.get_rng_state(device) if device.type == "cuda" else None)
            try:
                reference = output_logits(model(_replicate(probe, count)))
            except Exception as error:  # the scoring passes raise it again, with the usual checks
                logger.debug("%s: the full-replication probe failed: %r", type(self).__name__, error)
                return None
            finally:
                for handle in handles:
                    handle.remove()
            if not isinstance(reference, Tensor) or reference.dim() == 0 or reference.shape[0] != rows * count or not bool(reference.isfinite().all()):
                return None  # a bad output: the scoring passes raise the usual error for it
            if not order:
                self._fall_back(model, "no dropout module ran in a forward")
                return None
            torch.set_rng_state(state[0])
            if state[1] is not None:
                torch.cuda.set_rng_state(state[1], device)
            expand = _Expand(order[0])
            expand.rows, expand.count, expand.pending = rows, count, True
            masks.passes(0, count, rows)
            try:
                output = output_logits(model(probe))
                same = (
                    not expand.pending and isinstance(output, Tensor) and isinstance(reference, Tensor)
                    and output.shape == reference.shape and output.dtype == reference.dtype
                )
                if same:
                    tolerance = 1e-2 if output.dtype in (torch.float16, torch.bfloat16) else 1e-4
                    scale = float(reference.detach().abs().float().amax()) if reference.numel() else 0.0
                    same = torch.allclose(output.float(), reference.float(), rtol=tolerance, atol=tolerance * max(1.0, scale))
            except Exception as error:
                expand.handle.remove()
                self._fall_back(model, f"the layers after its first dropout ({type(order[0]).__name__}) cannot take repeated rows alone: {type(error).__name__}: {error}")
                return None
            if not same:
                expand.handle.remove()
                self._fall_back(model, f"with the prefix before its first dropout ({type(order[0]).__name__}) run once, its outputs differ from full replication (a join across the dropout?)")
                return None
        expand.pending = False
        return expand


class MaxEntropy(MonteCarloDropout):
    """Entropy of the mean prediction, H[p̄] with p̄ = mean_t p_t."""

    def score(self, probabilities: Tensor) -> Tensor:  # [N, T, C] -> [N]
        return sample_scores.mean_entropy(probabilities)


class BALD(MonteCarloDropout):
    """Mutual information between prediction and weights: H[p̄] − mean_t H[p_t]."""

    def score(self, probabilities: Tensor) -> Tensor:
        return sample_scores.bald(probabilities)


class VariationRatio(MonteCarloDropout):
    """1 − (number of passes predicting the modal class) / T."""

    def score(self, probabilities: Tensor) -> Tensor:
        return sample_scores.variation_ratio(probabilities)
