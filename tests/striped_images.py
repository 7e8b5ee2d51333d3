"""Tiny image pools for the generative strategies' tests (VAAL, M2-VAAL, BGADL): stripes of two
kinds, which a small VAE separates in a few dozen steps."""

import torch
from torch.utils.data import TensorDataset

from torch_al import ActivePool


def striped_images(count: int, vertical: bool, seed: int, size: int = 8) -> torch.Tensor:
    """Tensor[count, 1, size, size]: stripes along one axis (kind A: horizontal, kind B: vertical)
    of random phase and brightness, plus pixel noise."""
    generator = torch.Generator().manual_seed(seed)
    phase = torch.randint(0, 2, (count, 1, 1), generator=generator)
    stripes = ((torch.arange(size).view(1, size, 1) + phase) % 2).float().expand(count, size, size)
    stripes = stripes.transpose(1, 2) if vertical else stripes
    brightness = 0.5 + 0.5 * torch.rand(count, 1, 1, generator=generator)
    return (stripes * brightness + 0.1 * torch.randn(count, size, size, generator=generator)).unsqueeze(1)


def two_kind_pool(seed: int = 0) -> tuple[ActivePool, torch.Tensor]:
    """200 items of kind A then 100 of kind B; 40 of kind A labeled. Returns (pool, is_b)."""
    images = torch.cat([striped_images(200, False, seed), striped_images(100, True, seed + 1)])
    is_b = torch.arange(300) >= 200
    pool = ActivePool(TensorDataset(images, is_b.long()))
    pool.label(list(range(0, 200, 5)), [0] * 40)
    return pool, is_b


def labeled_both_kinds(seed: int = 0) -> tuple[ActivePool, torch.Tensor]:
    """The two-kind pool (200 horizontal stripes, 100 vertical) with kind A labeled 0 (40 items)
    and a few of kind B labeled 1 (5 items): kind B is under-represented. Returns (pool, is_b)."""
    pool, is_b = two_kind_pool(seed)
    pool.label(list(range(200, 300, 20)), [1] * 5)
    return pool, is_b
