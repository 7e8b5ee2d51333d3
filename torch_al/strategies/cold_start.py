"""What a strategy does before it can score: a seeded uniform draw.

Scores that need a labeled item (a loss module trained on labels, a discriminator of labeled vs.
unlabeled) have nothing to learn from in a round that starts with none; such a query is uniform
at random, as the papers' random initial sets, and the same on one process and over ranks.
"""

import torch
from torch import Tensor

from torch_al.seeding import derived_seed
from torch_al.strategies.base import ItemScoreStrategy


def uniform_draw(candidates: Tensor, budget: int, seed: int | None, stream: str, round_: int) -> Tensor:
    """``budget`` of ``candidates`` without replacement, the same for the same (seed, stream,
    round); ``seed=None`` draws fresh OS entropy (not reproducible)."""
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(derived_seed(seed, stream, round_))
    return candidates[torch.randperm(candidates.numel(), generator=generator)[:budget]]


class DrawsUntilLabeled(ItemScoreStrategy):
    """An :class:`ItemScoreStrategy` whose scores need a labeled item: with none, its query is
    :func:`uniform_draw` from (``seed``, ``draw_stream``, round) and nothing is scored; over ranks,
    rank 0 draws and the others receive its picks. Otherwise :meth:`labeled_query` (default: the
    top :meth:`item_scores`), and over ranks each shard is scored and merged once."""

    draw_stream: str
    seed: int | None

    def query(self, model, pool, budget):
        if pool.labeled_indices.numel() == 0:
            return uniform_draw(pool.unlabeled_indices, budget, self.seed, self.draw_stream, pool.round), None
        return self.labeled_query(model, pool, budget)

    def labeled_query(self, model, pool, budget):
        return super().query(model, pool, budget)

    def query_over_ranks(self, model, pool, budget, shard):
        if pool.labeled_indices.numel() == 0:
            return shard.drawn_on_rank_zero(lambda: self.query(model, pool, budget)[0], budget)
        return shard.top(lambda rows: self.item_scores(model, pool, rows), budget)
