"""Selection strategies: ``strategy.select(model, pool, budget) -> LongTensor`` of global indices."""

import inspect

from torch_al.strategies.base import ScoreStrategy, Strategy, predict_probabilities
from torch_al.strategies.coreset import CoreSet
from torch_al.strategies.random_sampling import Random
from torch_al.strategies.uncertainty import Entropy, LeastConfidence, Margin

STRATEGIES: dict[str, type[Strategy]] = {
    "random": Random,
    "entropy": Entropy,
    "margin": Margin,
    "least-confidence": LeastConfidence,
    "coreset": CoreSet,
}


def make_strategy(name: str, **options) -> Strategy:
    """A strategy by its CLI name (``STRATEGIES``). Shared options (``seed``, ``batch_size``,
    ``progress``) go to the constructors that take them, so one call site serves every strategy."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; available: {', '.join(STRATEGIES)}")
    cls = STRATEGIES[name]
    accepted = inspect.signature(cls.__init__).parameters
    return cls(**{key: value for key, value in options.items() if key in accepted})


__all__ = ["STRATEGIES", "CoreSet", "Entropy", "LeastConfidence", "Margin", "Random", "ScoreStrategy", "Strategy", "make_strategy", "predict_probabilities"]
