"""Typed Python front of the torch.ops.torch_al.* ops."""

from torch_al.ops.kcenter_greedy import KCenterGreedy, kcenter_greedy
from torch_al.ops.pool_features import pool_features, pool_features_into

__all__ = ["KCenterGreedy", "kcenter_greedy", "pool_features", "pool_features_into"]
