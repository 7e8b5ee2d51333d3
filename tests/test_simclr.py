"""SimCLR pretraining: the NT-Xent loss against its formula, the augmented views, learning, the
head given back re-initialised, and errors."""

import math

import pytest
import torch

import torch_al.pretraining.simclr as simclr
from torch_al.datasets.synthetic import load_digits
from torch_al.models import LeNet
from torch_al.pretraining import augmented_views, nt_xent_loss, simclr_pretrain


def test_nt_xent_loss_is_the_papers_formula():
    generator = torch.Generator().manual_seed(0)
    first, second = torch.randn(5, 3, generator=generator, dtype=torch.float64), torch.randn(5, 3, generator=generator, dtype=torch.float64)
    z = torch.nn.functional.normalize(torch.cat([first, second]), dim=1)
    tau, n, total = 0.3, 5, 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        others = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(float(z[i] @ z[j]) / tau) / others)
    assert float(nt_xent_loss(first, second, tau)) == pytest.approx(total / (2 * n), rel=1e-12)


def test_views_are_seeded_and_without_crop_or_jitter_an_image_or_its_mirror(monkeypatch):
    images = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    first = augmented_views(images, torch.Generator().manual_seed(5))
    assert first.shape == images.shape and torch.isfinite(first).all()
    assert torch.equal(first, augmented_views(images, torch.Generator().manual_seed(5)))
    monkeypatch.setattr(simclr, "CROP_AREA", (1.0, 1.0))
    monkeypatch.setattr(simclr, "CROP_RATIO", (1.0, 1.0))
    monkeypatch.setattr(simclr, "JITTER", 0.0)
    views = augmented_views(images, torch.Generator().manual_seed(2))
    same = (views - images).abs().amax(dim=(1, 2, 3)) < 1e-6
    mirrored = (views - images.flip(-1)).abs().amax(dim=(1, 2, 3)) < 1e-6
    assert bool((same | mirrored).all()) and bool(same.any()) and bool(mirrored.any())


def digits_images(count: int) -> torch.Tensor:
    images, _ = load_digits()
    return images[:count].float()


def test_pretraining_lowers_the_loss_changes_the_features_and_restores_a_fresh_head(monkeypatch):
    images = digits_images(512)
    losses = []

    def recorded(first, second, temperature):
        loss = nt_xent_loss(first, second, temperature)
        losses.append(float(loss.detach()))
        return loss

    monkeypatch.setattr(simclr, "nt_xent_loss", recorded)
    torch.manual_seed(0)
    model = LeNet()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    simclr_pretrain(model, images, epochs=15, batch_size=128, seed=3, progress=False)
    steps = len(losses) // 15
    assert sum(losses[-steps:]) / steps < sum(losses[:steps]) / steps - 0.3  # chance: log(255) = 5.54
    assert isinstance(model.fc2, torch.nn.Linear) and model.fc2.weight.shape == (10, 50) and model.training
    assert not torch.equal(model.fc1.weight, before["fc1.weight"]) and not torch.equal(model.fc2.weight, before["fc2.weight"])
    torch.manual_seed(0)
    again = LeNet()
    simclr_pretrain(again, images, epochs=15, batch_size=128, seed=3, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


@pytest.mark.parametrize(
    "images, options, error, message",
    [
        (torch.rand(1, 1, 8, 8), {}, ValueError, "at least two images"),
        (torch.rand(4, 8, 8), {}, ValueError, "at least two images"),
        (torch.zeros(4, 1, 8, 8, dtype=torch.uint8), {}, TypeError, "floating-point images"),
        (torch.rand(4, 1, 8, 8), {"batch_size": 1}, ValueError, "batch_size must be an int >= 2"),
        (torch.rand(4, 1, 8, 8), {"temperature": 0.0}, ValueError, "temperature"),
    ],
)
def test_bad_input_is_named(images, options, error, message):
    with pytest.raises(error, match=message):
        simclr_pretrain(LeNet(), images, progress=False, **options)


def test_a_model_without_a_linear_head_is_refused():
    with pytest.raises(ValueError, match="SimCLR pretraining replaces the model's last nn.Linear"):
        simclr_pretrain(torch.nn.Conv2d(1, 1, 3), torch.rand(4, 1, 8, 8), progress=False)
