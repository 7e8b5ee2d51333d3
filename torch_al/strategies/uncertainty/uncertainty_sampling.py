"""Uncertainty sampling from one deterministic forward pass: entropy, margin, least confidence."""

from torch import Tensor

from torch_al.strategies import sample_scores
from torch_al.strategies.base import ScoreStrategy


class Entropy(ScoreStrategy):
    """Highest predictive entropy −Σ_c p log p (Shannon, 0 log 0 = 0)."""

    def score(self, probabilities: Tensor) -> Tensor:  # [N, C] -> [N]
        return sample_scores.entropy(probabilities)


class Margin(ScoreStrategy):
    """Smallest margin p₍₁₎ − p₍₂₎ between the two most likely classes; the score is the negated
    margin so that higher stays more informative."""

    def score(self, probabilities: Tensor) -> Tensor:
        top2 = probabilities.topk(2, dim=1).values  # [N, 2]
        return top2[:, 1] - top2[:, 0]


class LeastConfidence(ScoreStrategy):
    """Highest 1 − max_c p(c|x)."""

    def score(self, probabilities: Tensor) -> Tensor:
        return 1 - probabilities.max(1).values


# The uncertainty scores by name, for the strategies that take one as an option (CEAL, Suggestive annotation).
CRITERIA = {"entropy": Entropy, "margin": Margin, "least_confidence": LeastConfidence}
