"""Datasets for experiments, read from local files (nothing is downloaded)."""

from torch_al.datasets.fashion_mnist import as_float_images, load_fashion_mnist
from torch_al.datasets.imbalance import balanced_split, imbalance
from torch_al.datasets.synthetic import load_digits, make_blobs

__all__ = ["as_float_images", "balanced_split", "imbalance", "load_digits", "load_fashion_mnist", "make_blobs"]
