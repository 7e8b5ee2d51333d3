"""torch_al: deep active learning for PyTorch."""

from torch_al import _meta_registrations  # noqa: F401  (fake kernels for torch.compile)
from torch_al.extension import cuda_version, has_ops
from torch_al.ops import pool_features, pool_features_into
from torch_al.ops import ig_accumulate

__version__ = "0.1.0"

__all__ = ["cuda_version", "has_ops", "pool_features", "pool_features_into"]
__all__ += ["ig_accumulate"]
