"""Strategies that need answers while they select (GALAXY, DIRECT): a round asked in sub-batches.

Such a strategy writes its round as a generator, :meth:`AsksWithinRound.asks`, that yields a
sub-batch, finds its answers in the :class:`RoundLabels` it was given, and yields the next, until
the round's budget is spent. The pool keeps the answered sub-batches of the open round
(:attr:`ActivePool.open_round`), so a process that starts afresh (a resumed loop, the next
``torch-al select``) replays the generator over them, checking that it asks the same items again,
and continues where the round was. Replays need the same model and seed; the strategy draws its
random choices from (seed, round, ...) streams, never from torch's global RNG.
"""

import time
from abc import abstractmethod
from collections.abc import Generator
from typing import NamedTuple

import torch
from torch import Tensor, nn

from torch_al.pool import ActivePool
from torch_al.strategies.base import SelectionCost, Strategy, SubBatch


class RoundLabels:
    """The labels a strategy may use at one point of its round: those known when the round began,
    plus the answers to the sub-batches it asked so far (never a later answer, even in a replay).

    Attributes:
        labeled: bool Tensor[N], whether an item's label is known.
        label: int64 Tensor[N], its label where known (0 elsewhere).
    """

    def __init__(self, labeled: Tensor, label: Tensor) -> None:
        self.labeled, self.label = labeled, label
        self._known: Tensor | None = None

    @classmethod
    def at_round_start(cls, pool: ActivePool) -> "RoundLabels":
        """The pool's labels but the answers to the open round's sub-batches (they come in the replay)."""
        labeled = pool.labeled_mask.clone()
        label = torch.zeros(len(pool), dtype=torch.int64)
        label[labeled] = pool.labels_of(labeled.nonzero().flatten())
        for batch in pool.open_round:
            labeled[batch] = False
            label[batch] = 0
        return cls(labeled, label)

    def record(self, indices: Tensor, labels: Tensor) -> None:
        """The answers to ``indices`` (items whose labels were not known)."""
        self.labeled[indices] = True
        self.label[indices] = labels
        if self._known is not None:  # kept up to date: a strategy asking one label at a time reads it every step
            self._known = torch.cat([self._known, indices]).sort().values

    @property
    def known(self) -> Tensor:
        """Global indices of the items whose label is known, increasing."""
        if self._known is None:
            self._known = self.labeled.nonzero().flatten()
        return self._known

    @property
    def unlabeled(self) -> Tensor:
        """Global indices of the items whose label is not known, increasing."""
        return (~self.labeled).nonzero().flatten()


class _LiveRound(NamedTuple):
    """The round this process is asking: whose (pool, model, round), the sub-batches asked so far,
    the generator and its labels."""

    owner: tuple[int, int, int]
    asked: list[Tensor]
    generator: Generator[Tensor, None, None]
    labels: RoundLabels


class AsksWithinRound(Strategy):
    """A strategy whose round is asked in sub-batches, each chosen with the answers to the ones
    before. :class:`~torch_al.ActiveLearningLoop` asks its oracle per sub-batch and checkpoints
    each answer before the next sub-batch is computed; ``torch-al select`` issues one sub-batch at
    a time. :meth:`select` cannot serve it (nobody answers inside ``select``), nor can
    :func:`torch_al.distributed.distributed_select`."""

    @abstractmethod
    def asks(self, model: nn.Module | None, pool: ActivePool, budget: int, labels: RoundLabels) -> Generator[Tensor, None, None]:
        """Yields the round's sub-batches (int64 global indices, unlabeled in ``labels``), ``budget``
        items in all; after each yield, ``labels`` holds the answers. Random choices come from
        (seed, ``pool.round``, ...) streams, so a replay asks the same."""

    def next_sub_batch(self, model: nn.Module | None, pool: ActivePool, budget: int) -> SubBatch:
        """The next sub-batch of round ``pool.round + 1``, given the sub-batches the pool holds as
        answered (:attr:`ActivePool.open_round`). Propose it with ``final=`` its ``final``, label
        it, and call again until a final one is answered. ``last_cost`` counts this call.

        Raises:
            RuntimeError: the strategy asks other items than the ones the open round answered (the
                model, the seed or the strategy changed since the round began), or yields a
                sub-batch that is empty, repeats an item, asks a known label or overspends.
        """
        answered, spent = pool.open_round, pool.open_round_answered
        if not 0 <= spent < budget:
            raise ValueError(f"{type(self).__name__}: the open round has {spent} answers; budget {budget} leaves none to ask")
        self.last_cost, self.last_pseudo_labels = SelectionCost(), None
        start = time.perf_counter()
        round_, labels = self._continued(model, pool, answered) or self._replayed(model, pool, budget, answered)
        asked = self._asked(round_, labels, budget, spent)
        self._live = _LiveRound((id(pool), id(model), pool.round), [*answered, asked], round_, labels)
        self.last_cost.seconds = time.perf_counter() - start
        return SubBatch(asked, None, spent + asked.numel() == budget)

    def _continued(self, model, pool: ActivePool, answered: list[Tensor]):
        """The round this process is asking, when the pool's answers are to its last sub-batch:
        no replay (one pass over the pool a round, not one a sub-batch)."""
        live: _LiveRound | None = getattr(self, "_live", None)
        if live is None or live.owner != (id(pool), id(model), pool.round) or len(live.asked) != len(answered):
            return None
        if not all(torch.equal(mine, theirs) for mine, theirs in zip(live.asked, answered)):
            return None
        live.labels.record(answered[-1], pool.labels_of(answered[-1]))
        return live.generator, live.labels

    def _replayed(self, model, pool: ActivePool, budget: int, answered: list[Tensor]):
        labels = RoundLabels.at_round_start(pool)
        round_ = self.asks(model, pool, budget, labels)
        spent = 0
        for number, batch in enumerate(answered):
            asked = self._asked(round_, labels, budget, spent)
            if not torch.equal(asked, batch):
                raise RuntimeError(
                    f"{type(self).__name__}: replaying round {pool.round + 1}, sub-batch {number} asks {asked[:5].tolist()} "
                    f"where the pool answered {batch[:5].tolist()}: the model, seed or strategy changed since the round began; "
                    "use the same ones (or finish the round with another strategy's final query)"
                )
            labels.record(batch, pool.labels_of(batch))
            spent += batch.numel()
        return round_, labels

    def _asked(self, round_: Generator[Tensor, None, None], labels: RoundLabels, budget: int, spent_before: int) -> Tensor:
        name = type(self).__name__
        try:
            asked = next(round_)
        except StopIteration:
            raise RuntimeError(f"{name} ended its round after {spent_before} of {budget} labels") from None
        asked = torch.as_tensor(asked).to("cpu", torch.int64).flatten()
        if asked.numel() == 0 or asked.unique().numel() != asked.numel():
            raise RuntimeError(f"{name} asked an empty sub-batch or one that repeats an item: {asked[:10].tolist()}")
        if labels.labeled[asked].any():
            raise RuntimeError(f"{name} asked items whose labels are known: {asked[labels.labeled[asked]][:5].tolist()}")
        if spent_before + asked.numel() > budget:
            raise RuntimeError(f"{name} asked {asked.numel()} items with {budget - spent_before} of its budget {budget} left")
        return asked

    def query(self, model, pool, budget):
        raise TypeError(
            f"{type(self).__name__} asks for labels inside its round, so select() cannot serve it: run it with "
            "ActiveLearningLoop (its oracle answers each sub-batch), torch-al select / label (one sub-batch at a time), "
            "or next_sub_batch(model, pool, budget) with pool.propose(..., final=...) and pool.label"
        )

    def query_over_ranks(self, model, pool, budget, shard):
        raise TypeError(f"distributed_select: {type(self).__name__} asks for labels inside its round; torch_al.distributed serves one-shot queries only")
