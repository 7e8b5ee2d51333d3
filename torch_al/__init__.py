"""torch_al: deep active learning for PyTorch."""

from torch_al import _meta_registrations  # noqa: F401  (fake kernels for torch.compile)
from torch_al._version import __version__
from torch_al.extension import cuda_version, has_ops
from torch_al.generated_items_pool import GeneratedItemsPool
from torch_al.loop import ActiveLearningLoop
from torch_al.ops import (
    FacilityLocationGreedy,
    KCenterGreedy,
    class_line_order,
    coverage_greedy,
    facility_location_greedy,
    ig_accumulate,
    kcenter_greedy,
    kcenter_greedy_step,
    kmeanspp_factored,
    nearest_neighbours,
    pfk_column_topk,
    pfk_topk,
    pool_features,
    pool_features_into,
    select_unique,
    select_unique_ranked,
)
from torch_al.pool import ActivePool
from torch_al.pseudo_labeled_pool import PseudoLabeledPool, PseudoLabelSet
from torch_al.sampler import ActiveSampler, DistributedActiveSampler, unlabeled_loader

__all__ = [
    "__version__",
    "ActiveLearningLoop",
    "ActivePool",
    "ActiveSampler",
    "DistributedActiveSampler",
    "GeneratedItemsPool",
    "PseudoLabelSet",
    "PseudoLabeledPool",
    "FacilityLocationGreedy",
    "KCenterGreedy",
    "class_line_order",
    "coverage_greedy",
    "cuda_version",
    "facility_location_greedy",
    "has_ops",
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
    "unlabeled_loader",
]
