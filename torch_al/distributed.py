"""Exact selection over ``torch.distributed``: every rank scores a disjoint shard of the pool, and
the ranks merge what they found into exactly the answer of one process on the whole pool.

Everything here ranks by (value descending, global index ascending), the order in which every
torch_al op breaks ties, so merging the ranks' best lists under it reproduces the single-process
result, ties included. Each merge is one ``all_gather`` of fixed-size (value, index) lists: the
volume per call is world_size × rows × k pairs, whatever the pool size.

Failure: each rank's local step (scoring, the local op, input checks) is followed by one small
all-gather of its outcome, so when a rank raises, every rank raises at once (the failing rank its
own error, the others a RankFailedError naming that rank and its message) instead of waiting in the
next collective. When a rank dies without raising, the others' next collective fails: at once
under gloo (the connection closes), at the process group's timeout otherwise
(``init_process_group(timeout=...)``); only rank 0 writes state, after every rank agrees, so the
saved state stays as it was.
"""

import math
from typing import TYPE_CHECKING, Callable, List, Literal, Optional, Sequence, Tuple, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from torch_al.strategies.arbiter import Arbiter, Pick, first_maximum
from torch_al.devices import model_device
from torch_al.embeddings import embed

if TYPE_CHECKING:
    from torch_al.pool import ActivePool
    from torch_al.strategies.base import Strategy

Layout = Literal["contiguous", "strided"]
T = TypeVar("T")
_NONE = torch.iinfo(torch.int64).max  # sorts an empty entry (-1) after every real index


def shard(indices: Tensor, rank: int, world_size: int, layout: Layout = "contiguous") -> Tensor:
    """This rank's part of ``indices``: the ranks' parts are disjoint and together are exactly
    ``indices`` (no item repeated, none dropped, unlike ``DistributedSampler``'s padding).

    Args:
        indices: int64 Tensor[N], e.g. a pool's unlabeled global indices.
        rank, world_size: 0 <= rank < world_size.
        layout: ``"contiguous"``: rank r gets one block, the first N mod W ranks one item more;
            ``"strided"``: items r, r + W, r + 2W, ...

    Returns:
        int64 Tensor, a view of ``indices``.
    """
    if not isinstance(indices, Tensor) or indices.dim() != 1 or indices.dtype != torch.int64:
        got = f"shape {tuple(indices.shape)} dtype {indices.dtype}" if isinstance(indices, Tensor) else type(indices).__name__
        raise ValueError(f"shard: indices must be an int64 Tensor[N], got {got}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"shard: need 0 <= rank < world_size, got rank={rank} world_size={world_size}")
    if layout == "strided":
        return indices[rank::world_size]
    if layout != "contiguous":
        raise ValueError(f'shard: layout must be "contiguous" or "strided", got {layout!r}')
    base, extra = divmod(indices.numel(), world_size)
    start = rank * base + min(rank, extra)
    return indices[start : start + base + (1 if rank < extra else 0)]


def merge_ranked(values: Tensor, indices: Tensor, k: int) -> Tuple[Tensor, Tensor]:
    """Per row, the k best of (values[R, C], indices[R, C]) by value descending, then index
    ascending; entries with index -1 (none) come last. Padded with (-inf, -1) to k columns."""
    rows, columns = values.shape
    if columns < k:
        values = torch.cat([values, values.new_full((rows, k - columns), float("-inf"))], dim=1)
        indices = torch.cat([indices, indices.new_full((rows, k - columns), -1)], dim=1)
    by_index = torch.where(indices < 0, _NONE, indices).argsort(dim=1, stable=True)
    values, indices = values.gather(1, by_index), indices.gather(1, by_index)
    best = values.argsort(dim=1, descending=True, stable=True)[:, :k]
    return values.gather(1, best), indices.gather(1, best)


def gather_ranked(values: Tensor, indices: Tensor, k: int, group: Optional[dist.ProcessGroup] = None) -> Tuple[Tensor, Tensor]:
    """Merges every rank's per-row lists (values[R, k], global indices[R, k], the same R, k and
    dtype on every rank) into the k best per row over all ranks; the result is the same on every
    rank, on the device of ``values``."""
    world_size = _world_size(group)
    device = _collective_device(group)
    gathered = []
    for tensor in (values, indices):
        parts = [torch.empty_like(tensor, device=device) for _ in range(world_size)]
        dist.all_gather(parts, tensor.to(device).contiguous(), group=group)
        gathered.append(torch.cat(parts, dim=1).to(values.device))
    return merge_ranked(*gathered, k)


def distributed_topk(scores: Tensor, global_indices: Tensor, count: int, group: Optional[dist.ProcessGroup] = None) -> Tuple[Tensor, Tensor]:
    """The ``count`` highest scores over every rank's shard, ties to the lower global index.

    Args:
        scores: Tensor[n], this rank's scores (floating; NaN is an error).
        global_indices: int64 Tensor[n], the global index of each.
        count: >= 0.

    Returns:
        (values[c], global indices[c]), the same on every rank, c = min(count, total items).
    """

    def local() -> Tuple[Tensor, Tensor]:
        if scores.dim() != 1 or global_indices.shape != scores.shape or global_indices.dtype != torch.int64:
            raise ValueError(
                f"distributed_topk: scores must be Tensor[n] and global_indices int64 Tensor[n], got shapes "
                f"{tuple(scores.shape)} and {tuple(global_indices.shape)} ({global_indices.dtype})"
            )
        if count < 0:
            raise ValueError(f"distributed_topk: count must be >= 0, got {count}")
        if bool(scores.isnan().any()):
            raise ValueError(f"distributed_topk: rank {_rank(group)}'s scores contain NaN")
        return merge_ranked(scores[None], global_indices[None], count)

    values, indices = gather_ranked(*_on_every_rank(local, group), count, group)
    found = indices[0] >= 0
    return values[0][found], indices[0][found]


def distributed_pfk_topk(
    query_z: List[Tensor],
    pool_z: List[Tensor],
    query_g: Optional[List[Tensor]] = None,
    pool_g: Optional[List[Tensor]] = None,
    pool_mask: Optional[Tensor] = None,
    k: int = 1,
    combine: str = "product",
    *,
    global_indices: Tensor,
    precision: str = "exact",
    check_finite: bool = True,
    group: Optional[dist.ProcessGroup] = None,
) -> Tuple[Tensor, Tensor]:
    """:func:`torch_al.pfk_topk` with the pool sharded over the ranks: each rank passes the same
    query descriptors and its shard's pool descriptors, mask and ``global_indices`` (int64
    Tensor[n], on the descriptors' device). Returns (values[M, k], global indices[M, k]), equal on
    every rank to ``pfk_topk`` over the whole pool."""
    from torch_al.ops.pfk_topk import pfk_topk

    query = lambda: pfk_topk(query_z, pool_z, query_g, pool_g, pool_mask, k, combine, precision, check_finite)  # noqa: E731
    return _merged_lists("distributed_pfk_topk", query, global_indices, pool_z[0].shape[0], k, group)


def distributed_select_unique(
    query_z: List[Tensor],
    pool_z: List[Tensor],
    budget: int,
    query_g: Optional[List[Tensor]] = None,
    pool_g: Optional[List[Tensor]] = None,
    pool_mask: Optional[Tensor] = None,
    k: int = 32,
    combine: str = "product",
    rule: str = "rank",
    *,
    global_indices: Tensor,
    precision: str = "exact",
    group: Optional[dist.ProcessGroup] = None,
) -> Tensor:
    """:func:`torch_al.select_unique` with the pool sharded over the ranks (arguments as in
    :func:`distributed_pfk_topk`): the merged per-row lists are filled rank by rank, and when the
    candidates run out every rank masks the points taken from its shard and the ranks query again,
    as the single-process op does. Returns the same global indices on every rank, in the order of
    ``select_unique`` over the whole pool."""
    from torch_al.ops.pfk_column_topk import pfk_column_topk
    from torch_al.ops.select_unique import select_unique_ranked

    if rule not in ("rank", "column"):
        raise ValueError(f'distributed_select_unique: rule must be "rank" or "column", got {rule!r}')
    if budget < 0 or k < 1:
        raise ValueError(f"distributed_select_unique: need budget >= 0 and k >= 1, got budget={budget} k={k}")
    mask = pool_mask if pool_mask is not None else torch.zeros(pool_z[0].shape[0], dtype=torch.bool, device=pool_z[0].device)
    if rule == "column":  # the first query validates every input before the budget is checked
        query = lambda: tuple(t[None] for t in pfk_column_topk(query_z, pool_z, query_g, pool_g, mask, budget, combine, precision))  # noqa: E731
        merged = _merged_lists("distributed_select_unique", query, global_indices, pool_z[0].shape[0], budget, group)
        values, indices = merged[0][0], merged[1][0]
    else:
        values, indices = distributed_pfk_topk(
            query_z, pool_z, query_g, pool_g, mask, k, combine, global_indices=global_indices, precision=precision, group=group
        )
    selectable = _all_reduced((~mask).sum().reshape(1), group)
    if budget > int(selectable):
        raise ValueError(f"distributed_select_unique: budget {budget} exceeds the {int(selectable)} selectable (unmasked) pool points")
    if budget > 0 and query_z[0].shape[0] == 0:
        raise ValueError(f"distributed_select_unique: no query rows (M = 0) to match a budget of {budget}")
    if rule == "column":
        return indices
    selected = select_unique_ranked(values, indices, budget)
    found = int((selected >= 0).sum())
    while found < budget:  # each re-query has an unmasked point and a query row: it adds at least one
        mask = mask | torch.isin(global_indices, selected[:found])
        values, indices = distributed_pfk_topk(  # the same descriptors: checked by the first query
            query_z, pool_z, query_g, pool_g, mask, k, combine, global_indices=global_indices, precision=precision, check_finite=False, group=group
        )
        more = select_unique_ranked(values, indices, budget - found)
        selected[found:] = more
        found += int((more >= 0).sum())
    return selected


def distributed_kcenter_greedy(
    x: Tensor,
    k: int,
    centers: Optional[Tensor] = None,
    *,
    global_indices: Tensor,
    first: Optional[int] = None,
    metric: str = "euclidean",
    group: Optional[dist.ProcessGroup] = None,
) -> Tuple[Tensor, Tensor]:
    """:func:`torch_al.kcenter_greedy` with the points sharded over the ranks. Each rank passes
    its shard's points and the same initial centers; the picks are those of ``kcenter_greedy`` on
    one process over every shard's points with the centers as its initial set, ties included.

    Per pick, the ranks all-gather their farthest point (value, global index) with its row in
    float64 (16 + 8 D bytes a rank; :meth:`RankArbiter.claim`), and every rank lowers its points' distances with the winner's
    row (:func:`torch_al.kcenter_greedy_step`, the arithmetic of ``kcenter_greedy``): one
    collective and one pass over the shard per pick. Identical bit for bit when there are at most 16 centers;
    with more, each point's nearest center comes from a blocked matrix product as on one process,
    whose rounding could only differ between two centers at near-equal distance from a point.

    Args:
        x: Tensor[n, D], this rank's points (floating, finite); n may be 0.
        k: picks, 0 <= k <= the points of every rank together.
        centers: Tensor[S, D] (x's dtype), the initial centers, e.g. the labeled set's embeddings
            in ascending index order; the same on every rank.
        global_indices: int64 Tensor[n] on x's device, strictly increasing: each point's global index.
        first: the global index of the first pick when there are no centers (default: the
            smallest global index on any rank).
        metric: ``"euclidean"`` or ``"cosine"``.

    Returns:
        (picks: int64 Tensor[k] of global indices, the same on every rank; min_dist: Tensor[n],
        this rank's points' distance to their nearest center after the last pick, as
        ``kcenter_greedy`` returns it).
    """
    from torch_al.ops.kcenter_greedy_step import kcenter_greedy_step

    has_centers = centers is not None and centers.shape[0] > 0
    min_sq = torch.full((x.shape[0],), float("inf"), dtype=torch.float64 if x.dtype == torch.float64 else torch.float32, device=x.device)
    selectable = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)

    def candidate() -> Tuple[Tensor, Tensor]:
        """This rank's claim to the first pick (value, local row; -1: none): its farthest point
        from the centers, or, with no centers, ``first`` (or its smallest global index) if held."""
        _check_kcenter_inputs(x, k, centers, global_indices, metric)
        if has_centers:
            return kcenter_greedy_step(x, centers, min_sq, selectable, metric)
        held = torch.arange(min(x.shape[0], 1)) if first is None else (global_indices == first).nonzero().flatten().cpu()
        return (torch.tensor(0.0), held[0]) if held.numel() else (torch.tensor(-1.0), torch.tensor(-1))

    value, local = _on_every_rank(candidate, group)
    _rows_of_every_rank("distributed_kcenter_greedy", x.shape[0], k, group)
    arbiter = RankArbiter(global_indices, group)
    picks: List[int] = []
    for _ in range(k):
        pick = arbiter.claim(float(value), int(local), (x,))
        if pick.index < 0:  # only the first pick without centers can find no candidate
            raise ValueError(f"distributed_kcenter_greedy: first={first} is the global index of no rank's point")
        picks.append(pick.index)
        if pick.local >= 0:
            selectable[pick.local] = False
        value, local = kcenter_greedy_step(x, pick.rows[0][None], min_sq, selectable, metric)
    min_dist = min_sq * 0.5 if metric == "cosine" else min_sq.sqrt()
    return torch.tensor(picks, dtype=torch.int64), min_dist


def distributed_kmeanspp_factored(
    a: Tensor,
    b: Tensor,
    count: int,
    centers: Optional[Tuple[Tensor, Tensor]] = None,
    *,
    global_indices: Tensor,
    generator: Optional[torch.Generator] = None,
    group: Optional[dist.ProcessGroup] = None,
) -> Tensor:
    """:func:`torch_al.kmeanspp_factored` (BADGE's k-means++ seeding over e_i = a_i ⊗ b_i) with the
    rows sharded over the ranks in index order (rank r's rows all precede rank r + 1's: the
    ``contiguous`` layout of :func:`shard`). Every rank draws the same uniforms from ``generator``;
    pick t is the first row, in global order, whose float64 running sum of D² exceeds
    ``u[t] · Σ D²``, so the running sum is passed from rank to rank (W - 1 point-to-point hops per
    pick) and every rank holds the same total. The first pick without centers is the largest
    ‖e_i‖; when every D² is 0, the lowest-index row not yet picked. Each rank's claim travels with
    its factors, and every rank lowers its D² with the winner's.

    Same picks as ``kmeanspp_factored`` over every shard's rows (tested), up to float64 rounding:
    the distances here are float64 torch products and sums, the op's are float64 sums in another
    order, so a draw within rounding of a row boundary (about 1e-16 of Σ D²) can land on the
    neighbouring row, the guarantee the op gives between CPU and CUDA.

    Args:
        a: Tensor[n, C], b: Tensor[n, D] (float32 or float64, finite), this rank's factors.
        count: picks, 0 <= count <= every rank's rows together.
        centers: (a_c[S, C], b_c[S, D]), initial centers' factors, the same on every rank.
        global_indices: int64 Tensor[n], strictly increasing, each row's global index.
        generator: the CPU generator of the draws, in the same state on every rank.

    Returns:
        int64 Tensor[count] of global indices, in pick order, the same on every rank.
    """
    op = "distributed_kmeanspp_factored"
    uniforms = torch.rand(count, generator=generator, dtype=torch.float64)

    def local() -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        for name, rows in (("a", a), ("b", b), *((("centers[0]", centers[0]), ("centers[1]", centers[1])) if centers else ())):
            if rows.dim() != 2 or not rows.dtype.is_floating_point or not bool(rows.isfinite().all()):
                raise ValueError(f"{op}: {name} must be a finite floating Tensor[rows, width], got shape {tuple(rows.shape)} dtype {rows.dtype}")
        if a.shape[0] != b.shape[0] or (centers and (centers[0].shape[1:] != a.shape[1:] or centers[1].shape[1:] != b.shape[1:])):
            raise ValueError(f"{op}: a {tuple(a.shape)} and b {tuple(b.shape)} need the same rows, centers their widths")
        _check_global_indices(op, global_indices, a.shape[0], increasing=True)
        a64, b64 = a.double(), b.double()
        norms = a64.square().sum(1) * b64.square().sum(1)
        min_sq = torch.full((a.shape[0],), float("inf"), dtype=torch.float64, device=a.device)
        if centers:
            for center_a, center_b in zip(centers[0].double().split(1024), centers[1].double().split(1024)):
                min_sq = torch.minimum(min_sq, _factored_sq(a64, b64, norms, center_a, center_b).amin(1))
        return a64, b64, norms, min_sq

    a64, b64, norms, min_sq = _on_every_rank(local, group)
    _check_rank_order(op, global_indices, group)
    _rows_of_every_rank(op, a.shape[0], count, group)
    selectable = torch.ones(a.shape[0], dtype=torch.bool, device=a.device)
    picks = []
    factors = torch.cat([a64, b64], dim=1)  # a row's claim carries its factors: no broadcast per pick
    arbiter = RankArbiter(global_indices, group)
    for t in range(count):
        if t == 0 and not centers:  # the largest embedding, ties to the lower index
            pick = arbiter.pick(norms, selectable, (factors,))
        else:
            pick = _drawn_over_ranks(torch.where(selectable, min_sq, 0.0), selectable, uniforms[t], factors, arbiter)
        picks.append(pick.index)
        if pick.local >= 0:
            selectable[pick.local] = False
        row = pick.rows[0][None]
        min_sq = torch.minimum(min_sq, _factored_sq(a64, b64, norms, row[:, : a.shape[1]], row[:, a.shape[1] :])[:, 0])
        min_sq[~selectable] = 0.0
    return torch.tensor(picks, dtype=torch.int64)


def _factored_sq(a: Tensor, b: Tensor, norms: Tensor, center_a: Tensor, center_b: Tensor) -> Tensor:
    """[n, S] squared distances ‖a_i ⊗ b_i − a_c ⊗ b_c‖² from the factors (norms: the rows'
    ‖a_i‖²‖b_i‖²), clamped at 0."""
    center_norms = center_a.square().sum(1) * center_b.square().sum(1)
    return (norms[:, None] + center_norms[None, :] - 2 * (a @ center_a.T) * (b @ center_b.T)).clamp_min(0)


def _drawn_over_ranks(weights: Tensor, selectable: Tensor, u: Tensor, factors: Tensor, arbiter: "RankArbiter") -> Pick:
    """The D² draw u over the ranks: the first row in global order whose running sum of
    weights exceeds u · total, the sum carried from rank to rank, with its factors."""
    group, ids = arbiter.group, arbiter.global_indices
    rank, world_size = _rank(group), _world_size(group)
    device = _collective_device(group)
    running = torch.zeros(1, dtype=torch.float64, device=device)
    if rank > 0:
        dist.recv(running, src=_global(rank - 1, group), group=group)
    cumulative = torch.cumsum(torch.cat([running.cpu(), weights.cpu()]), 0)[1:]  # sequential on the CPU
    total = (cumulative[-1:] if cumulative.numel() else running.cpu()).to(device, copy=True)  # the broadcast writes into it
    if rank + 1 < world_size:
        dist.send(total, dst=_global(rank + 1, group), group=group)
    dist.broadcast(total, src=_global(world_size - 1, group), group=group)
    if bool(total.item() > 0):
        first = int(torch.searchsorted(cumulative, u * total.cpu(), right=True)) if cumulative.numel() else 0
        drawn = arbiter.claim(0.0, first if first < ids.numel() else -1, (factors,))  # the lowest global index reached
        if drawn.index >= 0:
            return drawn
        # u · total rounded up to the total itself: the last weighted row (largest index) is the one reached
        weighted = (weights.cpu() > 0).nonzero().flatten()
        last = int(weighted[-1]) if weighted.numel() else -1
        return arbiter.claim(float(ids[last]) if last >= 0 else 0.0, last, (factors,))
    held = selectable.cpu().nonzero().flatten()
    return arbiter.claim(0.0, int(held[0]) if held.numel() else -1, (factors,))


def _check_rank_order(op: str, global_indices: Tensor, group: Optional[dist.ProcessGroup]) -> None:
    """Every rank's rows precede the next non-empty rank's (contiguous shards in rank order)."""
    bounds: List[Optional[Tuple[int, int]]] = [None] * _world_size(group)
    mine = (int(global_indices[0]), int(global_indices[-1])) if global_indices.numel() else None
    dist.all_gather_object(bounds, mine, group=group)
    held = [bound for bound in bounds if bound is not None]
    if any(earlier[1] >= later[0] for earlier, later in zip(held, held[1:])):
        raise ValueError(f'{op}: the draw walks the rows in global order, so the ranks must hold contiguous shards in rank order (layout="contiguous"); got (first, last) global indices {bounds}')


def _global(rank: int, group: Optional[dist.ProcessGroup]) -> int:
    return dist.get_global_rank(group, rank) if group is not None else rank


def distributed_facility_location_greedy(
    candidates: Tensor, universe: Tensor, count: int, *, group: Optional[dist.ProcessGroup] = None
) -> Tuple[Tensor, Tensor]:
    """:func:`torch_al.facility_location_greedy` with the universe sharded over the ranks: each
    rank passes the same candidates and its shard of the universe. Per pick, every rank sums each
    remaining candidate's gain Σ_u max(0, s(a, u) − cover[u]) over its shard in float64, one
    all-reduce adds the ranks' sums (K values), the largest gain wins (ties to the lower candidate
    index) and every rank raises its points' cover with the winner: the plain greedy, K · N · D
    multiply-adds per pick over all ranks together.

    The op takes each similarity as a fixed-order chain of fused multiply-adds and each gain as a
    fixed-order sum over the whole universe; here similarities come from matrix products and gains
    are sums of per-rank sums, so the picks can differ from the op's only where two candidates'
    gains agree to within that rounding (about 1e-7 relative for float32 descriptors); exact ties,
    e.g. duplicate candidates, go to the lower index on both.

    Args:
        candidates: Tensor[K, D], the same on every rank (float32 or float64, finite).
        universe: Tensor[n, D], this rank's points to cover (n may be 0).
        count: picks, 0 <= count <= K.

    Returns:
        (picks: int64 Tensor[count] of candidate indices, gains: float64 Tensor[count]), the same
        on every rank.
    """
    op = "distributed_facility_location_greedy"

    def local() -> None:
        if candidates.dim() != 2 or universe.dim() != 2 or candidates.shape[1] != universe.shape[1]:
            raise ValueError(f"{op}: candidates must be Tensor[K, D] and universe Tensor[n, D], got {tuple(candidates.shape)} and {tuple(universe.shape)}")
        if not 0 <= count <= candidates.shape[0]:
            raise ValueError(f"{op}: count must lie in [0, K = {candidates.shape[0]}], got {count}")
        for name, rows in (("candidates", candidates), ("universe", universe)):
            if not rows.dtype.is_floating_point or not bool(rows.isfinite().all()):
                raise ValueError(f"{op}: {name} must be finite and floating, got dtype {rows.dtype}")

    _on_every_rank(local, group)
    cover = universe.new_zeros(universe.shape[0])
    taken = torch.zeros(candidates.shape[0], dtype=torch.bool)
    picks, gains = [], []
    for _ in range(count):
        gain = torch.zeros(candidates.shape[0], dtype=torch.float64, device=candidates.device)
        for start in range(0, universe.shape[0], 4096):
            similarity = candidates @ universe[start : start + 4096].T
            gain += (similarity - cover[start : start + 4096]).clamp_min(0).sum(1, dtype=torch.float64)
        gain = _all_reduced(gain, group).cpu().masked_fill(taken, -1.0)
        best = int(gain.argmax())  # the first maximum: ties to the lower candidate index
        picks.append(best)
        gains.append(float(gain[best]))
        taken[best] = True
        cover = torch.maximum(cover, universe @ candidates[best])
    return torch.tensor(picks, dtype=torch.int64), torch.tensor(gains, dtype=torch.float64)


def distributed_batchbald_select(
    probabilities: Tensor,
    budget: int,
    max_configurations: int = 1024,
    samples: int = 1024,
    shortlist: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    restart_at: Optional[float] = None,
    *,
    global_indices: Tensor,
    group: Optional[dist.ProcessGroup] = None,
) -> Tuple[Tensor, Tensor]:
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
    from torch_al.strategies import sample_scores
    from torch_al.strategies.bayesian.batchbald import batchbald_greedy, check_inputs

    op = "distributed_batchbald_select"

    def local() -> Tensor:
        check_inputs(op, probabilities, budget, max_configurations, samples, shortlist, restart_at)
        _check_global_indices(op, global_indices, probabilities.shape[0], increasing=True)
        return probabilities.double()

    candidates = _on_every_rank(local, group)
    _rows_of_every_rank(op, candidates.shape[0], budget, group)
    ids = global_indices.cpu()
    if shortlist is not None:
        listed = distributed_topk(sample_scores.bald(candidates).cpu(), ids, shortlist, group)[1]
        keep = torch.isin(ids, listed)
        candidates, ids = candidates[keep.to(candidates.device)], ids[keep]
    return batchbald_greedy(candidates, budget, max_configurations, samples, generator, RankArbiter(ids, group), restart_at)


def _check_kcenter_inputs(x: Tensor, k: int, centers: Optional[Tensor], global_indices: Tensor, metric: str) -> None:
    op = "distributed_kcenter_greedy"
    if x.dim() != 2 or not x.dtype.is_floating_point:
        raise ValueError(f"{op}: x must be a floating Tensor[n, D], got shape {tuple(x.shape)} dtype {x.dtype}")
    if k < 0 or metric not in ("euclidean", "cosine"):
        raise ValueError(f'{op}: need k >= 0 and metric "euclidean" or "cosine", got k={k} metric={metric!r}')
    if centers is not None and (centers.dim() != 2 or centers.shape[1] != x.shape[1] or centers.device != x.device):
        raise ValueError(f"{op}: centers must be Tensor[S, {x.shape[1]}] on {x.device}, got shape {tuple(centers.shape)} on {centers.device}")
    _check_global_indices(op, global_indices, x.shape[0], increasing=True)
    if global_indices.device != x.device:
        raise ValueError(f"{op}: global_indices must be on x's device {x.device}, got {global_indices.device}")
    if centers is not None and centers.dtype != x.dtype:
        raise ValueError(f"{op}: centers must have x's dtype {x.dtype}, got {centers.dtype}")
    for name, rows in (("x", x), ("centers", centers)):
        if rows is None:
            continue
        if not bool(rows.isfinite().all()):
            raise ValueError(f"{op}: {name} must be finite; row {int((~rows.isfinite()).any(1).nonzero()[0])} has NaN or inf")
        squared_norms = rows.to(torch.float64 if x.dtype == torch.float64 else torch.float32).square().sum(1)
        unusable = (squared_norms == 0) | squared_norms.isinf()
        if metric == "cosine" and bool(unusable.any()):
            raise ValueError(f"{op}: metric 'cosine' needs rows with a nonzero, finite norm; {name} row {int(unusable.nonzero()[0])} fails")


class RankArbiter(Arbiter):
    """The :class:`~torch_al.strategies.arbiter.Arbiter` of ranks that each hold a shard of the
    candidates (``global_indices``: int64 Tensor[n], increasing, this rank's rows): the loops of
    BatchBALD, M2's anchor-distance rule and DAL run on every rank with it and make the picks of
    one process, and the k-center and D² greedy selections claim their picks through it.

    - a pick: every rank claims its first maximum; :meth:`claim` is the one all-gather that
      decides and brings the winner's rows to every rank;
    - a total: one all-reduce, whose result is the same on every rank (what data-parallel
      training relies on);
    - the top of scores: :func:`distributed_topk`.
    """

    def __init__(self, global_indices: Tensor, group: Optional[dist.ProcessGroup] = None) -> None:
        self.global_indices, self.group, self.rank = global_indices.cpu(), group, _rank(group)

    def total(self, values: Tensor) -> Tensor:
        return _all_reduced(values, self.group)

    def top(self, values: Tensor, indices: Tensor, count: int) -> Tuple[Tensor, Tensor]:
        found, picks = distributed_topk(values.double().cpu(), indices.cpu(), count, self.group)
        return picks, found.to(values.device, values.dtype)

    def pick(self, values: Tensor, available: Tensor, rows: Sequence[Tensor]) -> Pick:
        local = first_maximum(values, available)
        pick = self.claim(float(values[local]) if local >= 0 else 0.0, local, rows)
        if pick.index < 0:
            raise RuntimeError("RankArbiter.pick: no rank has an available candidate")
        return pick

    def claim(self, value: float, local: int, rows: Sequence[Tensor]) -> Pick:
        """The best of every rank's claim (``value`` for its row ``local``; -1: no claim) by value
        descending, then global index ascending, with the winner's rows of ``rows`` (each
        Tensor[n, ...]) in their dtype and device; index -1 when no rank claims. One all-gather of
        [value, global index, *rows] in float64 (exact for every float dtype and for indices
        below 2^53): the winner's rows arrive with the decision."""
        widths = [math.prod(part.shape[1:]) for part in rows]
        if local >= 0:  # only the claimed rows are converted: no pass over the shard per pick
            head = torch.tensor([value, float(self.global_indices[local])], dtype=torch.float64)
            mine = torch.cat([head, *(part[local].reshape(-1).double().cpu() for part in rows)])
        else:
            mine = torch.cat([torch.tensor([-1.0, -1.0], dtype=torch.float64), torch.zeros(sum(widths), dtype=torch.float64)])
        device = _collective_device(self.group)
        parts = [torch.empty_like(mine, device=device) for _ in range(_world_size(self.group))]
        dist.all_gather(parts, mine.to(device), group=self.group)
        parts = [part.cpu() for part in parts]
        claims = [(float(part[0]), int(part[1]), owner) for owner, part in enumerate(parts) if int(part[1]) >= 0]
        if not claims:
            return Pick(-1, torch.tensor(float("nan"), dtype=torch.float64), (), -1)
        _, winner, owner = min(claims, key=lambda c: (-c[0], c[1]))
        winner_rows = tuple(part.view(original.shape[1:]).to(original.device, original.dtype) for part, original in zip(parts[owner][2:].split(widths), rows))
        return Pick(winner, parts[owner][0], winner_rows, local if owner == self.rank else -1)


def distributed_select(
    strategy: "Strategy",
    model: Optional[nn.Module],
    pool: "ActivePool",
    budget: int,
    *,
    layout: Layout = "contiguous",
    group: Optional[dist.ProcessGroup] = None,
) -> Tensor:
    """``strategy.select(model, pool, budget)`` with the pool's unlabeled items sharded over the
    ranks; every rank passes the same pool state and model and gets the same global indices.

    - Score strategies (entropy, margin, least confidence, the MC-dropout family, ensembles):
      each rank scores its shard, then :func:`distributed_topk` merges. Exact (the single-process
      selection, ties to the lower index) wherever an item's score does not depend on which
      other items share its batch; the MC-dropout family included, whose consistent masks come
      from (seed, round) on every rank.
    - PCC, PFK, EBA: each rank describes the validation set and its shard, then
      :func:`distributed_select_unique` (exact under the same batch caveat, except with the
      Monte-Carlo estimators ``trace_cov`` / ``mutual_info``, whose perturbations are each rank's
      own draws).
    - BADGE: each rank forms its shard's gradient-embedding factors, then
      :func:`distributed_kmeanspp_factored` draws (the same picks up to float64 rounding at a
      draw boundary; the contiguous layout only: the draw walks the pool in index order).
    - CEAL: the query as a score strategy's (exact); ``last_pseudo_labels`` is the union of the
      ranks' confident items, the same on every rank.
    - BGADL: BALD's picks as above, then every rank trains the same seeded generator on the whole
      pool and keeps the picks' generated twins (its training set).
    - VAAL and M2-VAAL: every rank trains the same seeded networks on batches drawn from the
      whole pool, scores its shard with the discriminator, then :func:`distributed_topk`; with
      nothing labeled, rank 0 draws.
    - M2-VAAL's rule 2 (``m2-confidence-distance``): the same training on every rank, the
      per-class largest distances all-reduced, then :func:`distributed_topk` (exact).
    - M2-VAAL's rule 1 (``m2-anchor-distance``): the same training on every rank, then the
      rule's greedy with a :class:`RankArbiter` (exact: one all-gather a pick).
    - BatchBALD: each rank runs the T passes over its shard (the same masks as one process), then
      :func:`distributed_batchbald_select` (exact given the probabilities).
    - DAL: each rank embeds its shard (rank 0 the labeled items too); each sub-query's training
      rows (the labeled items and the sampled unlabeled ones, at most (1 + unlabeled_ratio) ×
      labeled) are gathered to every rank, which trains the same discriminator and ranks the
      sampled items as one process does (exact).
    - Learning loss and EMOC: each rank scores its shard (EMOC averages over the same sample of
      the pool on every rank), then :func:`distributed_topk` (exact); learning loss with nothing
      labeled draws on rank 0 as one process would.
    - Suggestive annotation: each rank scores and describes its shard; the K most uncertain are
      merged, their descriptors gathered, and :func:`distributed_facility_location_greedy` covers
      the sharded pool (the same picks unless two gains agree to within rounding).
    - Core-set: each rank embeds the labeled items and its shard, then
      :func:`distributed_kcenter_greedy` picks (exact, under the same batch caveat).
    - Random: rank 0 draws, the others receive its picks (exact).
    - A strategy of another kind (a user's own ``Strategy``, or a ``ScoreStrategy`` whose
      ``rank`` is its own) has no distributed form: a TypeError names it.

    ``strategy.last_cost`` counts this rank's passes.
    """
    from torch_al.strategies.base import ItemScoreStrategy, SelectionCost
    from torch_al.strategies.bayesian.batchbald import BatchBALD
    from torch_al.strategies.learned.discriminative import DiscriminativeAL
    from torch_al.strategies.distribution_matching.matching import DistributionMatching
    from torch_al.strategies.generative.bgadl import BGADL
    from torch_al.strategies.generative.images import pool_image_shape
    from torch_al.strategies.generative.vaal import VAAL
    from torch_al.strategies.diversity.badge import BADGE
    from torch_al.strategies.diversity.coreset import CoreSet
    from torch_al.strategies.diversity.suggestive import SuggestiveAnnotation
    from torch_al.strategies.learned.learning_loss import LearningLoss
    from torch_al.strategies.random_sampling import Random
    from torch_al.strategies.uncertainty.ceal import CEAL
    from torch_al.validation import check_budget

    name = type(strategy).__name__ + (f" rule {strategy.rule!r}" if hasattr(strategy, "rule") else "")
    rank, world_size = _rank(group), _world_size(group)
    budget = check_budget(budget, int(pool.unlabeled_indices.numel()))
    strategy.last_cost = SelectionCost()  # each distributed form charges this rank's passes to it
    if budget == 0:
        return torch.empty(0, dtype=torch.int64)
    if isinstance(strategy, Random) or (isinstance(strategy, (LearningLoss, VAAL)) and not pool.labeled_indices.numel()):  # they draw at random
        picked = _on_every_rank(lambda: strategy.select(model, pool, budget) if rank == 0 else torch.empty(budget, dtype=torch.int64), group)
        dist.broadcast(picked, src=_global(0, group), group=group)
        return picked
    owned = shard(pool.unlabeled_indices, rank, world_size, layout)
    distance_rules = {"confidence-distance": _distributed_confidence_distance, "anchor-distance": _distributed_anchor_distance}
    if getattr(strategy, "rule", None) in distance_rules:
        return distance_rules[strategy.rule](strategy, model, pool, budget, owned, group)
    special = {
        CEAL: _distributed_ceal, DistributionMatching: _distributed_matching, SuggestiveAnnotation: _distributed_suggestive,
        BADGE: _distributed_badge, CoreSet: _distributed_coreset, BatchBALD: _distributed_batchbald, DiscriminativeAL: _distributed_dal,
    }  # fmt: skip
    for kind, distributed_form in special.items():
        if isinstance(strategy, kind):
            return distributed_form(strategy, model, pool, budget, owned, group)
    discriminator_rule = isinstance(strategy, VAAL) and getattr(strategy, "rule", "discriminator") == "discriminator"
    ranks_by_item_scores = discriminator_rule or isinstance(strategy, BGADL) or (
        isinstance(strategy, ItemScoreStrategy) and type(strategy).rank in (ItemScoreStrategy.rank, LearningLoss.rank)
    )
    if not ranks_by_item_scores:
        raise TypeError(
            f"distributed_select: {name} has no distributed form: every built-in strategy has one, and a "
            "ItemScoreStrategy that keeps its rank (its items' scores merge exactly); build another "
            "from torch_al.distributed's pieces (distributed_topk, RankArbiter, ...)"
        )

    def local() -> Tensor:
        if not owned.numel():
            return torch.empty(0, dtype=torch.float64)
        return strategy.item_scores(model, pool, owned).double().cpu()

    picks = distributed_topk(_on_every_rank(local, group), owned, budget, group)[1]
    if isinstance(strategy, BGADL):  # the generator trains on the whole pool: the same on every rank
        image_shape = pool_image_shape("BGADL", pool, int(pool.unlabeled_indices[0]))
        _on_every_rank(lambda: strategy.add_twins(model, pool, picks, image_shape), group)
    return picks


def _distributed_confidence_distance(strategy, model: Optional[nn.Module], pool: "ActivePool", budget: int, owned: Tensor, group) -> Tensor:
    """M2-VAAL's rule 2 over the ranks: the same seeded training on every rank, each rank's shard
    scored up to the per-class normalisation, whose largest distances one all-reduce (a maximum:
    exact) makes the whole pool's; then one merge."""
    from torch_al.strategies.generative.m2_vaal import class_largest_distances, confidence_distance_from_parts, confidence_distance_parts

    def local():
        codes, anchors, classes = strategy.latent_codes(model, pool, owned)
        return confidence_distance_parts(codes, codes[:, -classes:], *anchors), classes

    parts, classes = _on_every_rank(local, group)
    largest = _all_reduced(class_largest_distances(parts, classes), group, dist.ReduceOp.MAX)
    return distributed_topk(confidence_distance_from_parts(parts, largest), owned, budget, group)[1]


def _distributed_anchor_distance(strategy, model: Optional[nn.Module], pool: "ActivePool", budget: int, owned: Tensor, group) -> Tensor:
    """M2-VAAL's rule 1 over the ranks: the same seeded training on every rank, each rank's
    shard's latent codes, then the rule's greedy with a :class:`RankArbiter` (per pick one
    all-gather carrying the winner's code; per-class counts by one all-reduce)."""
    from torch_al.strategies.generative.m2_vaal import anchor_distance_select

    codes, anchors, classes = _on_every_rank(lambda: strategy.latent_codes(model, pool, owned), group)
    return anchor_distance_select(codes, codes[:, -classes:].argmax(1), *anchors, budget, classes, RankArbiter(owned, group))[0]


def _distributed_batchbald(strategy, model: Optional[nn.Module], pool: "ActivePool", budget: int, owned: Tensor, group) -> Tensor:
    """BatchBALD over the ranks: each rank runs the T passes over its shard (the masks of
    (seed, round), as one process), then :func:`distributed_batchbald_select`."""
    probabilities = _on_every_rank(lambda: strategy.probabilities_of(model, pool, owned, budget), group)
    probabilities = _held_or_empty(probabilities, 2, model_device(model), group)
    generator = strategy.generator(pool)
    picks, scores = distributed_batchbald_select(
        probabilities, budget, strategy.max_configurations, strategy.samples, strategy.shortlist, generator, strategy.restart_at,
        global_indices=owned, group=group,
    )  # fmt: skip
    strategy.report(scores)
    return picks


def _distributed_dal(strategy, model: Optional[nn.Module], pool: "ActivePool", budget: int, owned: Tensor, group) -> Tensor:
    """DAL over the ranks: each rank embeds its shard (rank 0 the labeled items too); each
    sub-query's training rows (the labeled items and the sampled unlabeled ones) are gathered to
    every rank by one all-reduce, and every rank trains and ranks as one process (exact)."""
    held = torch.cat([pool.labeled_indices, owned]).sort().values if _rank(group) == 0 else owned
    features = _held_or_empty(_on_every_rank(lambda: strategy.features_of(model, pool, held), group), 1, model_device(model), group)
    return strategy.query(features, pool, budget, held, RankArbiter(held, group))[0]


def _distributed_ceal(strategy, model: Optional[nn.Module], pool: "ActivePool", budget: int, owned: Tensor, group) -> Tensor:
    """CEAL over the ranks: the query as a score strategy's; each rank then finds the confident
    items of its shard, and every rank receives the union as ``last_pseudo_labels`` (ascending
    global indices, as on one process)."""
    from torch_al.pseudo_labeled_pool import PseudoLabelSet
    from torch_al.sampler import inputs_loader
    from torch_al.strategies.uncertainty.ceal import ceal_pseudo_labels
    from torch_al.validation import LogitsCheck

    if model is None:
        raise ValueError("distributed_select: CEAL scores with a model; got model=None")
    threshold = strategy.threshold(pool.round)
    try:
        local = lambda: strategy.scores(model, inputs_loader(pool, owned, strategy.batch_size), LogitsCheck("CEAL", owned)).double().cpu() if owned.numel() else torch.empty(0, dtype=torch.float64)  # noqa: E731
        query = distributed_topk(_on_every_rank(local, group), owned, budget, group)[1]
        confident = lambda: ceal_pseudo_labels(strategy._probabilities, owned, query, threshold) if owned.numel() else None  # noqa: E731
        mine = _on_every_rank(confident, group)
    finally:
        strategy._probabilities = None
    parts: List[Optional[Tuple[Tensor, Tensor]]] = [None] * _world_size(group)
    dist.all_gather_object(parts, None if mine is None else (mine.indices, mine.labels), group=group)
    held = [part for part in parts if part is not None and part[0].numel()]
    indices = torch.cat([part[0] for part in held]) if held else torch.empty(0, dtype=torch.int64)
    labels = torch.cat([part[1] for part in held]) if held else torch.empty(0, dtype=torch.int64)
    order = indices.argsort()
    strategy.last_pseudo_labels = PseudoLabelSet(indices[order], labels[order], threshold)
    return query


def _distributed_matching(strategy, model: Optional[nn.Module], pool: "ActivePool", budget: int, owned: Tensor, group) -> Tensor:
    """PCC / PFK / EBA over the ranks: every rank describes the validation set (the query side is
    the same everywhere) and its shard of the pool, then :func:`distributed_select_unique`."""
    def describe() -> Tuple[List[Tensor], Optional[List[Tensor]], List[Tensor], Optional[List[Tensor]]]:
        query = strategy.query_descriptors(model, pool, budget)
        pool_z, pool_g = strategy.pool_descriptors(model, pool, owned, query)
        return query.z, query.g, pool_z, pool_g

    query_z, query_g, pool_z, pool_g = _on_every_rank(describe, group)
    device = pool_z[0].device
    return distributed_select_unique(
        query_z, pool_z, budget, query_g, pool_g, k=strategy.k, combine=strategy.combine,
        global_indices=owned.to(device), precision=strategy.precision, group=group,
    ).cpu()


def _distributed_badge(strategy, model: Optional[nn.Module], pool: "ActivePool", budget: int, owned: Tensor, group) -> Tensor:
    """BADGE over the ranks: every rank forms its shard's gradient-embedding factors (and, with
    ``labeled_centers``, the labeled items'), then :func:`distributed_kmeanspp_factored` draws."""
    labeled = pool.labeled_indices if strategy.labeled_centers else owned[:0]

    def factors() -> Tuple[Optional[Tuple[Tensor, Tensor]], Optional[Tuple[Tensor, Tensor]]]:
        centers, mine = (strategy.factors(model, pool, rows) if rows.numel() else None for rows in (labeled, owned))
        return centers, mine

    centers, mine = _on_every_rank(factors, group)
    a, b = (_held_or_empty(part, 1, model_device(model), group) for part in (mine or (None, None)))
    return distributed_kmeanspp_factored(
        a, b, budget, centers, global_indices=owned.to(a.device), generator=strategy.generator(pool), group=group
    ).cpu()


def _distributed_suggestive(strategy, model: Optional[nn.Module], pool: "ActivePool", budget: int, owned: Tensor, group) -> Tensor:
    """Suggestive annotation over the ranks: each rank scores and describes its shard; the K most
    uncertain items over every rank (:func:`distributed_topk`) have their descriptors gathered to
    every rank, then :func:`distributed_facility_location_greedy` covers the sharded pool."""
    count = strategy.shortlist_size(budget, int(pool.unlabeled_indices.numel()))
    uncertainty, unit = _on_every_rank(lambda: strategy.describe(model, pool, owned) if owned.numel() else (torch.empty(0), None), group)
    _, shortlist = distributed_topk(uncertainty.double().cpu(), owned, count, group)
    unit = _held_or_empty(unit, 1, model_device(model), group)
    # Each rank writes the shortlisted rows it holds; the others' zeros add nothing.
    candidates = unit.new_zeros(count, unit.shape[1])
    mine = torch.isin(shortlist, owned)
    candidates[mine] = unit[torch.searchsorted(owned.contiguous(), shortlist[mine])]
    picks, _ = distributed_facility_location_greedy(_all_reduced(candidates, group), unit, budget, group=group)
    return shortlist[picks]


def _distributed_coreset(strategy, model: Optional[nn.Module], pool: "ActivePool", budget: int, owned: Tensor, group) -> Tensor:
    """Core-set over the ranks: every rank embeds the labeled items (the initial centers) and its
    shard of the unlabeled ones, then :func:`distributed_kcenter_greedy` picks."""
    from torch_al.sampler import inputs_loader

    labeled = pool.labeled_mask.nonzero().flatten()

    def embeddings() -> Tuple[Optional[Tensor], Optional[Tensor]]:
        if model is None:
            raise ValueError("distributed_select: CoreSet embeds the pool with a model; got model=None")
        rows = [embed(model, inputs_loader(pool, part, strategy.batch_size), strategy.layer, part) if part.numel() else None for part in (labeled, owned)]
        strategy.charge(forward=labeled.numel() + owned.numel())
        return rows[0], rows[1]

    centers, x = _on_every_rank(embeddings, group)
    x = _held_or_empty(x, 1, model_device(model), group)
    picked, _ = distributed_kcenter_greedy(
        x, budget, centers, global_indices=owned.to(x.device), first=strategy.first_pick(pool), metric=strategy.metric, group=group
    )
    return picked


def labeled_set_hash(pool: "ActivePool") -> str:
    """SHA-256 of the pool's labeled set: the ledger's indices and labels, and the round."""
    from torch_al.persistence import checksum

    ledger = pool.ledger
    return checksum({"index": ledger.index, "label": ledger.label, "round": pool.round})


def check_same_pool(pool: "ActivePool", group: Optional[dist.ProcessGroup] = None) -> str:
    """Checks that every rank holds rank 0's labeled set and returns its hash; otherwise every
    rank raises a ValueError naming both hashes."""
    hashes: List[Optional[str]] = [None] * _world_size(group)
    dist.all_gather_object(hashes, labeled_set_hash(pool), group=group)
    for rank, other in enumerate(hashes):
        if other != hashes[0]:
            raise ValueError(
                f"torch_al.distributed: rank {rank}'s labeled set (hash {other}) differs from rank 0's "
                f"(hash {hashes[0]}); load the same pool state on every rank"
            )
    return hashes[0]


def save_pool(pool: "ActivePool", path: str, group: Optional[dist.ProcessGroup] = None) -> None:
    """Saves the pool state from rank 0 only (atomically, as :meth:`ActivePool.save`), after
    checking every rank holds the same labeled set; returns on every rank once the file is
    complete, and a failed write raises on every rank."""
    check_same_pool(pool, group)
    _on_every_rank(lambda: pool.save(path) if _rank(group) == 0 else None, group)


def load_pool(pool: "ActivePool", path: str, group: Optional[dist.ProcessGroup] = None) -> "ActivePool":
    """Loads the state on every rank (:meth:`ActivePool.load`), then checks that the ranks agree
    (:func:`check_same_pool`); a rank that cannot load makes every rank raise."""
    _on_every_rank(lambda: pool.load(path), group)
    check_same_pool(pool, group)
    return pool


class RankFailedError(RuntimeError):
    """Another rank raised during a step every rank takes part in; the message names that rank and
    its error."""


def _on_every_rank(local: Callable[[], T], group: Optional[dist.ProcessGroup]) -> T:
    """Runs this rank's local step, then shares its outcome: if any rank raised, every rank
    raises (this rank's own error, or a :class:`RankFailedError` naming the first failed rank
    and its message), so none is left waiting in a later collective."""
    try:
        result, failure = local(), None
    except Exception as error:  # noqa: BLE001 - every error must reach the other ranks
        result, failure = None, error
    outcomes: List[Optional[str]] = [None] * _world_size(group)
    dist.all_gather_object(outcomes, None if failure is None else f"{type(failure).__name__}: {failure}", group=group)
    if failure is not None:
        raise failure
    for rank, message in enumerate(outcomes):
        if message is not None:
            raise RankFailedError(f"torch_al.distributed: rank {rank} failed: {message}")
    return result


def _collective_device(group: Optional[dist.ProcessGroup]) -> torch.device:
    """NCCL moves CUDA tensors only; gloo CPU tensors."""
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _merged_lists(
    op: str, query: Callable[[], Tuple[Tensor, Tensor]], global_indices: Tensor, pool_rows: int, k: int, group: Optional[dist.ProcessGroup]
) -> Tuple[Tensor, Tensor]:
    """Runs this rank's query (values[R, k], local pool rows[R, k]), names its rows by global
    index, and merges every rank's lists (:func:`gather_ranked`)."""

    def local() -> Tuple[Tensor, Tensor]:
        values, rows = query()
        _check_global_indices(op, global_indices, pool_rows)
        return values, _to_global(rows, global_indices)

    return gather_ranked(*_on_every_rank(local, group), k, group)


def _to_global(local: Tensor, global_indices: Tensor) -> Tensor:
    """Local pool rows (-1: none) as global indices (-1 kept): row -1 reads the appended -1."""
    return torch.cat([global_indices, global_indices.new_full((1,), -1)])[local]


def _check_global_indices(op: str, global_indices: Tensor, rows: int, increasing: bool = False) -> None:
    """``increasing``: the greedy selections break ties by local order, which must then be global order."""
    if global_indices.dim() != 1 or global_indices.dtype != torch.int64 or global_indices.shape[0] != rows:
        raise ValueError(
            f"{op}: global_indices must be an int64 Tensor[n] with n = {rows} (this rank's pool rows), "
            f"got shape {tuple(global_indices.shape)} dtype {global_indices.dtype}"
        )
    if increasing and global_indices.numel() > 1 and not bool((global_indices[1:] > global_indices[:-1]).all()):
        raise ValueError(f"{op}: global_indices must be strictly increasing (ties go to the lower global index)")


def _rows_of_every_rank(op: str, rows: int, picks: int, group: Optional[dist.ProcessGroup]) -> None:
    """Checks that ``picks`` does not exceed the rows of all ranks together (one all-reduce)."""
    total = _all_reduced(torch.tensor([rows]), group)
    if picks > int(total):
        raise ValueError(f"{op}: {picks} picks are more than the {int(total)} rows of all ranks")


def _all_reduced(values: Tensor, group: Optional[dist.ProcessGroup], op=dist.ReduceOp.SUM) -> Tensor:
    """``values`` reduced over the ranks (a copy; the result is the same on every rank), on their
    own device: the collective itself runs on the backend's device."""
    reduced = values.to(_collective_device(group), copy=True)
    dist.all_reduce(reduced, op=op, group=group)
    return reduced.to(values.device)


def _held_or_empty(rows: Optional[Tensor], dims: int, device: torch.device, group: Optional[dist.ProcessGroup]) -> Tensor:
    """``rows`` (Tensor[n, *widths], ``dims`` widths), or on a rank that holds none, an empty
    float32 Tensor[0, *widths] on ``device`` with the other ranks' widths (one all-reduce of the
    maxima, on every rank)."""
    known = list(rows.shape[1:]) if rows is not None else [-1] * dims
    widths = [max(int(width), 0) for width in _all_reduced(torch.tensor(known), group, dist.ReduceOp.MAX)]
    return rows if rows is not None else torch.zeros(0, *widths, device=device)


def _world_size(group: Optional[dist.ProcessGroup]) -> int:
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("torch_al.distributed: call torch.distributed.init_process_group first")
    return dist.get_world_size(group)


def _rank(group: Optional[dist.ProcessGroup]) -> int:
    _world_size(group)
    return dist.get_rank(group)
