import os
import shutil
import sys

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


@pytest.mark.skipif(
    not (torch.backends.openmp.is_available() and sys.platform.startswith("linux")),
    reason="setup.py compiles with OpenMP where torch uses it, on Linux",
)
def test_kernels_can_share_work_over_threads():
    """at::parallel_for, a header template, runs its whole range on the calling thread unless the
    including code is compiled with OpenMP; every kernel that shares work over threads uses it."""
    from torch_al import _C

    with open(_C.__file__, "rb") as library:
        dynamic_symbols = library.read()
    assert b"GOMP_parallel" in dynamic_symbols, "torch_al._C was compiled without OpenMP"


def selection_calls():
    """Each selection op called on float64 inputs that require grad."""
    x = torch.randn(12, 3, dtype=torch.float64, requires_grad=True)
    ops = torch.ops.torch_al
    return {
        "pfk_topk": lambda: ops.pfk_topk([x[:4]], [x], [x[:4]], [x], None, 2),
        "pfk_column_topk": lambda: ops.pfk_column_topk([x[:4]], [x], [], [], None, 2),
        "select_unique_ranked": lambda: (ops.select_unique_ranked(x[:4, :2], torch.tensor([[0, 1], [1, 2], [2, 3], [3, 0]]), 2),),
        "kcenter_greedy": lambda: ops.kcenter_greedy(x, 3),
        "kmeanspp_factored": lambda: ops.kmeanspp_factored(x, x, torch.rand(3, dtype=torch.float64)),
        "facility_location_greedy": lambda: ops.facility_location_greedy(x[:5], x, 2),
    }


@pytest.mark.parametrize("name", list(selection_calls()))
def test_selection_outputs_are_not_differentiable(name, recwarn):
    """Picks and the scores that ranked them are constants to autograd: the ops' Autograd kernel
    runs them below autograd, so nothing requires grad and no fallback warns."""
    outputs = selection_calls()[name]()
    assert not any(output.requires_grad for output in outputs)
    assert not [warning for warning in recwarn if "autograd" in str(warning.message).lower()]
