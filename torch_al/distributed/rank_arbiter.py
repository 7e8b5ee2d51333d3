"""The arbiter of ranks that each hold a shard of the candidates: the greedy loops written against
:class:`torch_al.arbiter.Arbiter` make one process's picks when every rank runs them with it."""

import math
from typing import Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from torch import Tensor

from torch_al.arbiter import Arbiter, Pick, first_maximum
from torch_al.distributed.collectives import all_reduced, collective_device, rank_in, ranks_in
from torch_al.distributed.ranked import distributed_topk


class RankArbiter(Arbiter):
    """The :class:`~torch_al.arbiter.Arbiter` of ranks that each hold a shard of the
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
        self.global_indices, self.group, self.rank = global_indices.cpu(), group, rank_in(group)

    def total(self, values: Tensor) -> Tensor:
        return all_reduced(values, self.group)

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
        device = collective_device(self.group)
        parts = [torch.empty_like(mine, device=device) for _ in range(ranks_in(self.group))]
        dist.all_gather(parts, mine.to(device), group=self.group)
        parts = [part.cpu() for part in parts]
        claims = [(float(part[0]), int(part[1]), owner) for owner, part in enumerate(parts) if int(part[1]) >= 0]
        if not claims:
            return Pick(-1, torch.tensor(float("nan"), dtype=torch.float64), (), -1)
        _, winner, owner = min(claims, key=lambda c: (-c[0], c[1]))
        winner_rows = tuple(part.view(original.shape[1:]).to(original.device, original.dtype) for part, original in zip(parts[owner][2:].split(widths), rows))
        return Pick(winner, parts[owner][0], winner_rows, local if owner == self.rank else -1)
