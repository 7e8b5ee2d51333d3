"""The greedy selections with their points sharded over the ranks: k-center (core-set), BADGE's
D² seeding, facility location (suggestive annotation). Every rank claims its best point per pick
through a :class:`RankArbiter` (or one all-reduce of the gains) and applies the same update, so the
picks are those of the single-process op."""

from typing import List, Optional, Tuple

import torch
import torch.distributed as dist
from torch import Tensor

from torch_al.arbiter import Pick
from torch_al.distributed.collectives import (
    all_reduced,
    check_global_indices,
    check_rank_order,
    check_rows_of_every_rank,
    collective_device,
    global_rank,
    on_every_rank,
    rank_in,
    ranks_in,
)
from torch_al.distributed.rank_arbiter import RankArbiter
from torch_al.ops.kcenter_greedy_step import kcenter_greedy_step


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

    value, local = on_every_rank(candidate, group)
    check_rows_of_every_rank("distributed_kcenter_greedy", x.shape[0], k, group)
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


def _check_kcenter_inputs(x: Tensor, k: int, centers: Optional[Tensor], global_indices: Tensor, metric: str) -> None:
    op = "distributed_kcenter_greedy"
    if x.dim() != 2 or not x.dtype.is_floating_point:
        raise ValueError(f"{op}: x must be a floating Tensor[n, D], got shape {tuple(x.shape)} dtype {x.dtype}")
    if k < 0 or metric not in ("euclidean", "cosine"):
        raise ValueError(f'{op}: need k >= 0 and metric "euclidean" or "cosine", got k={k} metric={metric!r}')
    if centers is not None and (centers.dim() != 2 or centers.shape[1] != x.shape[1] or centers.device != x.device):
        raise ValueError(f"{op}: centers must be Tensor[S, {x.shape[1]}] on {x.device}, got shape {tuple(centers.shape)} on {centers.device}")
    check_global_indices(op, global_indices, x.shape[0], increasing=True)
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
        check_global_indices(op, global_indices, a.shape[0], increasing=True)
        a64, b64 = a.double(), b.double()
        norms = a64.square().sum(1) * b64.square().sum(1)
        min_sq = torch.full((a.shape[0],), float("inf"), dtype=torch.float64, device=a.device)
        if centers:
            for center_a, center_b in zip(centers[0].double().split(1024), centers[1].double().split(1024)):
                min_sq = torch.minimum(min_sq, _factored_sq(a64, b64, norms, center_a, center_b).amin(1))
        return a64, b64, norms, min_sq

    a64, b64, norms, min_sq = on_every_rank(local, group)
    check_rank_order(op, global_indices, group)
    check_rows_of_every_rank(op, a.shape[0], count, group)
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
    rank, world_size = rank_in(group), ranks_in(group)
    device = collective_device(group)
    running = torch.zeros(1, dtype=torch.float64, device=device)
    if rank > 0:
        dist.recv(running, src=global_rank(rank - 1, group), group=group)
    cumulative = torch.cumsum(torch.cat([running.cpu(), weights.cpu()]), 0)[1:]  # sequential on the CPU
    total = (cumulative[-1:] if cumulative.numel() else running.cpu()).to(device, copy=True)  # the broadcast writes into it
    if rank + 1 < world_size:
        dist.send(total, dst=global_rank(rank + 1, group), group=group)
    dist.broadcast(total, src=global_rank(world_size - 1, group), group=group)
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

    on_every_rank(local, group)
    cover = universe.new_zeros(universe.shape[0])
    taken = torch.zeros(candidates.shape[0], dtype=torch.bool)
    picks, gains = [], []
    for _ in range(count):
        gain = torch.zeros(candidates.shape[0], dtype=torch.float64, device=candidates.device)
        for start in range(0, universe.shape[0], 4096):
            similarity = candidates @ universe[start : start + 4096].T
            gain += (similarity - cover[start : start + 4096]).clamp_min(0).sum(1, dtype=torch.float64)
        gain = all_reduced(gain, group).cpu().masked_fill(taken, -1.0)
        best = int(gain.argmax())  # the first maximum: ties to the lower candidate index
        picks.append(best)
        gains.append(float(gain[best]))
        taken[best] = True
        cover = torch.maximum(cover, universe @ candidates[best])
    return torch.tensor(picks, dtype=torch.int64), torch.tensor(gains, dtype=torch.float64)
