"""A round in two stages: a one-shot strategy spends a share of the budget, then a strategy that
asks within its round spends the rest, with the first stage's answers known.

``pfk-direct`` is PFK's validation matching (a class-balanced spread of the pool, chosen without
labels) followed by DIRECT's threshold search, which starts from more labels of every class and
so from a better-placed uncertain region on each class line.
"""

from collections.abc import Sequence

from torch import Tensor

from torch_al.nn.capture import Tokens
from torch_al.strategies.base import Strategy
from torch_al.strategies.distribution_matching.fisher_kernel import PFK
from torch_al.strategies.imbalance.direct import DIRECT
from torch_al.strategies.within_round import AsksWithinRound, RoundLabels


class Staged(AsksWithinRound):
    """``first`` chooses ``⌊share · b⌋`` items, asked as one sub-batch; ``then`` asks the rest.

    ``first`` sees the pool as the round began (:meth:`~torch_al.ActivePool.at_round_start`), so
    a replay of the round after its answers came chooses the same. Both stages' passes count in
    ``last_cost``.

    Args:
        first: a one-shot strategy (its :meth:`~torch_al.strategies.Strategy.select`).
        then: a strategy that asks within its round (GALAXY, DIRECT).
        share: the fraction of each round's budget the first stage spends, in [0, 1].
    """

    def __init__(self, first: Strategy, then: AsksWithinRound, share: float = 0.5) -> None:
        if not isinstance(first, Strategy) or isinstance(first, AsksWithinRound):
            raise TypeError(f"Staged: first must be a one-shot Strategy, got {type(first).__name__}")
        if not isinstance(then, AsksWithinRound):
            raise TypeError(f"Staged: then must ask within its round (an AsksWithinRound such as DIRECT), got {type(then).__name__}")
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise ValueError(f"Staged: share must be a number in [0, 1], got {share!r}")
        self.first, self.then, self.share = first, then, float(share)

    def asks(self, model, pool, budget, labels: RoundLabels):
        count = int(budget * self.share)
        if count:
            picked = self.first.select(model, pool.at_round_start(), count)
            self._take_cost(self.first)
            yield picked
        if budget > count:
            for batch in self.then.asks(model, pool, budget - count, labels):
                self._take_cost(self.then)
                yield batch

    def _take_cost(self, stage: Strategy) -> None:
        """Moves the passes a stage charged itself to this strategy's cost."""
        if stage.last_cost is not None:
            self.charge(stage.last_cost.forward, stage.last_cost.backward)
            stage.last_cost = None


class PFKThenDIRECT(Staged):
    """``pfk-direct``: :class:`PFK` on ``share`` of each round's budget, then :class:`DIRECT` on
    the rest. Options as those two take them (``validation``, ``layers``, ``k`` and ``tokens`` PFK's;
    ``annotators`` DIRECT's; the rest both's)."""

    def __init__(
        self,
        validation: tuple[Tensor, Tensor] | None = None,
        layers: Sequence[str] | None = None,
        k: int = 32,
        annotators: int = 20,
        share: float = 0.5,
        batch_size: int = 256,
        seed: int = 0,
        progress: bool = True,
        tokens: Tokens | None = None,
    ) -> None:
        first = PFK(validation=validation, layers=layers, k=k, batch_size=batch_size, seed=seed, progress=progress, tokens=tokens)
        super().__init__(first, DIRECT(annotators=annotators, batch_size=batch_size, seed=seed, progress=progress), share)
