"""Monte-Carlo pseudo-labels of PFK (Gudovskiy et al., CVPR 2020, section 4.3): perturb each input
K times, take the features z_k and the per-class Fisher scores g_k(d), and label the input with
the class d whose scores co-vary most with the features: S = tr(C_zg) or S = I(z; g)."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from torch_al.batches import inputs_of
from torch_al.checks import LogitsCheck, check_int, first_output
from torch_al.descriptors import compute_descriptors, standardise
from torch_al.devices import model_device
from torch_al.nn.capture import Tokens

MonteCarloKind = Literal["trace_cov", "mutual_info"]
MONTE_CARLO_KINDS = ("trace_cov", "mutual_info")


@dataclass
class PseudoLabels:
    """Pseudo-labels and what they cost.

    Attributes:
        labels: int64 Tensor[N], one class per input in loader order, on the model's device.
        forward: images sent through a forward pass.
        backward: images sent through a backward pass.
    """

    labels: Tensor
    forward: int
    backward: int


def rotate(images: Tensor, degrees: Tensor) -> Tensor:
    """Rotates each image about its centre (bilinear resampling, zeros outside the image).

    Args:
        images: floating Tensor[B, C, H, W].
        degrees: Tensor[B], one angle per image; a positive angle turns the picture
            counter-clockwise as displayed (row 0 at the top), as ``torch.rot90`` does.

    Returns:
        Tensor[B, C, H, W], same dtype and device as ``images``.
    """
    batch, _, height, width = images.shape
    radians = torch.deg2rad(degrees.to(images.device, torch.float64))
    cos, sin = radians.cos(), radians.sin()
    zero = torch.zeros_like(cos)
    # affine_grid maps each output pixel to the input point it samples (the inverse rotation), in
    # coordinates normalised per axis: the H/W ratios keep a non-square image's angles right.
    theta = torch.stack(
        [torch.stack([cos, -sin * height / width, zero], 1), torch.stack([sin * width / height, cos, zero], 1)],
        dim=1,
    ).to(images.dtype)
    grid = F.affine_grid(theta, [batch, images.shape[1], height, width], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def perturb(inputs: Tensor, copies: int, generator: torch.Generator, max_degrees: float = 5.0, noise_std: float = 0.01) -> Tensor:
    """K perturbed copies of each input: the paper's uniform ±5° rotations and additive Gaussian
    pixel noise. Only 4-D image batches (N, C, H, W) are rotated; inputs of any other rank (feature
    vectors, sequences) only get the noise.

    Deterministic given the generator's state: the angles are drawn first (images only), then the
    noise, on the generator's device, and moved to the inputs' device, so a CPU generator gives
    the same copies on every device.

    Args:
        inputs: floating Tensor[N, ...].
        copies: K >= 1.
        generator: the source of every random draw.
        max_degrees: angles are uniform in [-max_degrees, max_degrees].
        noise_std: standard deviation of the additive noise.

    Returns:
        Tensor[N·K, ...]: input i's copies are rows i·K .. i·K + K - 1.
    """
    if not inputs.is_floating_point():
        raise ValueError(f"perturb: inputs must be floating, got {inputs.dtype}")
    check_int(copies, "perturb: copies", 1)
    if max_degrees < 0 or noise_std < 0:
        raise ValueError(f"perturb: max_degrees and noise_std must be >= 0, got {max_degrees!r} and {noise_std!r}")
    repeated = inputs.repeat_interleave(copies, dim=0)
    if inputs.dim() == 4:
        uniform = torch.rand(repeated.shape[0], generator=generator, device=generator.device, dtype=torch.float64)
        repeated = rotate(repeated, (2 * uniform - 1) * max_degrees)
    noise = torch.randn(repeated.shape, generator=generator, device=generator.device, dtype=inputs.dtype)
    return repeated + noise_std * noise.to(inputs.device)


def monte_carlo_scores(z: Tensor, g: Tensor, kind: MonteCarloKind, jitter: float = 1e-3) -> Tensor:
    """Per input and class, how much the Fisher scores g(d) depend on the features z over the K
    perturbed samples (Gudovskiy et al., CVPR 2020, section 4.3).

    ``"trace_cov"``: S = tr(C_zg) = Σ_l cov(z_l, g_l(d)), centred over the K samples (divided by
    K - 1). ``"mutual_info"``: the Gaussian mutual information
    S = I(z; g) = ½ (log|C_zz| + log|C_gg| - log|C_[z,g]|), each covariance (centred, / (K - 1),
    in float64) with its diagonal scaled by (1 + ``jitter``), log-determinants as
    2 Σ log diag(cholesky). With K <= 2L the joint covariance (rank <= K - 1) is singular, and so
    are C_zz and C_gg when K <= L: the ridge keeps them positive definite, so S is a regularised
    estimate. The ridge is relative to each coordinate's variance because Fisher scores vary far
    less under small perturbations than features do (an absolute ridge would swamp them), and
    because the Gaussian I(z; g) does not change when a coordinate of z or g is rescaled: neither
    does this estimate. A coordinate constant over the K samples gets 1e-30 on its diagonal,
    identically in C_zz (or C_gg) and C_[z,g], so it adds nothing to S.

    Memory: the ``"mutual_info"`` covariances take n·D·(2L)² float64 values.

    Args:
        z: Tensor[n, K, L] feature samples, K >= 2.
        g: Tensor[n, D, K, L] Fisher-score samples, one set per class d.
        kind: ``"trace_cov"`` or ``"mutual_info"``.
        jitter: relative ridge on every covariance's diagonal (mutual_info only), >= 0.

    Returns:
        float64 Tensor[n, D] on z's device; higher means the class explains the features better.
    """
    _check_score_inputs(z, g, kind, jitter)
    z_centred = _centred(z.double())
    g_centred = _centred(g.double())
    samples = z.shape[1]
    if kind == "trace_cov":
        return torch.einsum("nkl,ndkl->nd", z_centred, g_centred) / (samples - 1)
    joint = torch.cat([z_centred.unsqueeze(1).expand_as(g_centred), g_centred], dim=-1)
    logdet_z = _logdet(_covariance(z_centred, jitter)).unsqueeze(1)
    return 0.5 * (logdet_z + _logdet(_covariance(g_centred, jitter)) - _logdet(_covariance(joint, jitter)))


def _check_score_inputs(z: Tensor, g: Tensor, kind: str, jitter: float) -> None:
    if kind not in MONTE_CARLO_KINDS:
        raise ValueError(f"monte_carlo_scores: kind must be one of {MONTE_CARLO_KINDS}, got {kind!r}")
    if z.dim() != 3 or g.dim() != 4 or g.shape[0] != z.shape[0] or g.shape[2:] != z.shape[1:]:
        raise ValueError(f"monte_carlo_scores: z must be Tensor[n, K, L] and g Tensor[n, D, K, L], got {tuple(z.shape)} and {tuple(g.shape)}")
    if z.shape[1] < 2:
        raise ValueError(f"monte_carlo_scores: a covariance needs K >= 2 samples per input, got K = {z.shape[1]}")
    if z.shape[2] < 1:
        raise ValueError("monte_carlo_scores: the descriptors are empty (L = 0)")
    if not jitter >= 0:
        raise ValueError(f"monte_carlo_scores: jitter must be >= 0, got {jitter!r}")


def _centred(samples: Tensor) -> Tensor:
    """Tensor[..., K, L] minus its mean over the K samples."""
    return samples - samples.mean(dim=-2, keepdim=True)


CONSTANT_COORDINATE_VARIANCE = 1e-30


def _covariance(centred: Tensor, jitter: float) -> Tensor:
    """Tensor[..., K, L] centred samples → Tensor[..., L, L] unbiased covariance, its diagonal
    scaled by (1 + jitter), plus a floor so constant coordinates stay positive definite."""
    covariance = centred.mT @ centred / (centred.shape[-2] - 1)
    ridge = jitter * covariance.diagonal(dim1=-2, dim2=-1) + CONSTANT_COORDINATE_VARIANCE
    return covariance + torch.diag_embed(ridge)


def _logdet(matrices: Tensor) -> Tensor:
    """log|C| of positive definite Tensor[..., L, L] through its Cholesky factor."""
    return 2 * torch.linalg.cholesky(matrices).diagonal(dim1=-2, dim2=-1).log().sum(-1)


def _count_classes(model: nn.Module, inputs: Tensor, check: LogitsCheck | None) -> int:
    """D, the width of the model's logits, from one forward of ``inputs`` in eval mode (a lone
    sample would break training-mode batch-norm); the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            outputs = model(inputs)
    finally:
        model.train(was_training)
    if check is not None:  # its finiteness is checked with the batch's copies
        return int(check.shape(outputs, inputs.shape[0]).shape[1])
    return int(first_output(outputs).shape[1])


def monte_carlo_pseudo_labels(
    model: nn.Module,
    layers: Sequence[str | nn.Module],
    loader: DataLoader,
    samples: int,
    generator: torch.Generator,
    kind: MonteCarloKind,
    jitter: float = 1e-3,
    max_degrees: float = 5.0,
    noise_std: float = 0.01,
    check: LogitsCheck | None = None,
    channel_dim: int = 1,
    tokens: Tokens = "mean",
) -> PseudoLabels:
    """PFK's Monte-Carlo pseudo-labels: per input, argmax over d of :func:`monte_carlo_scores`
    (ties to the lower class).

    Each batch is perturbed (:func:`perturb`, K copies per input); the copies go through
    ``compute_descriptors`` once per class d with every label equal to d (eval mode), features
    captured with the first class only. Descriptors are standardised per sample and per scale, as
    PFK's, and the scales concatenated to length L.

    Cost: K·D forward and K·D backward images per input, plus one forward of one input to read D
    (the width of the model's logits).

    Args:
        model: the task model; logits Tensor[B, D] (or a tuple whose first item is).
        layers: descriptor layers (names from ``model.named_modules()`` or submodules).
        loader: batches of inputs, or of (inputs, ...) tuples, in a fixed order; its batch size
            is also the batch size of the passes over the perturbed copies (the K·B copies of a
            batch of B inputs are held on the model's device at once).
        samples: K >= 2, perturbed copies per input.
        generator: draws the perturbations (:func:`perturb`), batch after batch.
        kind: ``"trace_cov"`` or ``"mutual_info"``.
        jitter, max_degrees, noise_std: as in :func:`monte_carlo_scores` and :func:`perturb`.
        check: validates the logits of every pass (a strategy's :class:`LogitsCheck` for the
            loader; a perturbed copy's bad logits name its input); default: a tuple's first item.
        channel_dim, tokens: the layer outputs' layout, as in :func:`~torch_al.compute_descriptors`.

    Returns:
        :class:`PseudoLabels` with int64 labels Tensor[N] on the model's device.
    """
    check_int(samples, "monte_carlo_pseudo_labels: samples", 2)
    device = model_device(model)
    classes, forward, backward, start = 0, 0, 0, 0
    labels = []
    for batch in loader:
        inputs = inputs_of(batch).to(device)
        rows = inputs.shape[0]
        if not classes:
            classes = _count_classes(model, inputs[:1], check)
            forward += 1
        copies = perturb(inputs, samples, generator, max_degrees, noise_std)
        copies_check = None if check is None else check.subset(torch.arange(start, start + rows).repeat_interleave(samples))
        z, g = _per_class_descriptors(model, layers, copies, classes, loader.batch_size or copies.shape[0], copies_check, {"channel_dim": channel_dim, "tokens": tokens})
        start += rows
        g = g.view(classes, rows, samples, -1).transpose(0, 1)
        labels.append(monte_carlo_scores(z.view(rows, samples, -1), g, kind, jitter).argmax(dim=1))
        forward += classes * copies.shape[0]
        backward += classes * copies.shape[0]
    labels = torch.cat(labels) if labels else torch.empty(0, dtype=torch.int64, device=device)
    return PseudoLabels(labels, forward, backward)


def _per_class_descriptors(
    model: nn.Module, layers: Sequence[str | nn.Module], copies: Tensor, classes: int, batch_size: int, check: LogitsCheck | None, layout: dict
) -> tuple[Tensor, Tensor]:
    """Standardised features Tensor[B, L] of the copies and their Fisher scores Tensor[D, B, L]
    for every class, one ``compute_descriptors`` run per class."""
    loader = DataLoader(TensorDataset(copies), batch_size=batch_size)
    features, gradients = None, []
    for label in range(classes):
        labels = torch.full((copies.shape[0],), label, dtype=torch.int64, device=copies.device)
        capture = "both" if features is None else "gradients"
        # Every class runs the same forward (only the loss's label changes): check it once.
        described = compute_descriptors(model, loader, layers, capture, labels, progress=False, check=check if features is None else None, **layout)
        if features is None:
            features = torch.cat(standardise(described.features, described.columns), dim=1)
        gradients.append(torch.cat(standardise(described.gradients, described.columns), dim=1))
    return features, torch.stack(gradients)
