"""``distributed_select``: a strategy's selection with the pool's unlabeled items sharded over the
ranks. Each strategy keeps its form over ranks beside its single-process rule
(:meth:`torch_al.strategies.Strategy.query_over_ranks`); this module hands it its :class:`Shard`."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from torch_al.distributed.collectives import all_reduced, global_rank, held_or_empty, on_every_rank, rank_in, ranks_in
from torch_al.distributed.rank_arbiter import RankArbiter
from torch_al.distributed.ranked import Layout, distributed_topk, shard

if TYPE_CHECKING:
    from torch_al.pool import ActivePool
    from torch_al.strategies.base import Strategy

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """This rank's part of a selection over ranks: the unlabeled items it holds (``owned``: int64
    Tensor[n] of global indices, increasing) in the process ``group``, and the collectives a
    strategy's form over ranks is built from. Every method is a collective: every rank calls it."""

    owned: Tensor
    group: Optional[dist.ProcessGroup] = None

    @property
    def rank(self) -> int:
        return rank_in(self.group)

    def on_every_rank(self, local: Callable[[], T]) -> T:
        """``local()`` on this rank; when any rank raises, every rank raises (:func:`on_every_rank`)."""
        return on_every_rank(local, self.group)

    def top(self, scores_of: Callable[[Tensor], Tensor], count: int) -> Tensor:
        """The global indices of the ``count`` highest scores over every rank's shard, ties to the
        lower index; ``scores_of(owned)`` scores this rank's items (called only where it holds some)."""
        local = lambda: scores_of(self.owned).double().cpu() if self.owned.numel() else torch.empty(0, dtype=torch.float64)  # noqa: E731
        return distributed_topk(self.on_every_rank(local), self.owned, count, self.group)[1]

    def drawn_on_rank_zero(self, draw: Callable[[], Tensor], count: int) -> Tensor:
        """``count`` global indices drawn by ``draw()`` on rank 0 and sent to every rank (a draw
        over the whole pool, as one process makes it)."""
        picked = self.on_every_rank(lambda: draw() if self.rank == 0 else torch.empty(count, dtype=torch.int64))
        dist.broadcast(picked, src=global_rank(0, self.group), group=self.group)
        return picked

    def arbiter(self, held: Optional[Tensor] = None) -> RankArbiter:
        """The :class:`RankArbiter` of the candidates this rank holds (default: ``owned``)."""
        return RankArbiter(self.owned if held is None else held, self.group)

    def all_reduced(self, values: Tensor, op=dist.ReduceOp.SUM) -> Tensor:
        return all_reduced(values, self.group, op)

    def all_gathered(self, value: object) -> list:
        """Every rank's ``value`` (any picklable object), in rank order."""
        parts: list = [None] * ranks_in(self.group)
        dist.all_gather_object(parts, value, group=self.group)
        return parts

    def held_or_empty(self, rows: Optional[Tensor], dims: int, device: torch.device) -> Tensor:
        """``rows``, or where this rank holds none, an empty Tensor[0, *widths] with the other ranks' widths."""
        return held_or_empty(rows, dims, device, self.group)


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
    ranks (:func:`shard` with ``layout``); every rank passes the same pool state and model and gets
    the same global indices. Each built-in strategy's form over ranks, and how exact it is, is
    documented on its ``query_over_ranks``; a strategy without one raises a TypeError naming it.
    ``strategy.last_cost`` counts this rank's passes."""
    owned = shard(pool.unlabeled_indices, rank_in(group), ranks_in(group), layout)
    return strategy.select_over_ranks(model, pool, budget, Shard(owned, group))
