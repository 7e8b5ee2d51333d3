"""Driving one round to its end: each query saved before anyone is asked to label it, each answer
saved before the next query is chosen. :class:`~torch_al.ActiveLearningLoop` and the Lightning
callback both ask through :func:`answer_round`, so a round asked in sub-batches (GALAXY, DIRECT)
and a one-shot query survive a crash at the same points in both."""

import os
from collections.abc import Callable

from torch import Tensor

from torch_al.pool import ActivePool
from torch_al.strategies.base import Strategy, SubBatch


def answer_round(pool: ActivePool, ask: Callable[[], SubBatch], oracle: Callable[[Tensor], Tensor] | None, save: Callable[[], None], strategy: str) -> None:
    """Completes round ``pool.round + 1``: proposes what ``ask()`` gives (recorded as chosen by
    ``strategy``) and ``save()``s, has ``oracle`` label the pending items that are not yet labeled
    and ``save()``s, and asks again until a final query is answered. A query pending from before a
    restart is answered, never chosen anew. Without an oracle it stops once a query is pending."""
    round_ = pool.round + 1
    while pool.round < round_:
        if pool.pending_query is None:
            asked = ask()
            pool.propose(asked.indices, asked.scores, strategy=strategy, final=asked.final)
            save()  # the query is durable before anyone is asked to label it
        if oracle is None:
            return
        query = pool.pending_query
        remaining = query[~pool.labeled_mask[query]]
        pool.label(remaining, oracle(remaining))
        save()


class RoundAtTrainingEnd:
    """What a training framework's callback holds and does: a pool, a strategy and a budget, and a
    round on the trained model when training ends (saved to ``state_path`` by the main process
    once the query is recorded and after labelling). ``trainer`` names the framework's run in errors."""

    trainer = "a training run"

    def __init__(self, pool: ActivePool, strategy: Strategy, budget: int, oracle=None, state_path: str | os.PathLike | None = None) -> None:
        check_callback_strategy(strategy, oracle, self.trainer)
        self.pool, self.strategy, self.budget = pool, strategy, budget
        self.oracle, self.state_path = oracle, state_path

    def run_round(self, model, main_process: bool) -> None:
        def save() -> None:
            if self.state_path is not None and main_process:
                self.pool.save(self.state_path)

        answer_round(self.pool, lambda: self.strategy.next_sub_batch(model, self.pool, self.budget), self.oracle, save, type(self.strategy).__name__)


def check_callback_strategy(strategy: Strategy, oracle, trainer: str) -> None:
    """What a training framework's callback (one model per training run, a round at its end) can
    serve: no ensemble, and a strategy that asks within its round only with an oracle."""
    from torch_al.strategies import AsksWithinRound, Ensemble

    if isinstance(strategy, Ensemble):
        raise ValueError(
            f"ActiveLearningCallback: strategy {type(strategy).__name__} scores a Committee of E separately trained models, "
            f"and {trainer} trains one; use ActiveLearningLoop with a torch_al.strategies.Committee"
        )
    if isinstance(strategy, AsksWithinRound) and oracle is None:
        raise ValueError(
            f"ActiveLearningCallback: strategy {type(strategy).__name__} asks for labels inside its round, with the model fixed; "
            "the callback serves it only with an oracle (without one, the next training run would change the model mid-round): "
            "pass oracle=, or use torch-al select / label"
        )
