"""Fashion-MNIST from the IDX files of Debian's `dataset-fashion-mnist` package (no download)."""

import gzip
import os
from typing import Literal

import numpy as np
import torch
from torch import Tensor

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IDX_DTYPE = {0x08: np.uint8}


def read_idx(path: str) -> np.ndarray:
    """Reads an IDX file (optionally gzipped): magic 0x0000 | dtype | ndim, big-endian dims, data."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPE:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    payload = np.frombuffer(data, dtype=_IDX_DTYPE[data[2]], offset=4 + 4 * ndim)
    if payload.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {payload.size}")
    return payload.reshape(tuple(dims))


def load_fashion_mnist(split: Literal["train", "test"] = "train", root: str | None = None) -> tuple[Tensor, Tensor]:
    """Loads a Fashion-MNIST split.

    Args:
        split: "train" (60k images) or "test" (10k).
        root: folder with the four IDX files; default ``$TORCH_AL_FASHION_MNIST`` or the Debian
            package's ``/usr/share/datasets/fashion-mnist``.

    Returns:
        images uint8 Tensor[N, 28, 28], labels int64 Tensor[N] in 0..9.
    """
    if split not in _FILES:
        raise ValueError(f"split must be one of {list(_FILES)}, got {split!r}")
    root = root or os.environ.get("TORCH_AL_FASHION_MNIST", DEFAULT_ROOT)
    paths = [os.path.join(root, name) for name in _FILES[split]]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST files not found: {missing}. Install Debian's package "
            "`dataset-fashion-mnist` (apt-get install dataset-fashion-mnist) or set TORCH_AL_FASHION_MNIST."
        )
    images, labels = (read_idx(p) for p in paths)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{paths[0]} has {images.shape[0]} images but {paths[1]} has {labels.shape[0]} labels")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def as_float_images(images: Tensor) -> Tensor:
    """uint8 Tensor[N, 28, 28] → float32 Tensor[N, 1, 28, 28] in [0, 1]."""
    return images.unsqueeze(1).float().div_(255)
