"""Exact selection over ``torch.distributed``: every rank scores a disjoint shard of the pool, and
the ranks merge what they found into exactly the answer of one process on the whole pool.

Everything here ranks by (value descending, global index ascending), the order in which every
torch_al op breaks ties, so merging the ranks' best lists under it reproduces the single-process
result, ties included. Each merge is one ``all_gather`` of fixed-size (value, index) lists: the
volume per call is world_size × rows × k pairs, whatever the pool size.

Failure: each rank's local step (scoring, the local op, input checks) is followed by one small
all-gather of its outcome, so when a rank raises, every rank raises at once (the failing rank its
own error, the others a RuntimeError naming that rank and its message) instead of waiting in the
next collective. A rank that dies without raising leaves the others waiting until the process
group's timeout (``init_process_group(timeout=...)``).
"""

from typing import TYPE_CHECKING, Callable, List, Literal, Optional, Tuple, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

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
    group: Optional[dist.ProcessGroup] = None,
) -> Tuple[Tensor, Tensor]:
    """:func:`torch_al.pfk_topk` with the pool sharded over the ranks: each rank passes the same
    query descriptors and its shard's pool descriptors, mask and ``global_indices`` (int64
    Tensor[n], on the descriptors' device). Returns (values[M, k], global indices[M, k]), equal on
    every rank to ``pfk_topk`` over the whole pool."""
    from torch_al.ops.pfk_topk import pfk_topk

    query = lambda: pfk_topk(query_z, pool_z, query_g, pool_g, pool_mask, k, combine, precision)  # noqa: E731
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
    selectable = (~mask).sum().reshape(1)
    dist.all_reduce(selectable, group=group)
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
        values, indices = distributed_pfk_topk(
            query_z, pool_z, query_g, pool_g, mask, k, combine, global_indices=global_indices, precision=precision, group=group
        )
        more = select_unique_ranked(values, indices, budget - found)
        selected[found:] = more
        found += int((more >= 0).sum())
    return selected


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
      other items share its batch; the MC-dropout family draws its masks from each rank's RNG,
      so its picks follow another draw than one process's.
    - Random: rank 0 draws, the others receive its picks (exact).
    - The others have no distributed form yet: a TypeError names the strategy.

    ``strategy.last_cost`` counts this rank's passes.
    """
    from torch_al.sampler import inputs_loader
    from torch_al.strategies.base import ScoreStrategy, SelectionCost
    from torch_al.strategies.random_sampling import Random
    from torch_al.validation import LogitsCheck, check_budget

    name = type(strategy).__name__
    rank, world_size = _rank(group), _world_size(group)
    budget = check_budget(budget, int(pool.unlabeled_indices.numel()))
    if isinstance(strategy, Random):
        picked = _on_every_rank(lambda: strategy.select(model, pool, budget) if rank == 0 else torch.empty(budget, dtype=torch.int64), group)
        dist.broadcast(picked, src=dist.get_global_rank(group, 0) if group is not None else 0, group=group)
        return picked
    if not isinstance(strategy, ScoreStrategy) or type(strategy).rank is not ScoreStrategy.rank:
        raise TypeError(
            f"distributed_select: {name} has no distributed form yet; score strategies (entropy, margin, "
            "least-confidence, the MC-dropout family, ensembles) and random do"
        )
    if model is None:
        raise ValueError(f"distributed_select: {name} scores with a model; got model=None")
    strategy.last_cost = SelectionCost()
    owned = shard(pool.unlabeled_indices, rank, world_size, layout)

    def local() -> Tensor:
        if not owned.numel():
            return torch.empty(0, dtype=torch.float64)
        return strategy.scores(model, inputs_loader(pool, owned, strategy.batch_size), LogitsCheck(name, owned)).double().cpu()

    return distributed_topk(_on_every_rank(local, group), owned, budget, group)[1]


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


def _on_every_rank(local: Callable[[], T], group: Optional[dist.ProcessGroup]) -> T:
    """Runs this rank's local step, then shares its outcome: if any rank raised, every rank
    raises (this rank's own error, or a RuntimeError naming the first failed rank and its
    message), so none is left waiting in a later collective."""
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
            raise RuntimeError(f"torch_al.distributed: rank {rank} failed: {message}")
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


def _check_global_indices(op: str, global_indices: Tensor, rows: int) -> None:
    if global_indices.dim() != 1 or global_indices.dtype != torch.int64 or global_indices.shape[0] != rows:
        raise ValueError(
            f"{op}: global_indices must be an int64 Tensor[n] with n = {rows} (this rank's pool rows), "
            f"got shape {tuple(global_indices.shape)} dtype {global_indices.dtype}"
        )


def _world_size(group: Optional[dist.ProcessGroup]) -> int:
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("torch_al.distributed: call torch.distributed.init_process_group first")
    return dist.get_world_size(group)


def _rank(group: Optional[dist.ProcessGroup]) -> int:
    _world_size(group)
    return dist.get_rank(group)
