"""Datasets for experiments, read from local files (nothing is downloaded)."""

from torch_al.datasets.fashion_mnist import as_float_images, load_fashion_mnist

__all__ = ["as_float_images", "load_fashion_mnist"]
