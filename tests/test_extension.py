import os
import shutil

import pytest
import torch

import torch_al


def test_library_loads_and_registers_the_ops():
    assert torch_al.has_ops()
    for name in ("pool_features", "pool_features_into", "_pool_features_backward", "kcenter_greedy", "cuda_version"):
        assert hasattr(torch.ops.torch_al, name)


@pytest.mark.skipif(
    os.environ.get("TORCH_AL_EXPECT_CUDA_BUILD") != "1" and shutil.which("nvcc") is None,
    reason="no nvcc: a CPU-only build is expected",
)
def test_cuda_kernels_were_compiled():
    """CI compiles and links the CUDA kernels even without a GPU; this proves they are in the library."""
    assert torch_al.cuda_version() >= 11000
    assert torch_al.cuda_version() // 1000 == int(torch.version.cuda.split(".")[0])
    assert torch._C._dispatch_has_kernel_for_dispatch_key("torch_al::pool_features", "CUDA")
