import gzip
import struct

import pytest
import torch

from torch_al.datasets import as_float_images, load_fashion_mnist
from torch_al.datasets.fashion_mnist import read_idx


def write_idx(path, array_bytes: bytes, dims: list[int]) -> None:
    header = bytes([0, 0, 0x08, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
    with gzip.open(path, "wb") as f:
        f.write(header + array_bytes)


def test_reads_a_small_idx_file_and_rejects_truncated_ones(tmp_path):
    write_idx(tmp_path / "ok.gz", bytes(range(6)), [2, 3])
    assert read_idx(str(tmp_path / "ok.gz")).tolist() == [[0, 1, 2], [3, 4, 5]]
    write_idx(tmp_path / "short.gz", bytes(range(5)), [2, 3])
    with pytest.raises(ValueError, match="truncated: expected 6 values, found 5"):
        read_idx(str(tmp_path / "short.gz"))


def test_missing_files_name_the_debian_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        load_fashion_mnist("test", root=str(tmp_path))


def test_loads_the_real_test_split():
    images, labels = load_fashion_mnist("test")
    assert images.shape == (10000, 28, 28) and images.dtype == torch.uint8
    assert labels.bincount().tolist() == [1000] * 10
    floats = as_float_images(images[:3])
    assert floats.shape == (3, 1, 28, 28) and 0 <= floats.min() and floats.max() <= 1
