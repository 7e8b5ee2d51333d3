"""PCC, PFK (Gudovskiy et al., CVPR 2020) and EBA (Gudovskiy et al., ICLR-W 2019): distribution
matching with multi-scale feature, Fisher-score and attention descriptors."""

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from torch_al.attention import compute_attention
from torch_al.checks import LogitsCheck
from torch_al.descriptors import compute_descriptors, standardise
from torch_al.nn.capture import Tokens, capture_layout
from torch_al.strategies.distribution_matching.matching import Described, DistributionMatching, Estimator, Labels, ValidationMatch


class PFK(DistributionMatching):
    """Pseudo-label Fisher kernel: R_zg between the misclassified validation rows and the pool,
    with z the pooled layer outputs and g the pooled loss gradients at the same layers, both
    standardised per sample and scale. One forward and one backward per described image:
    2(M̂ + N̂) passes per round (validation_match searches each batch's labels between its forward
    and its backward, at no pass of its own; finding the misclassified rows costs M forwards). The Monte-Carlo estimators (``trace_cov``,
    ``mutual_info``) add K·D forward and K·D backward images per pool item (K = ``samples`` perturbed copies, D classes), and one forward to read D.

    Args: as :class:`DistributionMatching`; the paper's method is ``estimator="validation_match"``.
    """

    def describe(
        self, model: nn.Module, layers: Sequence[str], loader: DataLoader, labels: Labels, features: bool, gradients: bool, check: LogitsCheck | None = None
    ) -> Described:
        capture = "both" if features and gradients else "features" if features else "gradients"
        if isinstance(labels, ValidationMatch):  # searched batch by batch, on the standardised features
            search, labels = labels, lambda z, columns: search(standardise(z, columns))
        described = compute_descriptors(model, loader, layers, capture, labels, progress=self.progress, check=check, **capture_layout(self.tokens, model))
        rows = described.labels.numel()
        self.charge(forward=rows, backward=rows if gradients else 0)
        # The stores are this call's own: standardised in place (a pool of 10⁶ items keeps one copy).
        z = standardise(described.features, described.columns, out=described.features) if features else None
        g = standardise(described.gradients, described.columns, out=described.gradients) if gradients else None
        return Described(z, g, described.labels)


class PCC(PFK):
    """Pearson-correlation matching on features alone, R_z (PFK without gradients): M + N̂
    forward passes per round.

    Args: as :class:`DistributionMatching`, without ``estimator`` and ``combine``.
    """

    uses_gradients = False

    def __init__(
        self,
        validation: tuple[Tensor, Tensor] | None = None,
        layers: Sequence[str] | None = None,
        k: int = 32,
        batch_size: int = 256,
        seed: int = 0,
        progress: bool = True,
        precision: str = "exact",
        tokens: Tokens | None = None,
    ) -> None:
        super().__init__(validation, layers, "argmax", "product", k, batch_size, seed, progress, precision=precision, tokens=tokens)


class EBA(DistributionMatching):
    """Explanation-based attention: R = R_d ∘ R_a with d the concatenated multi-scale layer
    outputs and a the integrated-gradient attention at the same layers (``compute_attention``),
    each L2-normalised (cosine similarity). Attention costs ``steps`` forward/backward passes per
    described image.

    Args:
        steps: K, integrated-gradient path steps; the paper uses 128 (1 is plain saliency).
        chunk: path steps per forward/backward.
        others: as :class:`DistributionMatching` (``combine`` is the paper's product).
    """

    def __init__(
        self,
        validation: tuple[Tensor, Tensor] | None = None,
        layers: Sequence[str] | None = None,
        estimator: Estimator = "argmax",
        steps: int = 128,
        chunk: int = 16,
        k: int = 32,
        batch_size: int = 256,
        seed: int = 0,
        progress: bool = True,
        precision: str = "exact",
        tokens: Tokens | None = None,
    ) -> None:
        super().__init__(validation, layers, estimator, "product", k, batch_size, seed, progress, precision=precision, tokens=tokens)
        self.steps = steps
        self.chunk = chunk

    def describe(
        self, model: nn.Module, layers: Sequence[str], loader: DataLoader, labels: Labels, features: bool, gradients: bool, check: LogitsCheck | None = None
    ) -> Described:
        d = a = None
        search = labels if isinstance(labels, ValidationMatch) else None  # on d, before the attention's passes
        if features or search:
            described = compute_descriptors(model, loader, layers, "features", "argmax" if search else labels, progress=self.progress, check=check, **capture_layout(self.tokens, model))
            d, used = [F.normalize(described.features, dim=1)], described.labels
            self.charge(forward=used.numel())
            if search:
                labels = search(d)
        if gradients:
            attention = compute_attention(model, loader, layers, self.steps, self.chunk, labels=labels, progress=self.progress, check=check, **capture_layout(self.tokens, model))
            a, used = [F.normalize(attention.attention, dim=1)], attention.labels
            self.charge(forward=self.steps * used.numel(), backward=self.steps * used.numel())
        return Described(d, a, used)
