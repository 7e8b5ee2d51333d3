import os
import shutil

import pytest
import torch

import torch_al


def test_library_loads_and_registers_the_ops():
    assert torch_al.has_ops()
    for name in (
        "pool_features",
        "pool_features_into",
        "_pool_features_backward",
        "cuda_version",
        "pfk_topk",
        "pfk_column_topk",
        "select_unique_ranked",
        "ig_accumulate",
        "kcenter_greedy",
        "kmeanspp_factored",
        "facility_location_greedy",
    ):
        assert hasattr(torch.ops.torch_al, name)


OPS_WITH_CUDA_KERNELS = (
    "pool_features", "pool_features_into", "pfk_topk", "pfk_column_topk", "ig_accumulate", "kcenter_greedy", "kmeanspp_factored",
    "facility_location_greedy",
)  # fmt: skip


@pytest.mark.skipif(
    os.environ.get("TORCH_AL_EXPECT_CUDA_BUILD") != "1" and shutil.which("nvcc") is None,
    reason="no nvcc: a CPU-only build is expected",
)
@pytest.mark.parametrize("op", OPS_WITH_CUDA_KERNELS)
def test_cuda_kernels_were_compiled(op):
    """CI compiles and links the CUDA kernels even without a GPU; this proves they are in the library."""
    assert torch_al.cuda_version() >= 11000
    assert torch_al.cuda_version() // 1000 == int(torch.version.cuda.split(".")[0])
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"torch_al::{op}", "CUDA")
