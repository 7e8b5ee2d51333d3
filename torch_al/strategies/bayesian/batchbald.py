"""BatchBALD (Kirsch, van Amersfoort & Gal, NeurIPS 2019): a batch chosen greedily to maximise the
mutual information between its labels and the weights, over T MC-dropout samples."""

import logging
import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.special import entr

from torch_al.arbiter import ONE_PROCESS, Arbiter, Pick
from torch_al.checks import LogitsCheck, check_int, check_real
from torch_al.devices import model_device
from torch_al.distributed.collectives import check_global_indices, check_rows_of_every_rank, on_every_rank
from torch_al.distributed.rank_arbiter import RankArbiter
from torch_al.distributed.ranked import distributed_topk
from torch_al.pool import ActivePool
from torch_al.sampler import inputs_loader
from torch_al.seeding import derived_seed
from torch_al.strategies import sample_scores
from torch_al.strategies.bayesian.mc_dropout import BALD

logger = logging.getLogger("torch_al")

_CHUNK_ELEMENTS = 2**18  # float64 elements of one candidate chunk's [rows·C, configurations] tensor: 2 MiB stay in cache between the product and the log


def _entropy_terms(conditional: Tensor) -> Tensor:
    """−r log r elementwise, 0 at r = 0; in place on ``conditional``, twice as fast as ``entr``."""
    logs = conditional.clamp_min(torch.finfo(conditional.dtype).tiny).log_()
    return logs.mul_(conditional).neg_()


@dataclass
class _Configurations:
    """Label configurations ŷ_k of the items picked so far (the paper's [T, configurations]
    matrix P[t, k] = Π_i p_t(ŷ_k,i)), stored per configuration as ratios P[t, k] / p(ŷ_k), with
    p(ŷ_k) = mean_t P[t, k] kept as a log: the product of a hundred probabilities underflows,
    the ratios (mean 1 over t) do not.

    Attributes:
        ratios: float64 Tensor[T, K].
        log_joint: float64 Tensor[K], log p(ŷ_k).
        posterior: None while the K configurations are all those of nonzero probability (exact);
            for sampled configurations, int64 Tensor[K] (CPU): the posterior sample t each was drawn from.
    """

    ratios: Tensor
    log_joint: Tensor
    posterior: Tensor | None = None

    def joint_entropies(self, by_class: Tensor) -> Tensor:
        """H(ŷ_1..ŷ_{n−1}, y) for each candidate, from its probabilities laid out as a contiguous
        Tensor[N, C, T] → Tensor[N].

        With r_k(y) = p(y | ŷ_k) = mean_t ratios[t, k] p_t(y), the chain rule gives
        H = Σ_k p(ŷ_k)(−log p(ŷ_k) + H(r_k)) exactly, and, for configurations drawn from the
        joint (the paper's importance-sampled estimator), the same sum with weights 1/K.
        """
        if self.posterior is None:
            weights = self.log_joint.exp()
            offset = -(weights * self.log_joint).sum()
        else:
            weights = torch.full_like(self.log_joint, 1 / self.log_joint.numel())
            offset = -self.log_joint.mean()
        classes, passes = by_class.shape[1:]
        ratios = self.ratios / passes
        rows = max(1, _CHUNK_ELEMENTS // (classes * ratios.shape[1]))
        entropies = [_entropy_terms(chunk.flatten(0, 1) @ ratios) @ weights for chunk in by_class.split(rows)]  # [rows·C, K] → [rows·C]
        return torch.cat(entropies).view(-1, classes).sum(1) + offset

    def extend_exact(self, item: Tensor) -> "_Configurations":
        """Every configuration followed by every class of the picked item (Tensor[T, C]);
        configurations of probability 0 are dropped."""
        ratios = (self.ratios.unsqueeze(2) * item.unsqueeze(1)).flatten(1)  # [T, K·C], k-major
        conditional = ratios.mean(0)
        keep = conditional > 0
        ratios, conditional = ratios[:, keep], conditional[keep]
        log_joint = self.log_joint.repeat_interleave(item.shape[1])[keep] + conditional.log()
        return _Configurations(ratios / conditional, log_joint)

    def extend_sampled(self, item: Tensor, generator: torch.Generator | None) -> "_Configurations":
        """Each sampled configuration k followed by a label drawn from p_t(y) of the picked item
        (Tensor[T, C]), t = posterior[k]: the extended configurations are again draws from the joint."""
        labels = torch.multinomial(item[self.posterior].cpu(), 1, generator=generator).squeeze(1).to(item.device)
        ratios = self.ratios * item[:, labels]  # [T, K]
        conditional = ratios.mean(0).clamp_min(torch.finfo(ratios.dtype).tiny)
        return _Configurations(ratios / conditional, self.log_joint + conditional.log(), self.posterior)


def _sample(picked: list[Tensor], samples: int, generator: torch.Generator | None) -> _Configurations:
    """``samples`` configurations of the picked items (each Tensor[T, C]) drawn from their joint:
    a posterior sample t, then every label from p_t. The t are stratified (samples // T each) and
    the remainder drawn without replacement, so each configuration's t is uniform and the
    estimator unbiased."""
    passes = picked[0].shape[0]
    posterior = torch.cat([torch.arange(passes).repeat(samples // passes), torch.randperm(passes, generator=generator)[: samples % passes]])
    configurations = _Configurations(picked[0].new_ones(passes, samples), picked[0].new_zeros(samples), posterior)
    for item in picked:
        configurations = configurations.extend_sampled(item, generator)
    return configurations


def batchbald_select(
    probabilities: Tensor,
    budget: int,
    max_configurations: int = 1024,
    samples: int = 1024,
    shortlist: int | None = None,
    generator: torch.Generator | None = None,
    restart_at: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Greedy BatchBALD over fixed MC-dropout probabilities.

    Step n picks the unpicked item x maximising
    a({x_1..x_{n−1}, x}) = H(y_1..y_{n−1}, y_x) − Σ_{i<n} E_θ H(y_i|θ) − E_θ H(y_x|θ), expectations
    over the T samples. The joint entropy is exact (float64) while the configurations of the
    picked items' labels with nonzero probability, times C, number at most ``max_configurations``;
    beyond, it is estimated from ``samples`` configurations drawn from the joint (the paper's
    importance-sampled estimator), extended by one drawn label per pick. Ties go to the lower index.

    The batch's mutual information cannot exceed log T (T equally likely weight samples carry
    log T nats), so once it nears that ceiling every further gain is close to 0 and the picks are
    close to arbitrary. With ``restart_at`` = ρ, a pick that brings the batch to ρ · log T closes
    a sub-batch: the next pick starts a new one, its gains taken against that sub-batch's picks
    alone (the picks so far stay unavailable). :func:`sub_batch_starts` recovers the sub-batches
    from the scores.

    Args:
        probabilities: Tensor[N, T, C], p_t(y | x_i) of pass t (any float dtype; rows sum to 1).
        budget: how many items, 0 <= budget <= N.
        max_configurations: the most configurations the exact joint entropy enumerates.
        samples: M, the sampled configurations beyond that.
        shortlist: restrict the greedy to the items with the ``shortlist`` highest BALD scores
            (>= budget); None: all N.
        generator: draws the sampled configurations (CPU); None: torch's global generator.
        restart_at: ρ in (0, 1], or None (default): one batch whatever its mutual information.

    Returns:
        (int64 Tensor[budget] indices in pick order, float64 Tensor[budget] scores: score n is
        the mutual information of the (sub-)batch up to pick n; score 1 is BALD's).
    """
    check_inputs("batchbald_select", probabilities, budget, max_configurations, samples, shortlist, restart_at)
    if budget > probabilities.shape[0]:
        raise ValueError(f"batchbald_select: budget {budget} is larger than the {probabilities.shape[0]} items")
    probabilities = probabilities.double()
    candidates = torch.arange(probabilities.shape[0], device=probabilities.device)
    if shortlist is not None and shortlist < probabilities.shape[0]:
        candidates = torch.sort(sample_scores.bald(probabilities), descending=True, stable=True).indices[:shortlist].sort().values  # ascending: ties stay with the lower index
    picks, scores = batchbald_greedy(probabilities[candidates], budget, max_configurations, samples, generator, restart_at=restart_at)
    return candidates[picks.to(candidates.device)], scores


def sub_batch_starts(scores: Tensor, passes: int, restart_at: float | None) -> list[int]:
    """The picks (0-based) that began a sub-batch of a :func:`batchbald_select` with
    ``restart_at``, from its scores: pick 0, and each pick after one whose score reached
    ``restart_at`` · log ``passes``."""
    if restart_at is None or not scores.numel():
        return [0] if scores.numel() else []
    closed = (scores[:-1] >= restart_at * math.log(passes)).nonzero().squeeze(1) + 1
    return [0, *closed.tolist()]


def batchbald_greedy(
    probabilities: Tensor,
    budget: int,
    max_configurations: int,
    samples: int,
    generator: torch.Generator | None,
    arbiter: Arbiter = ONE_PROCESS,
    restart_at: float | None = None,
) -> tuple[Tensor, Tensor]:
    """:func:`batchbald_select`'s greedy over the candidates' float64 probabilities Tensor[n, T, C]
    (no shortlist, no checks): (int64 Tensor[budget] picks in the arbiter's index space, float64
    Tensor[budget] scores). Each pick's winner comes from ``arbiter`` with its probabilities and
    E_θ H(y|θ), so a rank holding a shard of the candidates extends the configurations as one
    process does."""
    passes, classes = probabilities.shape[1:]
    conditional = entr(probabilities).sum(-1).mean(1)  # [n] E_θ H(y|θ)
    by_class = probabilities.transpose(1, 2).contiguous()
    ceiling = None if restart_at is None else restart_at * math.log(passes)
    available = torch.ones(probabilities.shape[0], dtype=torch.bool, device=probabilities.device)
    picked: list[Pick] = []
    batch: list[Pick] = []  # the picks of the current sub-batch
    for _ in range(budget):
        if not batch:
            configurations = _Configurations(probabilities.new_ones(passes, 1), probabilities.new_zeros(1))
        elif configurations.posterior is not None:
            configurations = configurations.extend_sampled(batch[-1].rows[0], generator)
        elif configurations.ratios.shape[1] * classes <= max_configurations:
            configurations = configurations.extend_exact(batch[-1].rows[0])
        else:
            configurations = _sample([pick.rows[0] for pick in batch], samples, generator)
        batch_conditional = torch.stack([pick.rows[1] for pick in batch]).sum() if batch else 0.0
        gains = configurations.joint_entropies(by_class) - conditional - batch_conditional
        pick = arbiter.pick(gains, available, (probabilities, conditional))
        picked.append(pick)
        batch = [] if ceiling is not None and float(pick.value) >= ceiling else [*batch, pick]
        if pick.local >= 0:
            available[pick.local] = False
    if not picked:
        return torch.empty(0, dtype=torch.int64), probabilities.new_empty(0)
    return torch.tensor([pick.index for pick in picked], dtype=torch.int64), torch.stack([pick.value for pick in picked]).to(probabilities)


def distributed_batchbald_select(
    probabilities: Tensor,
    budget: int,
    max_configurations: int = 1024,
    samples: int = 1024,
    shortlist: int | None = None,
    generator: torch.Generator | None = None,
    restart_at: float | None = None,
    *,
    global_indices: Tensor,
    group: dist.ProcessGroup | None = None,
) -> tuple[Tensor, Tensor]:
    """:func:`torch_al.strategies.batchbald_select` with the items sharded over the ranks: the
    same picks and scores as one process over every shard's items, ties included.

    The shortlist (the ``shortlist`` highest BALD scores) is one :func:`distributed_topk`. Each
    pick, every rank computes its candidates' joint-entropy gains against the configurations of
    the picks so far and claims its best with that item's T × C probabilities
    (:class:`RankArbiter`: one all-gather of 8·(3 + T·C) bytes a rank); every rank extends the
    same configurations with the winner's probabilities, drawing the sampled ones from
    ``generator`` in the same state on every rank.

    Args:
        probabilities: Tensor[n, T, C], this rank's items' p_t(y | x) (the same T and C on every
            rank; n may be 0).
        budget, max_configurations, samples, shortlist, generator, restart_at: as ``batchbald_select``; the
            budget is at most every rank's items together.
        global_indices: int64 Tensor[n], strictly increasing, each item's global index.

    Returns:
        (int64 Tensor[budget] global indices in pick order, float64 Tensor[budget] scores), the
        same on every rank.
    """
    op = "distributed_batchbald_select"

    def local() -> Tensor:
        check_inputs(op, probabilities, budget, max_configurations, samples, shortlist, restart_at)
        check_global_indices(op, global_indices, probabilities.shape[0], increasing=True)
        return probabilities.double()

    candidates = on_every_rank(local, group)
    check_rows_of_every_rank(op, candidates.shape[0], budget, group)
    ids = global_indices.cpu()
    if shortlist is not None:
        listed = distributed_topk(sample_scores.bald(candidates).cpu(), ids, shortlist, group)[1]
        keep = torch.isin(ids, listed)
        candidates, ids = candidates[keep.to(candidates.device)], ids[keep]
    return batchbald_greedy(candidates, budget, max_configurations, samples, generator, RankArbiter(ids, group), restart_at)


def check_inputs(op: str, probabilities: Tensor, budget: int, max_configurations: int, samples: int, shortlist: int | None, restart_at: float | None = None) -> None:
    """The checks of :func:`batchbald_select` but the budget against N, with ``op`` naming the function."""
    if not isinstance(probabilities, Tensor) or probabilities.dim() != 3 or not probabilities.is_floating_point():
        got = f"shape {tuple(probabilities.shape)}, dtype {probabilities.dtype}" if isinstance(probabilities, Tensor) else type(probabilities).__name__
        raise ValueError(f"{op}: probabilities must be a floating Tensor[N, T, C], got {got}")
    _, passes, classes = probabilities.shape
    if passes < 2 or classes < 2:
        raise ValueError(f"{op}: probabilities need T >= 2 passes and C >= 2 classes, got shape {tuple(probabilities.shape)}")
    if not bool(probabilities.isfinite().all()) or bool((probabilities < 0).any()):
        raise ValueError(f"{op}: probabilities must be finite and non-negative (NaN, inf or a negative value found)")
    check_int(budget, f"{op}: budget", 0)
    check_int(max_configurations, f"{op}: max_configurations", 1)
    check_int(samples, f"{op}: samples", 1)
    if shortlist is not None and check_int(shortlist, f"{op}: shortlist", 1) < budget:
        raise ValueError(f"{op}: shortlist {shortlist} is smaller than the budget {budget}")
    if restart_at is not None:
        check_real(restart_at, f"{op}: restart_at", above=0, at_most=1)


class BatchBALD(BALD):
    """BatchBALD over T MC-dropout passes: the batch is built greedily, each pick maximising the
    mutual information between the labels of the batch so far and the weights
    (:func:`batchbald_select`); the passes are :class:`MonteCarloDropout`'s (one data load per
    batch, the prefix before the first dropout once per forward). Budget 1 is BALD's pick.

    Sized to its budget: the batch's mutual information is at most log T, which a budget of P
    picks outruns when its items together carry more (measured on 100 : 1 Fashion-MNIST with a
    LeNet, T = 64: 93% of log T after 20 picks, 98% after 30). Past that point the gains are
    close to 0 and the picks close to arbitrary, so by default a pick that brings the batch to
    ``restart_at`` · log T closes a sub-batch and the greedy starts another (:func:`batchbald_select`):
    every pick is chosen while its batch can still tell the weight samples apart. When that
    happens (P outruns log T), a warning says after how many picks and suggests more passes;
    ``last_cost.details`` holds ``sub_batches`` and ``sub_batch_picks`` (the mean size).

    Cost (``last_cost.forward``): T·N̂ images through the stochastic part, as BALD (plus the
    probe's at most 8). The greedy then costs O(budget · N̂ · T · C · K) float64 multiply-adds and
    O(budget · N̂ · C · K) logarithms, K = the configurations (<= max(max_configurations, samples)).

    Args:
        passes: T >= 2 (one pass has no disagreement to measure).
        max_configurations: the most label configurations the exact joint entropy enumerates.
        samples: M, the configurations drawn beyond that, from (seed, round).
        shortlist: run the greedy over the ``shortlist`` unlabeled items of highest BALD score
            only (>= budget); None (default): over all of them.
        restart_at: ρ in (0, 1]: close a sub-batch at ρ · log T (default 0.9); None: one batch.
        chunk, batch_size, progress, prefix_once: as :class:`MonteCarloDropout`.
        seed: base seed of the masks and of the sampled configurations.
    """

    def __init__(
        self,
        passes: int = 128,
        max_configurations: int = 1024,
        samples: int = 1024,
        shortlist: int | None = None,
        chunk: int | None = None,
        batch_size: int = 256,
        seed: int = 0,
        progress: bool = True,
        prefix_once: bool = True,
        restart_at: float | None = 0.9,
    ) -> None:
        check_int(passes, "BatchBALD: passes", 2)
        super().__init__(passes, chunk, batch_size, progress, prefix_once, seed)
        self.max_configurations = check_int(max_configurations, "BatchBALD: max_configurations", 1)
        self.samples = check_int(samples, "BatchBALD: samples", 1)
        self.shortlist = shortlist if shortlist is None else check_int(shortlist, "BatchBALD: shortlist", 1)
        self.restart_at = restart_at if restart_at is None else check_real(restart_at, "BatchBALD: restart_at", above=0, at_most=1)

    def query(self, model, pool, budget):
        candidates = pool.unlabeled_indices
        probabilities = self.probabilities_of(model, pool, candidates, budget)
        picks, scores = batchbald_select(
            probabilities, budget, self.max_configurations, self.samples, self.shortlist, self.generator(pool), self.restart_at
        )  # fmt: skip
        self.report(scores)
        return candidates[picks.cpu()], scores.cpu()

    def query_over_ranks(self, model, pool, budget, shard):
        """Each rank runs the T passes over its shard (the masks of (seed, round), as one
        process), then :func:`distributed_batchbald_select` (exact given the probabilities)."""
        probabilities = shard.on_every_rank(lambda: self.probabilities_of(model, pool, shard.owned, budget))
        probabilities = shard.held_or_empty(probabilities, 2, model_device(model))
        picks, scores = distributed_batchbald_select(
            probabilities, budget, self.max_configurations, self.samples, self.shortlist, self.generator(pool), self.restart_at,
            global_indices=shard.owned, group=shard.group,
        )  # fmt: skip
        self.report(scores)
        return picks

    def report(self, scores: Tensor) -> None:
        """Notes the selection's sub-batches and warns when the budget outran log T."""
        starts = sub_batch_starts(scores, self.passes, self.restart_at)
        self.note(sub_batches=len(starts), sub_batch_picks=round(scores.numel() / max(1, len(starts)), 2))
        if len(starts) > 1:
            logger.warning(
                "BatchBALD: %d picks outrun the ceiling log T = %.2f nats of T = %d passes: the batch reached %.0f%% of it after "
                "%d picks, so it was built as %d sub-batches (starting at picks %s); more passes make them larger",
                scores.numel(), math.log(self.passes), self.passes, 100 * self.restart_at, starts[1], len(starts), starts[:8],
            )  # fmt: skip

    def probabilities_of(self, model: nn.Module | None, pool: ActivePool, rows: Tensor, budget: int) -> Tensor | None:
        """The T passes' p_t(y | x) of the pool items ``rows``, Tensor[n, T, C] (None when n = 0),
        for a selection of ``budget`` items."""
        if model is None:
            raise ValueError(f"{type(self).__name__} scores with a model; got model=None")
        if self.shortlist is not None and self.shortlist < budget:
            raise ValueError(f"{type(self).__name__}: shortlist {self.shortlist} is smaller than the budget {budget}")
        if not rows.numel():
            return None
        return self.per_batch(model, inputs_loader(pool, rows, self.batch_size), LogitsCheck(type(self).__name__, rows), lambda batch: batch, pool.round)

    def generator(self, pool: ActivePool) -> torch.Generator:
        """The draws of the sampled configurations, seeded by (seed, round)."""
        return torch.Generator().manual_seed(derived_seed(self.seed, "batchbald", pool.round))
