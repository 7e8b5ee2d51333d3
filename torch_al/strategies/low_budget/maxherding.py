"""MaxHerding (Bae, Noh & Sutherland, "Generalized Coverage for More Robust Low-Budget Active
Learning", ECCV 2024): greedy maximisation of the generalised coverage Σ_x max_{s ∈ S} k(x, s)
with a Gaussian kernel."""

import torch
import torch.nn.functional as F

from torch_al.checks import check_real
from torch_al.nn.capture import Tokens
from torch_al.ops.facility_location_greedy import facility_location_greedy
from torch_al.strategies.low_budget.features import FeatureStrategy


class MaxHerding(FeatureStrategy):
    """Each pick is the unlabeled item that most raises C(S) = Σ_x max_{s ∈ L ∪ S} k(x, s), the
    sum over the unlabeled points x, with k(x, s) = exp(−γ ‖x − s‖²) on the L2-normalised points:
    :func:`torch_al.facility_location_greedy` with ``kernel="gaussian"`` and the labeled items as
    its initial rows (exact greedy, ties to the lower index; the K × N kernel matrix is never
    formed). ProbCover's objective is the same sum with a 0/1 kernel; the smooth kernel makes it
    far less sensitive to its scale. Needs no labeled item.

    Args:
        gamma: γ of the kernel (1 on unit-norm points; scikit-activeml's default is scikit-learn's
            1 / D).
        normalise: L2-normalise the points first.
        features, layer, tokens, batch_size: where the points come from (:class:`FeatureStrategy`).
    """

    def __init__(
        self,
        gamma: float = 1.0,
        normalise: bool = True,
        features: torch.Tensor | None = None,
        layer: str | None = None,
        batch_size: int = 256,
        tokens: Tokens | None = None,
    ) -> None:
        super().__init__(features, layer, batch_size, tokens=tokens)
        self.gamma = check_real(gamma, "MaxHerding: gamma", above=0.0)
        self.normalise = normalise

    def pick(self, points, model, pool, budget):
        if self.normalise:
            points = F.normalize(points, dim=1)
        unlabeled = pool.unlabeled_indices
        rows = points[unlabeled.to(points.device)]
        labeled = points[pool.labeled_indices.to(points.device)]
        picks, gains = facility_location_greedy(rows, rows, budget, labeled if labeled.shape[0] else None, "gaussian", self.gamma)
        return unlabeled[picks.cpu()], gains.double().cpu()
