"""torch_al: deep active learning for PyTorch."""

from torch_al import _meta_registrations  # noqa: F401  (fake kernels for torch.compile)
from torch_al.extension import cuda_version, has_ops
from torch_al.ops import (
    KCenterGreedy,
    ig_accumulate,
    kcenter_greedy,
    pfk_column_topk,
    pfk_topk,
    pool_features,
    pool_features_into,
    select_unique,
    select_unique_ranked,
)

__version__ = "0.1.0"

__all__ = [
    "KCenterGreedy",
    "cuda_version",
    "has_ops",
    "ig_accumulate",
    "kcenter_greedy",
    "pfk_column_topk",
    "pfk_topk",
    "pool_features",
    "pool_features_into",
    "select_unique",
    "select_unique_ranked",
]
