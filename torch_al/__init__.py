"""torch_al: deep active learning for PyTorch."""

from torch_al import _meta_registrations  # noqa: F401  (fake kernels for torch.compile)
from torch_al.extension import cuda_version, has_ops
from torch_al.ops import KCenterGreedy, kcenter_greedy, pool_features, pool_features_into

__version__ = "0.1.0"

__all__ = ["KCenterGreedy", "cuda_version", "has_ops", "kcenter_greedy", "pool_features", "pool_features_into"]
