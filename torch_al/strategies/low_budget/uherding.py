"""UHerding (Bae, Oliveira & Sutherland, "Uncertainty Herding: One Active Learning Method for All
Label Budgets", ICLR 2025): MaxHerding's generalised coverage with each point weighted by the
model's uncertainty about it."""

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from torch_al.checks import check_real, check_validation_set
from torch_al.embeddings import embed_with_logits
from torch_al.nn.capture import Tokens
from torch_al.ops.facility_location_greedy import facility_location_greedy
from torch_al.sampler import inputs_loader
from torch_al.seeding import derived_seed
from torch_al.strategies.low_budget.features import FeatureStrategy

# The temperatures tried by the calibration (as scikit-activeml's UHerding): 10^-1 … 10^1.
TEMPERATURES = torch.logspace(-1, 1, 49, dtype=torch.float64)
# Points whose pairwise distances give the cold-start kernel width; more are sampled down to this.
MEDIAN_SAMPLE = 4096


def margin_uncertainty(logits: Tensor, temperature: float) -> Tensor:
    """1 − (p₍₁₎ − p₍₂₎) of softmax(logits / τ), in float64."""
    top2 = (logits.double() / temperature).softmax(1).topk(2, dim=1).values
    return 1 - (top2[:, 0] - top2[:, 1])


def expected_calibration_error(probabilities: Tensor, labels: Tensor, bins: int = 15) -> float:
    """Σ_b |B_b|/n · |accuracy(B_b) − confidence(B_b)| over ``bins`` equal-width bins of the
    confidence max_c p (the last bin closed)."""
    confidence, predicted = probabilities.max(1)
    which = (confidence * bins).floor().clamp(max=bins - 1).long()
    correct = torch.zeros(bins, dtype=torch.float64).index_add_(0, which, (predicted == labels).double())
    confident = torch.zeros(bins, dtype=torch.float64).index_add_(0, which, confidence.double())
    return float((correct - confident).abs().sum() / max(labels.numel(), 1))


def calibrated_temperature(logits: Tensor, labels: Tensor) -> float:
    """The τ of :data:`TEMPERATURES` with the least expected calibration error of
    softmax(logits / τ) on held-out labeled items (the first of equals)."""
    errors = [expected_calibration_error((logits.double() / float(t)).softmax(1), labels) for t in TEMPERATURES]
    return float(TEMPERATURES[min(range(len(errors)), key=errors.__getitem__)])


def nonzero_distances(points: Tensor, block: int = 4096) -> Tensor:
    """The non-zero Euclidean distances between distinct rows of ``points`` (each pair once), float64."""
    points = points.double()
    found = []
    for start in range(0, points.shape[0], block):
        distances = torch.cdist(points[start : start + block], points[start:])
        pairs = torch.ones_like(distances, dtype=torch.bool).triu(1)
        found.append(distances[pairs & (distances > 0)])
    return torch.cat(found) if found else points.new_empty(0)


class UHerding(FeatureStrategy):
    """Each pick is the unlabeled item that most raises the uncertainty coverage
    UC(S) = Σ_x U(x) max_{s ∈ L ∪ S} k(x, s), the sum over the unlabeled points x, with
    k(x, s) = exp(−‖x − s‖² / σ²) on the L2-normalised points and U(x) = 1 − (p₍₁₎ − p₍₂₎) the
    margin uncertainty of softmax(logits / τ): :func:`torch_al.facility_location_greedy` with
    ``kernel="gaussian"``, the uncertainties as ``weights`` and the labeled items as initial rows
    (exact greedy, ties to the lower index). With few labels σ is wide and the uncertainties
    flat, so it picks like MaxHerding; as labels grow σ shrinks and the weights pick like margin
    sampling, which is the paper's claim of one method for every budget.

    The paper's parameter adaptation, as scikit-activeml reads it: σ (``gamma`` = 1/σ² when None)
    is the smallest non-zero distance between two labeled points, or with fewer than two, the
    median non-zero distance between unlabeled points (over a seeded sample of 4096 of them when
    there are more). τ (``temperature`` when None) minimises the expected calibration error (15
    bins, τ in 10^[−1, 1], 49 steps) of the model's logits on ``validation``, a held-out labeled
    set; without one τ = 1. (scikit-activeml instead refits its classifier on 80% of the labeled
    items and calibrates on the rest, which a deep model's round cannot afford.) If every
    uncertainty is 0 (or not finite), every weight is 1: pure coverage.

    Args:
        temperature: τ, or None to calibrate on ``validation``.
        gamma: 1/σ², or None for the adaptive width.
        validation: (inputs, labels) held out from the pool, for τ.
        normalise: L2-normalise the points first.
        features, layer, tokens, batch_size: where the points come from (:class:`FeatureStrategy`); the
            uncertainties always come from the model's logits.
        seed: the median's sample (with the round).
    """

    def __init__(
        self,
        temperature: float | None = None,
        gamma: float | None = None,
        validation: tuple[Tensor, Tensor] | None = None,
        normalise: bool = True,
        features: Tensor | None = None,
        layer: str | None = None,
        batch_size: int = 256,
        seed: int = 0,
        tokens: Tokens | None = None,
    ) -> None:
        super().__init__(features, layer, batch_size, seed, tokens)
        self.temperature = None if temperature is None else check_real(temperature, "UHerding: temperature", above=0.0)
        self.gamma = None if gamma is None else check_real(gamma, "UHerding: gamma", above=0.0)
        self.validation = None if validation is None else check_validation_set("UHerding", validation)
        self.normalise = normalise

    def pool_values(self, model, pool, rows):
        """The items' points and the model's logits for them, from one forward pass."""
        if model is None:
            raise ValueError("UHerding weighs points by the model's uncertainty; got model=None")
        rows = torch.arange(len(pool)) if rows is None else rows
        self.charge(forward=int(rows.numel()))
        embeddings, logits = embed_with_logits(model, inputs_loader(pool, rows, self.batch_size), rows, "UHerding", self.layer, self.tokens)
        points = embeddings if self.features is None else self.pool_points(model, pool, rows)
        return points, logits

    def pick(self, points, logits, model, pool, budget):
        if self.normalise:
            points = F.normalize(points, dim=1)
        unlabeled, labeled = pool.unlabeled_indices, pool.labeled_indices
        rows, labeled_points = points[unlabeled.to(points.device)], points[labeled.to(points.device)]
        temperature = self.resolved_temperature(model)
        uncertainty = margin_uncertainty(logits[unlabeled.to(logits.device)], temperature)
        if not uncertainty.isfinite().all() or bool((uncertainty.abs() < 1e-12).all()):
            uncertainty = torch.ones_like(uncertainty)
        gamma = self.gamma if self.gamma is not None else self.adaptive_gamma(rows, labeled_points, pool)
        self.note(temperature=temperature, gamma=gamma)
        picks, gains = facility_location_greedy(
            rows, rows, budget, labeled_points if labeled.numel() else None, "gaussian", gamma, uncertainty.to(rows.device, rows.dtype)
        )
        return unlabeled[picks.cpu()], gains.double().cpu()

    def resolved_temperature(self, model) -> float:
        """τ: the one given, calibrated on the validation set, or 1."""
        if self.temperature is not None:
            return self.temperature
        if self.validation is None:
            return 1.0
        inputs, labels = self.validation
        self.charge(forward=int(inputs.shape[0]))
        _, logits = embed_with_logits(model, DataLoader(inputs, batch_size=self.batch_size), None, "UHerding", self.layer, self.tokens)
        return calibrated_temperature(logits.cpu(), labels)

    def adaptive_gamma(self, unlabeled_points: Tensor, labeled_points: Tensor, pool) -> float:
        """1/σ²: σ the least non-zero labeled distance, else the median unlabeled distance, else 1."""
        distances = nonzero_distances(labeled_points)
        if distances.numel():
            sigma = float(distances.min())
        else:
            sample = unlabeled_points
            if sample.shape[0] > MEDIAN_SAMPLE:
                generator = torch.Generator().manual_seed(derived_seed(self.seed, "uherding-median", pool.round))
                sample = sample[torch.randperm(sample.shape[0], generator=generator)[:MEDIAN_SAMPLE].to(sample.device)]
            distances = nonzero_distances(sample)
            sigma = float(distances.median()) if distances.numel() else 1.0
        return 1.0 / sigma**2 if sigma > 0 and math.isfinite(sigma) else 1.0
