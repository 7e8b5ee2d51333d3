"""Uniform random selection: the baseline every method must beat."""

from torch_al.strategies.base import Strategy
from torch_al.strategies.cold_start import uniform_draw


class Random(Strategy):
    """Uniform without replacement, deterministic from (seed, pool round).

    Args:
        seed: base seed; None draws fresh OS entropy on every call (not reproducible).
    """

    def __init__(self, seed: int | None = 0) -> None:
        self.seed = seed

    def query(self, model, pool, budget):
        return uniform_draw(pool.unlabeled_indices, budget, self.seed, "random", pool.round), None

    def query_over_ranks(self, model, pool, budget, shard):
        """Rank 0 draws, the others receive its picks (exact)."""
        return shard.drawn_on_rank_zero(lambda: self.query(model, pool, budget)[0], budget)
