"""ProbCover (Yehuda, Dekel, Hacohen & Weinshall, "Active Learning Through a Covering Lens",
NeurIPS 2022): the greedy cover of δ-balls, with δ from the paper's purity rule."""

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from torch_al.checks import check_int, check_real
from torch_al.embeddings import last_linear
from torch_al.kmeans import kmeans
from torch_al.nn.capture import Tokens
from torch_al.ops.coverage_greedy import coverage_greedy
from torch_al.ops.nearest_neighbours import nearest_neighbours
from torch_al.seeding import derived_seed
from torch_al.strategies.cold_start import uniform_draw
from torch_al.strategies.low_budget.features import FeatureStrategy


def distance_to_other_clusters(points: Tensor, labels: Tensor) -> Tensor:
    """Each point's Euclidean distance to the nearest point of another cluster (inf if none):
    one streamed pass per cluster, never the N x N matrix."""
    distances = points.new_full((points.shape[0],), math.inf, dtype=torch.float64)
    for cluster in labels.unique().tolist():
        members = labels == cluster
        rows = members.nonzero().flatten()
        squared, _ = nearest_neighbours(points[rows], points, 1, pool_mask=members)
        distances[rows] = squared[:, 0].double().clamp_min(0).sqrt()
    return distances


def purity_radius(other_cluster_distance: Tensor, purity: float, radii: Tensor | None = None) -> float:
    """The largest δ whose balls are pure for at least ``purity`` of the points (a ball is pure
    when it holds no point of another cluster: distance to other clusters > δ). With ``radii``,
    the largest δ of that grid before the first that fails (the paper's search; scikit-activeml's),
    else the exact largest δ: just below the distance at which the impure fraction first exceeds
    1 - purity (a relative 1e-6 below)."""
    n = other_cluster_distance.numel()
    if radii is not None:
        chosen = float(radii[0])
        for radius in radii.tolist():
            if float((other_cluster_distance > radius).double().mean()) < purity:
                break
            chosen = radius
        return chosen
    allowed_impure = math.floor(n * (1 - purity) + 1e-9)
    if allowed_impure >= n:
        allowed_impure = n - 1
    threshold = float(other_cluster_distance.sort().values[allowed_impure])
    if math.isfinite(threshold):
        return threshold * (1 - 1e-6)
    # Too few points have another cluster at all to fail the rule: the widest finite ball.
    finite = other_cluster_distance[other_cluster_distance.isfinite()]
    return float(finite.max()) if finite.numel() else 0.0


class ProbCover(FeatureStrategy):
    """Picks by :func:`torch_al.coverage_greedy`: each pick the unlabeled item whose δ-ball holds
    the most points no labeled or picked item's ball covers yet; once every point is covered, the
    rest of the budget is drawn uniformly from (seed, round) (the paper's rule).

    δ is ``radius`` when given, else the paper's purity rule: k-means with K = ``classes``
    clusters gives pseudo-labels, and δ is the largest radius whose balls are pure (no point of
    another cluster) for at least ``purity`` of the points (:func:`purity_radius`; over ``radii``
    when given). Points are L2-normalised first (``normalise``), as the paper's self-supervised
    features are.

    Args:
        radius: δ, or None for the purity rule.
        purity: α of the purity rule.
        radii: optional grid of δ for the purity rule (increasing).
        classes: K of the pseudo-labels; default the model's last ``nn.Linear`` width.
        normalise: L2-normalise the points.
        features, layer, tokens, batch_size: where the points come from (:class:`FeatureStrategy`).
        seed: k-means's seed and the uniform draw's (with the round).
    """

    def __init__(
        self,
        radius: float | None = None,
        purity: float = 0.95,
        radii: Tensor | None = None,
        classes: int | None = None,
        normalise: bool = True,
        features: Tensor | None = None,
        layer: str | None = None,
        batch_size: int = 256,
        seed: int = 0,
        tokens: Tokens | None = None,
    ) -> None:
        super().__init__(features, layer, batch_size, seed, tokens)
        self.radius = None if radius is None else check_real(radius, "ProbCover: radius", at_least=0.0)
        self.purity = check_real(purity, "ProbCover: purity", above=0.0, at_most=1.0)
        if radii is not None:
            radii = torch.as_tensor(radii, dtype=torch.float64).flatten()
            if radii.numel() == 0 or not bool((radii >= 0).all()) or not bool((radii.diff() > 0).all()):
                raise ValueError(f"ProbCover: radii must be a non-empty increasing grid of radii >= 0, got {radii.tolist()}")
        self.radii = radii
        self.classes = None if classes is None else check_int(classes, "ProbCover: classes", 1)
        self.normalise = normalise

    def pick(self, points, model, pool, budget):
        if self.normalise:
            points = F.normalize(points, dim=1)
        radius = self.radius if self.radius is not None else self.chosen_radius(points, model, pool.round)
        labeled = pool.labeled_mask.to(points.device)
        picks, gains = coverage_greedy(points, radius, budget, initial=labeled)
        picks, gains = picks.cpu(), gains.cpu()
        covering = int((gains > 0).sum())
        if covering < budget:
            rest = torch.ones(len(pool), dtype=torch.bool)
            rest[pool.labeled_indices] = False
            rest[picks[:covering]] = False
            drawn = uniform_draw(rest.nonzero().flatten(), budget - covering, self.seed, "probcover", pool.round)
            picks = torch.cat([picks[:covering], drawn])
        self.note(radius=radius, covering_picks=covering)
        return picks, gains.double()

    def chosen_radius(self, points: Tensor, model, round_: int) -> float:
        classes = self.classes
        if classes is None and model is not None:
            classes = last_linear(model, "ProbCover").out_features
        if classes is None:
            raise ValueError("ProbCover: the purity rule needs the number of classes: pass classes=... (or radius=...)")
        classes = min(classes, points.shape[0])
        labels = kmeans(points, classes, seed=derived_seed(self.seed, "probcover", round_)).labels
        distances = distance_to_other_clusters(points, labels)
        radius = purity_radius(distances, self.purity, self.radii)
        if self.radii is not None and float((distances > radius).double().mean()) < self.purity:
            warnings.warn(f"ProbCover: no radius of the grid reaches purity {self.purity}; using its smallest, {radius}", stacklevel=3)
        return radius
