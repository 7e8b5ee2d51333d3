"""Typed Python front of the torch.ops.torch_al.* ops."""

from torch_al.ops.class_line_order import class_line_order
from torch_al.ops.coverage_greedy import coverage_greedy
from torch_al.ops.facility_location_greedy import FacilityLocationGreedy, facility_location_greedy
from torch_al.ops.ig_accumulate import ig_accumulate
from torch_al.ops.kcenter_greedy import KCenterGreedy, kcenter_greedy
from torch_al.ops.kcenter_greedy_step import kcenter_greedy_step
from torch_al.ops.kmeanspp_factored import kmeanspp_factored
from torch_al.ops.nearest_neighbours import nearest_neighbours
from torch_al.ops.pfk_column_topk import pfk_column_topk
from torch_al.ops.pfk_topk import pfk_topk
from torch_al.ops.pool_features import pool_features, pool_features_into
from torch_al.ops.select_unique import select_unique, select_unique_ranked

__all__ = [
    "FacilityLocationGreedy",
    "KCenterGreedy",
    "class_line_order",
    "coverage_greedy",
    "facility_location_greedy",
    "ig_accumulate",
    "kcenter_greedy",
    "kcenter_greedy_step",
    "kmeanspp_factored",
    "nearest_neighbours",
    "pfk_column_topk",
    "pfk_topk",
    "pool_features",
    "pool_features_into",
    "select_unique",
    "select_unique_ranked",
]
