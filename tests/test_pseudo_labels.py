"""PFK's Monte-Carlo pseudo-label estimators (trace_cov, mutual_info) against float64 NumPy and
plain-autograd references."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from torch_al import ActivePool
from torch_al.datasets import make_blobs
from torch_al.strategies import PFK, make_strategy
from torch_al.strategies.distribution_matching.pseudo_labels import MONTE_CARLO_KINDS, monte_carlo_pseudo_labels, monte_carlo_scores, perturb, rotate

needs_ops = pytest.mark.skipif(not hasattr(torch.ops.torch_al, "pfk_topk"), reason="needs the compiled ops")


def numpy_scores(z: torch.Tensor, g: torch.Tensor, kind: str, jitter: float = 1e-3) -> np.ndarray:
    """S[i, d] from np.cov of the K joint samples [z, g(d)] and np.linalg.slogdet, one pair at a time."""
    z, g = z.double().numpy(), g.double().numpy()
    rows, classes, _, width = g.shape
    scores = np.zeros((rows, classes))
    for i in range(rows):
        for d in range(classes):
            joint = np.cov(np.concatenate([z[i], g[i, d]], axis=1), rowvar=False).reshape(2 * width, 2 * width)
            if kind == "trace_cov":
                scores[i, d] = np.trace(joint[:width, width:])
            else:
                logdet = lambda c: np.linalg.slogdet(c + np.diag(jitter * np.diag(c) + 1e-30))[1]  # noqa: E731
                scores[i, d] = 0.5 * (logdet(joint[:width, :width]) + logdet(joint[width:, width:]) - logdet(joint))
    return scores


@pytest.mark.parametrize("kind", MONTE_CARLO_KINDS)
def test_scores_match_numpy(kind):
    generator = torch.Generator().manual_seed(1)
    shapes = [(0, 2, 3, 2), (1, 1, 2, 1), (3, 4, 2, 3), (2, 1, 5, 1), (4, 3, 7, 2), (5, 2, 3, 6), (2, 3, 16, 4)]  # (n, D, K, L)
    for rows, classes, samples, width in shapes:
        z = torch.randn(rows, samples, width, generator=generator, dtype=torch.float64)
        g = torch.randn(rows, classes, samples, width, generator=generator, dtype=torch.float64)
        scores = monte_carlo_scores(z, g, kind)
        assert scores.dtype == torch.float64 and scores.shape == (rows, classes)
        np.testing.assert_allclose(scores.numpy(), numpy_scores(z, g, kind), rtol=1e-9, atol=1e-12)
    z32, g32 = z.float(), g.float()  # float32 inputs are promoted before any arithmetic
    np.testing.assert_allclose(monte_carlo_scores(z32, g32, kind).numpy(), numpy_scores(z32, g32, kind), rtol=1e-9, atol=1e-12)


def test_scores_reject_bad_inputs():
    z, g = torch.randn(2, 1, 3), torch.randn(2, 4, 1, 3)
    with pytest.raises(ValueError, match="K >= 2"):
        monte_carlo_scores(z, g, "trace_cov")
    with pytest.raises(ValueError, match="kind must be one of"):
        monte_carlo_scores(torch.randn(2, 3, 3), torch.randn(2, 4, 3, 3), "entropy")
    with pytest.raises(ValueError, match=r"Tensor\[n, D, K, L\]"):
        monte_carlo_scores(torch.randn(2, 3, 3), torch.randn(2, 4, 3, 2), "mutual_info")


def numpy_rotation(image: np.ndarray, degrees: float) -> np.ndarray:
    """Counter-clockwise (as displayed) rotation about the centre, bilinear, zeros outside."""
    height, width = image.shape
    cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    out = np.zeros_like(image)
    for row in range(height):
        for column in range(width):
            u, v = column - (width - 1) / 2, row - (height - 1) / 2  # v points down
            x, y = cos * u - sin * v + (width - 1) / 2, sin * u + cos * v + (height - 1) / 2
            x0, y0 = math.floor(x), math.floor(y)
            for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
                for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
                    if 0 <= yy < height and 0 <= xx < width:
                        out[row, column] += wy * wx * image[yy, xx]
    return out


def test_rotation_matches_a_direct_computation():
    square = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(rotate(square, torch.tensor([90.0, -90.0])), torch.stack([square[0].rot90(1, (1, 2)), square[1].rot90(-1, (1, 2))]))
    oblong = torch.rand(1, 1, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(rotate(oblong, torch.tensor([180.0])), oblong.flip(2, 3))
    for degrees in (30.0, -4.0):
        expected = torch.from_numpy(numpy_rotation(oblong[0, 0].numpy(), degrees))
        torch.testing.assert_close(rotate(oblong, torch.tensor([degrees]))[0, 0], expected, rtol=0, atol=1e-12)


def test_perturb_groups_copies_per_input_and_is_deterministic():
    images = torch.rand(3, 2, 8, 8)
    copies = perturb(images, 4, torch.Generator().manual_seed(0))
    assert copies.shape == (12, 2, 8, 8) and copies.dtype == images.dtype
    torch.testing.assert_close(copies, perturb(images, 4, torch.Generator().manual_seed(0)), rtol=0, atol=0)
    assert not torch.equal(copies, perturb(images, 4, torch.Generator().manual_seed(1)))
    # Small rotations and noise keep every copy closest to its own input.
    distances = torch.cdist(copies.flatten(1), images.flatten(1))
    assert distances.argmin(1).tolist() == [0] * 4 + [1] * 4 + [2] * 4
    unperturbed = perturb(images, 4, torch.Generator().manual_seed(0), max_degrees=0.0, noise_std=0.0)
    torch.testing.assert_close(unperturbed, images.repeat_interleave(4, 0), rtol=0, atol=1e-6)


def test_perturb_rotates_by_the_drawn_angles_then_adds_noise():
    images = torch.rand(2, 1, 6, 9, dtype=torch.float64)
    rotated_only = perturb(images, 3, torch.Generator().manual_seed(5), max_degrees=5.0, noise_std=0.0)
    replay = torch.Generator().manual_seed(5)
    angles = (2 * torch.rand(6, generator=replay, dtype=torch.float64) - 1) * 5.0  # documented draw order
    assert angles.abs().max() <= 5.0 and angles.std() > 0.5
    expected = torch.stack([torch.from_numpy(numpy_rotation(images[i // 3, 0].numpy(), float(a))) for i, a in enumerate(angles)])
    torch.testing.assert_close(rotated_only[:, 0], expected, rtol=0, atol=1e-12)
    noisy = perturb(images, 3, torch.Generator().manual_seed(5), max_degrees=5.0, noise_std=0.01)
    torch.testing.assert_close(noisy - rotated_only, 0.01 * torch.randn(6, 1, 6, 9, generator=replay, dtype=torch.float64))


@pytest.mark.parametrize("shape", [(4, 5), (4, 3, 6), (4, 1, 2, 3, 3)])
def test_perturb_only_adds_noise_to_other_ranks(shape):
    inputs = torch.rand(shape)
    copies = perturb(inputs, 5, torch.Generator().manual_seed(2), max_degrees=30.0)
    noise = 0.01 * torch.randn((20, *shape[1:]), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(copies, inputs.repeat_interleave(5, 0) + noise, rtol=0, atol=0)
    assert perturb(inputs, 5, torch.Generator().manual_seed(2), noise_std=0.0).equal(inputs.repeat_interleave(5, 0))


def test_perturb_noise_has_the_requested_spread():
    inputs = torch.zeros(200, 50)
    assert abs(float(perturb(inputs, 10, torch.Generator().manual_seed(0), noise_std=0.01).std()) - 0.01) < 2e-4


def test_perturb_rejects_bad_arguments():
    generator = torch.Generator()
    with pytest.raises(ValueError, match="floating"):
        perturb(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), 2, generator)
    with pytest.raises(ValueError, match="copies"):
        perturb(torch.zeros(2, 3), 0, generator)
    with pytest.raises(ValueError, match="noise_std"):
        perturb(torch.zeros(2, 3), 2, generator, noise_std=-1.0)


def tiny_convnet() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 5), nn.Tanh(), nn.Linear(5, 4)).double()


def pooled_and_standardised(scales: list[torch.Tensor]) -> torch.Tensor:
    """Mean over the spatial dims, then per sample and scale minus the mean over the unbiased std."""
    pooled = [s.detach().mean((2, 3)) if s.dim() == 4 else s.detach() for s in scales]
    return torch.cat([(s - s.mean(1, keepdim=True)) / (s.std(1, keepdim=True) + 1e-10) for s in pooled], 1)


def autograd_descriptors(model: nn.Module, x: torch.Tensor, label: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, g) Tensor[B, L] at model[1] and model[4] by plain autograd, every sample labelled ``label``."""
    outputs = []
    handles = [model[i].register_forward_hook(lambda module, inputs, output: outputs.append(output)) for i in (1, 4)]
    try:
        logits = model(x)
    finally:
        for handle in handles:
            handle.remove()
    loss = F.cross_entropy(logits, torch.full((x.shape[0],), label), reduction="sum")  # summed: per-sample gradients
    return pooled_and_standardised(outputs), pooled_and_standardised(torch.autograd.grad(loss, outputs))


@needs_ops
@pytest.mark.parametrize("kind", MONTE_CARLO_KINDS)
def test_estimator_labels_match_an_autograd_reference(kind):
    model, samples, classes = tiny_convnet().eval(), 6, 4
    images = 3 * torch.randn(7, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    loader = DataLoader(TensorDataset(images), batch_size=3)  # three batches draw one after another
    estimated = monte_carlo_pseudo_labels(model.train(), ("1", "4"), loader, samples, torch.Generator().manual_seed(9), kind)
    assert model.training  # the mode is put back

    model.eval()
    replay = torch.Generator().manual_seed(9)
    expected = []
    for (batch,) in loader:
        copies = perturb(batch, samples, replay)
        z = autograd_descriptors(model, copies, 0)[0].view(len(batch), samples, -1)
        g = torch.stack([autograd_descriptors(model, copies, d)[1].view(len(batch), samples, -1) for d in range(classes)], 1)
        expected += numpy_scores(z, g, kind).argmax(1).tolist()  # argmax keeps the first (lowest) of equal maxima
    assert estimated.labels.dtype == torch.int64 and estimated.labels.tolist() == expected
    assert len(set(expected)) > 1  # the check is not vacuous
    assert (estimated.forward, estimated.backward) == (samples * classes * 7 + 1, samples * classes * 7)


@needs_ops
@pytest.mark.parametrize("kind", MONTE_CARLO_KINDS)
def test_tied_classes_resolve_to_the_lowest(kind):
    model = tiny_convnet()
    nn.init.zeros_(model[5].weight)  # every class then has the same (zero) Fisher scores: all scores tie
    loader = DataLoader(TensorDataset(torch.randn(5, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))), batch_size=5)
    assert monte_carlo_pseudo_labels(model, ("1", "4"), loader, 3, torch.Generator(), kind).labels.tolist() == [0] * 5


@needs_ops
@pytest.mark.needs_cuda
def test_cuda_agrees_with_cpu():
    images = 3 * torch.randn(7, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(perturb(images.cuda(), 4, torch.Generator().manual_seed(3)).cpu(), perturb(images, 4, torch.Generator().manual_seed(3)))
    z, g = torch.randn(5, 6, 4, dtype=torch.float64), torch.randn(5, 3, 6, 4, dtype=torch.float64)
    for kind in MONTE_CARLO_KINDS:
        torch.testing.assert_close(monte_carlo_scores(z.cuda(), g.cuda(), kind).cpu(), monte_carlo_scores(z, g, kind))
        loader = DataLoader(TensorDataset(images), batch_size=3)
        on_cpu = monte_carlo_pseudo_labels(tiny_convnet(), ("1", "4"), loader, 6, torch.Generator().manual_seed(9), kind)
        on_cuda = monte_carlo_pseudo_labels(tiny_convnet().cuda(), ("1", "4"), loader, 6, torch.Generator().manual_seed(9), kind)
        assert on_cuda.labels.device.type == "cuda" and on_cuda.labels.cpu().equal(on_cpu.labels)


def blobs_problem():
    x, y = make_blobs(110, num_classes=3, dim=5, spread=1.5, seed=2)
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Linear(12, 7), nn.ReLU(), nn.Linear(7, 3))
    pool = ActivePool(TensorDataset(x[50:], y[50:]))
    pool.label([0, 4, 9], y[50:][[0, 4, 9]])
    return model, (x[:50], y[:50]), pool


def monte_carlo_pfk(validation, kind: str) -> PFK:
    return PFK(validation, ("1", "3"), estimator=kind, k=4, batch_size=16, progress=False, samples=3)


@needs_ops
@pytest.mark.parametrize("kind", MONTE_CARLO_KINDS)
def test_pfk_with_monte_carlo_labels_selects_reproducibly_and_charges_k_d_passes(kind):
    model, validation, pool = blobs_problem()
    missed = int((model(validation[0]).argmax(1) != validation[1]).sum())
    unlabeled, samples, classes = 57, 3, 3
    for budget in (1, 9, unlabeled):
        strategy = monte_carlo_pfk(validation, kind)
        picked = strategy.select(model, pool, budget)
        assert picked.numel() == budget == len(set(picked.tolist())) and not pool.labeled_mask[picked].any()
        estimator_passes = samples * classes * unlabeled  # K·D per pool item, plus one forward to read D
        assert strategy.last_cost.forward == 50 + missed + unlabeled + estimator_passes + 1  # labels first: one pool pass
        assert strategy.last_cost.backward == missed + unlabeled + estimator_passes
    assert monte_carlo_pfk(validation, kind).select(model, pool, 9).equal(monte_carlo_pfk(validation, kind).select(model, pool, 9))


def test_registry_names_and_bad_samples():
    _, validation, _ = blobs_problem()
    strategy = make_strategy("pfk-sum-mi", validation=validation, samples=5)
    assert (strategy.estimator, strategy.combine, strategy.samples) == ("mutual_info", "sum", 5)
    assert make_strategy("pfk-product-trace", validation=validation).estimator == "trace_cov"
    for samples in (1, 0, 2.5, True):
        with pytest.raises(ValueError, match="samples"):
            PFK(validation, estimator="trace_cov", samples=samples)


def test_mutual_info_ignores_the_scale_of_each_coordinate():
    generator = torch.Generator().manual_seed(4)
    z = torch.randn(3, 6, 4, generator=generator, dtype=torch.float64)
    g = torch.randn(3, 2, 6, 4, generator=generator, dtype=torch.float64)
    z_scale = torch.tensor([1e-3, 1.0, 50.0, 2.0], dtype=torch.float64)
    g_scale = torch.tensor([1e-4, 3.0, 1.0, 1e2], dtype=torch.float64)  # Fisher scores vary little under small perturbations
    scaled = monte_carlo_scores(z * z_scale, g * g_scale, "mutual_info")
    torch.testing.assert_close(scaled, monte_carlo_scores(z, g, "mutual_info"), rtol=1e-9, atol=1e-9)
    constant = torch.cat([z, torch.full((3, 6, 1), 2.0, dtype=torch.float64)], dim=2)  # a dead channel adds nothing
    with_dead = torch.cat([g, torch.zeros(3, 2, 6, 1, dtype=torch.float64)], dim=3)
    torch.testing.assert_close(monte_carlo_scores(constant, with_dead, "mutual_info"), monte_carlo_scores(z, g, "mutual_info"), rtol=1e-6, atol=1e-6)
