"""Rotation self-supervised pretraining (Gidaris et al., ICLR 2018), the PFK paper's initial model:
learn to tell which of 0/90/180/270° an unlabeled image was rotated by, then re-initialise the
last fully-connected layer so the first active-learning round starts from the learned features."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from torch_al.checks import check_int
from torch_al.devices import model_device
from torch_al.pretraining.heads import head_slot
from torch_al.seeding import derived_seed

ROTATIONS = 4


def rotated_batch(images: Tensor) -> tuple[Tensor, Tensor]:
    """Every image at the four rotations → (Tensor[4n, C, H, W], int64 Tensor[4n] rotation index)."""
    rotated = torch.cat([torch.rot90(images, turns, dims=(-2, -1)) for turns in range(ROTATIONS)])
    targets = torch.arange(ROTATIONS, device=images.device).repeat_interleave(images.shape[0])
    return rotated, targets


def rotation_pretrain(
    model: nn.Module,
    images: Tensor,
    epochs: int = 8,
    batch_size: int = 64,
    lr: float = 0.05,
    seed: int = 0,
    progress: bool = True,
) -> nn.Module:
    """Trains ``model`` in place to predict image rotations, then re-initialises its head.

    The last ``nn.Linear`` is swapped for a 4-way rotation head during pretraining (its input
    width is kept) and replaced by a freshly initialised layer of the original shape afterwards,
    as the paper does. Each step sees a batch of images at all four rotations. SGD with momentum
    0.5 (the papers' recipe), batches shuffled from ``seed``; the model is left in train mode.

    Args:
        model: the task model (its last nn.Linear is the classifier head).
        images: Tensor[N, C, H, W] unlabeled images, H == W (a 90° turn keeps the shape); any device,
            moved batch by batch to the model's.
        epochs: passes over the images (the paper: 8 for MNIST).
        batch_size: images per step (4× as many rows).
        lr: SGD learning rate.
        seed: seeds the shuffling and the new head.
        progress: show a progress bar.

    Returns:
        the model.
    """
    if images.dim() != 4 or images.shape[-1] != images.shape[-2] or images.shape[0] == 0:
        raise ValueError(f"rotation pretraining needs a non-empty batch of square images Tensor[N, C, H, W], got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"rotation pretraining needs floating-point images, got {images.dtype}")
    check_int(epochs, "rotation pretraining: epochs", 1)
    check_int(batch_size, "rotation pretraining: batch_size", 1)
    parent, name, head = head_slot(model)
    device = model_device(model)
    generator = torch.Generator().manual_seed(derived_seed(seed, "rotation"))
    torch.manual_seed(derived_seed(seed, "rotation head"))
    setattr(parent, name, nn.Linear(head.in_features, ROTATIONS).to(device, head.weight.dtype))
    try:
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.5)
        model.train()
        for _ in tqdm(range(epochs), desc="rotation pretraining", disable=not progress):
            for batch in torch.randperm(images.shape[0], generator=generator).split(batch_size):
                inputs, targets = rotated_batch(images[batch].to(device))
                optimizer.zero_grad()
                F.cross_entropy(model(inputs), targets).backward()
                optimizer.step()
    finally:
        head.reset_parameters()  # the task head starts afresh, seeded like the rotation head
        setattr(parent, name, head)
    return model
