"""Who wins a pick, and what the holders of candidates hold together. The strategies whose
selection is a loop over picks or sub-queries (BatchBALD, M2's anchor-distance rule, DAL) ask an
arbiter for each pick's winner among the candidates they hold, for totals and for the top of
their scores: on one process the candidates held are all there are; over ranks
(:class:`torch_al.distributed.RankArbiter`) each rank holds a shard and the arbiter combines the
ranks' answers into the one-process answer. One loop serves both."""

from typing import NamedTuple, Sequence

import torch
from torch import Tensor


class Pick(NamedTuple):
    """A greedy pick's winner: its index (the arbiter's index space: the row here on one process,
    the global index over ranks), its value (0-d), its rows of the caller's tensors, and its row
    here (-1 when another rank holds it)."""

    index: int
    value: Tensor
    rows: tuple[Tensor, ...]
    local: int


class Arbiter:
    """One process: the candidates held here are all there are."""

    def total(self, values: Tensor) -> Tensor:
        """``values`` summed over every holder of candidates, the same on each."""
        return values

    def top(self, values: Tensor, indices: Tensor, count: int) -> tuple[Tensor, Tensor]:
        """(indices, values) of the ``count`` highest ``values`` (Tensor[n]) over every holder,
        ties to the lower index (``indices``: int64 Tensor[n], increasing)."""
        return highest_first(values, indices, count)

    def pick(self, values: Tensor, available: Tensor, rows: Sequence[Tensor]) -> Pick:
        """The first maximum of ``values`` (Tensor[n]) among the ``available`` rows (bool
        Tensor[n], one at least), ties to the lower row, with its rows of ``rows`` (each Tensor[n, ...])."""
        best = first_maximum(values, available)
        return Pick(best, values[best].clone(), tuple(part[best] for part in rows), best)  # the caller may update values in place


ONE_PROCESS = Arbiter()  # stateless: every single-process caller shares it


def highest_first(values: Tensor, indices: Tensor, count: int) -> tuple[Tensor, Tensor]:
    """(indices, values) of the ``count`` highest ``values`` (Tensor[n]), best first, ties to the
    earlier entry (``indices``: Tensor[n] on any device)."""
    order = torch.sort(values, descending=True, stable=True).indices[:count]
    return indices[order.to(indices.device)], values[order]


def first_maximum(values: Tensor, available: Tensor) -> int:
    """The row of the largest of ``values`` (Tensor[n]) among the ``available`` rows (bool
    Tensor[n]), ties to the lower row; -1 when none is available."""
    return int(values.masked_fill(~available, -torch.inf).argmax()) if bool(available.any()) else -1
