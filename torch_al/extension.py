"""Loads the compiled library torch_al._C, which registers the torch.ops.torch_al.* ops."""

import torch

_LOAD_ERROR: Exception | None = None
try:
    from torch_al import _C  # noqa: F401  (importing runs the op registrations)
except ImportError as error:  # keep `import torch_al` working so the error can be reported clearly
    _LOAD_ERROR = error


def has_ops() -> bool:
    """Whether the compiled ops were loaded."""
    return _LOAD_ERROR is None


def assert_has_ops() -> None:
    """Raises an actionable error when the compiled library could not be loaded."""
    if _LOAD_ERROR is not None:
        raise RuntimeError(
            f"torch_al's compiled ops failed to load ({_LOAD_ERROR}). The extension must be built "
            f"against the installed torch ({torch.__version__}): reinstall with "
            "`pip install --no-build-isolation .` in the environment that runs it."
        ) from _LOAD_ERROR


def cuda_version() -> int:
    """CUDA runtime version the ops were built with (e.g. 13000), or -1 for a CPU-only build."""
    assert_has_ops()
    return torch.ops.torch_al.cuda_version()


def check_cuda_match() -> None:
    """Raises when CUDA kernels were built for a different CUDA major version than torch uses."""
    built = cuda_version()
    if built == -1 or torch.version.cuda is None:
        return
    built_major = built // 1000
    torch_major = int(torch.version.cuda.split(".")[0])
    if built_major != torch_major:
        raise RuntimeError(
            f"torch_al was built with CUDA {built_major}.x but torch uses CUDA {torch.version.cuda}; "
            "rebuild torch_al against this torch."
        )


if has_ops():
    # Kernels built for another CUDA major version than torch's fail later and obscurely: fail now.
    check_cuda_match()
