"""Typed Python front of the torch.ops.torch_al.* ops."""

from torch_al.ops.pool_features import pool_features, pool_features_into
from torch_al.ops.ig_accumulate import ig_accumulate

__all__ = ["pool_features", "pool_features_into"]
__all__ += ["ig_accumulate"]
