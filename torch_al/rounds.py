"""Driving one round to its end: each query saved before anyone is asked to label it, each answer
saved before the next query is chosen. :class:`~torch_al.ActiveLearningLoop` and the Lightning
callback both ask through :func:`answer_round`, so a round asked in sub-batches (GALAXY, DIRECT)
and a one-shot query survive a crash at the same points in both."""

from collections.abc import Callable

from torch import Tensor

from torch_al.pool import ActivePool
from torch_al.strategies.base import SubBatch


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
