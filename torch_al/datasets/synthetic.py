"""Small datasets that need no files: scikit-learn's digits and Gaussian blobs."""

import torch
import torch.nn.functional as F
from torch import Tensor


def load_digits(size: int = 28) -> tuple[Tensor, Tensor]:
    """scikit-learn's 1797 8×8 digits (bundled with it, no download), resized for LeNet.

    Returns:
        images float32 Tensor[1797, 1, size, size] in [0, 1], labels int64 Tensor[1797] in 0..9.
    """
    from sklearn.datasets import load_digits as sklearn_digits  # optional dependency

    digits = sklearn_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return images, torch.as_tensor(digits.target, dtype=torch.int64)


def make_blobs(n: int, num_classes: int = 10, dim: int = 16, spread: float = 1.0, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Gaussian blobs: class means drawn once from (seed), items = mean + spread · N(0, I).

    Returns:
        features float32 Tensor[n, dim], labels int64 Tensor[n] (balanced: class i % num_classes).
    """
    generator = torch.Generator().manual_seed(seed)
    means = 2 * torch.randn(num_classes, dim, generator=generator)
    labels = torch.arange(n) % num_classes
    features = means[labels] + spread * torch.randn(n, dim, generator=generator)
    return features, labels
