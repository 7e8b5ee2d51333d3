"""Uniform random selection: the baseline every method must beat."""

import torch

from torch_al.seeding import derived_seed
from torch_al.strategies.base import Strategy


class Random(Strategy):
    """Uniform without replacement, deterministic from (seed, pool round).

    Args:
        seed: base seed; None draws fresh OS entropy on every call (not reproducible).
    """

    def __init__(self, seed: int | None = 0) -> None:
        self.seed = seed

    def rank(self, model, pool, budget):
        candidates = pool.unlabeled_indices
        generator = torch.Generator()
        if self.seed is None:
            generator.seed()
        else:
            generator.manual_seed(derived_seed(self.seed, "random", pool.round))
        return candidates[torch.randperm(candidates.numel(), generator=generator)[:budget]], None

    def rank_over_ranks(self, model, pool, budget, shard):
        """Rank 0 draws, the others receive its picks (exact)."""
        return shard.drawn_on_rank_zero(lambda: self.rank(model, pool, budget)[0], budget)
