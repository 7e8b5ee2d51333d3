"""torch_al: deep active learning for PyTorch."""

from torch_al import _meta_registrations  # noqa: F401  (fake kernels for torch.compile)
from torch_al.extension import cuda_version, has_ops
from torch_al.ops import pool_features, pool_features_into

# Active-learning workflow (issue 6).
from torch_al.loop import ActiveLearningLoop
from torch_al.pool import ActivePool
from torch_al.sampler import ActiveSampler, DistributedActiveSampler, unlabeled_loader

__version__ = "0.1.0"

__all__ = ["cuda_version", "has_ops", "pool_features", "pool_features_into"]
__all__ += ["ActiveLearningLoop", "ActivePool", "ActiveSampler", "DistributedActiveSampler", "unlabeled_loader"]
