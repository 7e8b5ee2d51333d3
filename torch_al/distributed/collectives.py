"""The collectives every sharded step is made of, and how a failure on one rank reaches the others.

Each rank's local step (scoring, the local op, input checks) is followed by one small all-gather of
its outcome (:func:`on_every_rank`), so when a rank raises, every rank raises at once (the failing
rank its own error, the others a :class:`RankFailedError` naming that rank and its message) instead
of waiting in the next collective. When a rank dies without raising, the others' next collective
fails: at once under gloo (the connection closes), at the process group's timeout otherwise
(``init_process_group(timeout=...)``).
"""

from typing import Callable, List, Optional, Tuple, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

T = TypeVar("T")


class RankFailedError(RuntimeError):
    """Another rank raised during a step every rank takes part in; the message names that rank and
    its error."""


def on_every_rank(local: Callable[[], T], group: Optional[dist.ProcessGroup]) -> T:
    """Runs this rank's local step, then shares its outcome: if any rank raised, every rank
    raises (this rank's own error, or a :class:`RankFailedError` naming the first failed rank
    and its message), so none is left waiting in a later collective."""
    try:
        result, failure = local(), None
    except Exception as error:  # noqa: BLE001 - every error must reach the other ranks
        result, failure = None, error
    outcomes: List[Optional[str]] = [None] * ranks_in(group)
    dist.all_gather_object(outcomes, None if failure is None else f"{type(failure).__name__}: {failure}", group=group)
    if failure is not None:
        raise failure
    for rank, message in enumerate(outcomes):
        if message is not None:
            raise RankFailedError(f"torch_al.distributed: rank {rank} failed: {message}")
    return result


def all_reduced(values: Tensor, group: Optional[dist.ProcessGroup], op=dist.ReduceOp.SUM) -> Tensor:
    """``values`` reduced over the ranks (a copy; the result is the same on every rank), on their
    own device: the collective itself runs on the backend's device."""
    reduced = values.to(collective_device(group), copy=True)
    dist.all_reduce(reduced, op=op, group=group)
    return reduced.to(values.device)


def held_or_empty(rows: Optional[Tensor], dims: int, device: torch.device, group: Optional[dist.ProcessGroup]) -> Tensor:
    """``rows`` (Tensor[n, *widths], ``dims`` widths), or on a rank that holds none, an empty
    float32 Tensor[0, *widths] on ``device`` with the other ranks' widths (one all-reduce of the
    maxima, on every rank)."""
    known = list(rows.shape[1:]) if rows is not None else [-1] * dims
    widths = [max(int(width), 0) for width in all_reduced(torch.tensor(known), group, dist.ReduceOp.MAX)]
    return rows if rows is not None else torch.zeros(0, *widths, device=device)


def collective_device(group: Optional[dist.ProcessGroup]) -> torch.device:
    """NCCL moves CUDA tensors only; gloo CPU tensors."""
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def check_global_indices(op: str, global_indices: Tensor, rows: int, increasing: bool = False) -> None:
    """``increasing``: the greedy selections break ties by local order, which must then be global order."""
    if global_indices.dim() != 1 or global_indices.dtype != torch.int64 or global_indices.shape[0] != rows:
        raise ValueError(
            f"{op}: global_indices must be an int64 Tensor[n] with n = {rows} (this rank's pool rows), "
            f"got shape {tuple(global_indices.shape)} dtype {global_indices.dtype}"
        )
    if increasing and global_indices.numel() > 1 and not bool((global_indices[1:] > global_indices[:-1]).all()):
        raise ValueError(f"{op}: global_indices must be strictly increasing (ties go to the lower global index)")


def check_rows_of_every_rank(op: str, rows: int, picks: int, group: Optional[dist.ProcessGroup]) -> None:
    """Checks that ``picks`` does not exceed the rows of all ranks together (one all-reduce)."""
    total = all_reduced(torch.tensor([rows]), group)
    if picks > int(total):
        raise ValueError(f"{op}: {picks} picks are more than the {int(total)} rows of all ranks")


def check_rank_order(op: str, global_indices: Tensor, group: Optional[dist.ProcessGroup]) -> None:
    """Every rank's rows precede the next non-empty rank's (contiguous shards in rank order)."""
    bounds: List[Optional[Tuple[int, int]]] = [None] * ranks_in(group)
    mine = (int(global_indices[0]), int(global_indices[-1])) if global_indices.numel() else None
    dist.all_gather_object(bounds, mine, group=group)
    held = [bound for bound in bounds if bound is not None]
    if any(earlier[1] >= later[0] for earlier, later in zip(held, held[1:])):
        raise ValueError(f'{op}: the draw walks the rows in global order, so the ranks must hold contiguous shards in rank order (layout="contiguous"); got (first, last) global indices {bounds}')


def ranks_in(group: Optional[dist.ProcessGroup]) -> int:
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("torch_al.distributed: call torch.distributed.init_process_group first")
    return dist.get_world_size(group)


def rank_in(group: Optional[dist.ProcessGroup]) -> int:
    ranks_in(group)
    return dist.get_rank(group)


def global_rank(rank: int, group: Optional[dist.ProcessGroup]) -> int:
    return dist.get_global_rank(group, rank) if group is not None else rank
