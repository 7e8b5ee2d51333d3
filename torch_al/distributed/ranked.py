"""Merging the ranks' ranked lists: every rank keeps its shard's best (value, global index) pairs
and one all-gather of fixed-size lists makes the whole pool's, ranked by (value descending, global
index ascending), the order in which every torch_al op breaks ties, so the merge reproduces the
single-process answer, ties included. The volume per call is world_size × rows × k pairs, whatever
the pool size."""

from typing import Callable, List, Literal, Optional, Tuple

import torch
import torch.distributed as dist
from torch import Tensor

from torch_al.distributed.collectives import all_reduced, check_global_indices, collective_device, on_every_rank, rank_in, ranks_in
from torch_al.ops.pfk_column_topk import pfk_column_topk
from torch_al.ops.pfk_topk import pfk_topk
from torch_al.ops.select_unique import check_budget_fits, check_selection_options, fill_rank_by_rank

Layout = Literal["contiguous", "strided"]


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
    world_size = ranks_in(group)
    device = collective_device(group)
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
            raise ValueError(f"distributed_topk: rank {rank_in(group)}'s scores contain NaN")
        return merge_ranked(scores[None], global_indices[None], count)

    values, indices = gather_ranked(*on_every_rank(local, group), count, group)
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
    check_selection_options("distributed_select_unique", rule, budget, k)
    mask = pool_mask if pool_mask is not None else torch.zeros(pool_z[0].shape[0], dtype=torch.bool, device=pool_z[0].device)
    if rule == "column":  # the first query validates every input before the budget is checked
        query = lambda: tuple(t[None] for t in pfk_column_topk(query_z, pool_z, query_g, pool_g, mask, budget, combine, precision))  # noqa: E731
        merged = _merged_lists("distributed_select_unique", query, global_indices, pool_z[0].shape[0], budget, group)
        values, indices = merged[0][0], merged[1][0]
    else:
        values, indices = distributed_pfk_topk(
            query_z, pool_z, query_g, pool_g, mask, k, combine, global_indices=global_indices, precision=precision, group=group
        )
    check_budget_fits("distributed_select_unique", budget, int(all_reduced((~mask).sum().reshape(1), group)), query_z[0].shape[0])
    if rule == "column":
        return indices
    selected = torch.full([budget], -1, dtype=torch.int64, device=indices.device)
    found = fill_rank_by_rank(selected, 0, values, indices)
    while found < budget:  # each re-query has an unmasked point and a query row: it adds at least one
        mask = mask | torch.isin(global_indices, selected[:found])
        values, indices = distributed_pfk_topk(  # the same descriptors: checked by the first query
            query_z, pool_z, query_g, pool_g, mask, k, combine, global_indices=global_indices, precision=precision, check_finite=False, group=group
        )
        found = fill_rank_by_rank(selected, found, values, indices)
    return selected


def _merged_lists(
    op: str, query: Callable[[], Tuple[Tensor, Tensor]], global_indices: Tensor, pool_rows: int, k: int, group: Optional[dist.ProcessGroup]
) -> Tuple[Tensor, Tensor]:
    """Runs this rank's query (values[R, k], local pool rows[R, k]), names its rows by global
    index, and merges every rank's lists (:func:`gather_ranked`)."""

    def local() -> Tuple[Tensor, Tensor]:
        values, rows = query()
        check_global_indices(op, global_indices, pool_rows)
        return values, _to_global(rows, global_indices)

    return gather_ranked(*on_every_rank(local, group), k, group)


def _to_global(local: Tensor, global_indices: Tensor) -> Tensor:
    """Local pool rows (-1: none) as global indices (-1 kept): row -1 reads the appended -1."""
    return torch.cat([global_indices, global_indices.new_full((1,), -1)])[local]
