"""SimCLR (Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations",
ICML 2020) on the pool's unlabeled images: two augmented views of each image should embed close
together and far from every other image's views (the NT-Xent loss). The augmentations are the
paper's, kept to what a small grey image has: a random resized crop, a horizontal flip, and
brightness and contrast jitter (no colour, no blur at 28 × 28)."""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from torch_al.checks import check_int, check_real
from torch_al.devices import model_device
from torch_al.pretraining.heads import head_slot
from torch_al.seeding import derived_seed

# The paper's crop: 8% to 100% of the area; at 28 x 28 we keep at least 30% (a smaller crop of a
# Fashion-MNIST item is a few blank pixels), with aspect ratios 3/4 to 4/3.
CROP_AREA = (0.3, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
JITTER = 0.4  # brightness and contrast factors drawn from [1 - 0.4, 1 + 0.4], the paper's strength


def augmented_views(images: Tensor, generator: torch.Generator) -> Tensor:
    """One random view of each image Tensor[N, C, H, W]: a resized crop (area fraction and aspect
    ratio drawn per image, position uniform where the crop fits), a horizontal flip with
    probability 1/2, then brightness and contrast factors. Draws come from ``generator`` (CPU) in a
    fixed order, so a seed gives the same views on any device."""
    n = images.shape[0]
    draws = torch.rand(n, 7, generator=generator, dtype=torch.float64)
    area = CROP_AREA[0] + (CROP_AREA[1] - CROP_AREA[0]) * draws[:, 0]
    log_ratio = math.log(CROP_RATIO[0]) + (math.log(CROP_RATIO[1]) - math.log(CROP_RATIO[0])) * draws[:, 1]
    width = (area * log_ratio.exp()).sqrt().clamp(max=1.0)
    height = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
    # The crop's centre in [-1, 1] coordinates, where a crop of half-width w fits: |c| <= 1 - w.
    centre_x = (1 - width) * (2 * draws[:, 2] - 1)
    centre_y = (1 - height) * (2 * draws[:, 3] - 1)
    flip = torch.where(draws[:, 4] < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = width * flip
    theta[:, 0, 2] = centre_x
    theta[:, 1, 1] = height
    theta[:, 1, 2] = centre_y
    theta = theta.to(images.device, images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    views = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    brightness = (1 - JITTER + 2 * JITTER * draws[:, 5]).to(images.device, images.dtype).view(n, 1, 1, 1)
    contrast = (1 - JITTER + 2 * JITTER * draws[:, 6]).to(images.device, images.dtype).view(n, 1, 1, 1)
    mean = views.mean(dim=(1, 2, 3), keepdim=True)
    return ((views - mean) * contrast + mean) * brightness


def nt_xent_loss(first: Tensor, second: Tensor, temperature: float) -> Tensor:
    """The normalised temperature-scaled cross entropy of the paper: rows i of ``first`` and
    ``second`` (Tensor[N, P] projections of two views of image i) are a positive pair; every other
    row of the 2N is a negative. Mean over the 2N rows of −log(exp(s_ij / τ) / Σ_{k≠i} exp(s_ik / τ)),
    s the cosine similarity."""
    z = F.normalize(torch.cat([first, second]), dim=1)
    similarity = z @ z.T / temperature
    similarity.fill_diagonal_(-math.inf)
    n = first.shape[0]
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(similarity, partner)


def simclr_pretrain(
    model: nn.Module,
    images: Tensor,
    epochs: int = 20,
    batch_size: int = 256,
    lr: float = 1e-3,
    temperature: float = 0.5,
    projection: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> nn.Module:
    """Trains ``model`` in place by SimCLR, then re-initialises its head.

    The last ``nn.Linear`` is swapped for the paper's projection head (Linear(d, d), ReLU,
    Linear(d, ``projection``), d its input width) during pretraining, so the representation SimCLR
    learns is that layer's input, the embedding the diversity and low-budget strategies read; the
    head then comes back re-initialised, as after rotation pretraining. Adam (``lr``), batches of
    ``batch_size`` images shuffled from ``seed`` (2 × ``batch_size`` views, the negatives of a
    pair are the rest of its batch); dropout is off while it trains; the model is left in train
    mode.

    Args:
        model: the task model (its last nn.Linear is the classifier head).
        images: Tensor[N, C, H, W] unlabeled images, floating; any device, moved batch by batch.
        epochs: passes over the images.
        batch_size: images per step (>= 2: a pair needs negatives).
        lr: Adam's learning rate.
        temperature: τ of the NT-Xent loss.
        projection: the projection head's output width.
        seed: seeds the shuffling, the views and the heads.
        progress: show a progress bar.

    Returns:
        the model.
    """
    if images.dim() != 4 or images.shape[0] < 2:
        raise ValueError(f"SimCLR pretraining needs at least two images Tensor[N, C, H, W], got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"SimCLR pretraining needs floating-point images, got {images.dtype}")
    check_int(epochs, "SimCLR pretraining: epochs", 1)
    check_int(batch_size, "SimCLR pretraining: batch_size", 2)
    check_int(projection, "SimCLR pretraining: projection", 1)
    check_real(temperature, "SimCLR pretraining: temperature", above=0.0)
    check_real(lr, "SimCLR pretraining: lr", above=0.0)
    parent, name, head = head_slot(model, "SimCLR pretraining")
    device = model_device(model)
    order = torch.Generator().manual_seed(derived_seed(seed, "simclr order"))
    views = torch.Generator().manual_seed(derived_seed(seed, "simclr views"))
    torch.manual_seed(derived_seed(seed, "simclr head"))
    width = head.in_features
    projection_head = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, projection))
    setattr(parent, name, projection_head.to(device, head.weight.dtype))
    try:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        model.train()
        # Dropout off: two views through different masks made LeNet's loss (dropout 0.5) stay at
        # chance in our runs; batch norm keeps its training statistics, as in the paper.
        for module in model.modules():
            if isinstance(module, nn.modules.dropout._DropoutNd):
                module.eval()
        for _ in tqdm(range(epochs), desc="SimCLR pretraining", disable=not progress):
            for batch in torch.randperm(images.shape[0], generator=order).split(batch_size):
                if batch.numel() < 2:
                    continue  # a lone image has no negative
                inputs = images[batch].to(device)
                first, second = augmented_views(inputs, views), augmented_views(inputs, views)
                optimizer.zero_grad()
                nt_xent_loss(model(first), model(second), temperature).backward()
                optimizer.step()
    finally:
        head.reset_parameters()  # the task head starts afresh, seeded like the projection head
        setattr(parent, name, head)
        model.train()
    return model
