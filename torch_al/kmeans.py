"""k-means on torch_al's streamed ops: the clustering TypiClust and ProbCover's purity rule need.

Seeding is k-means++ (``kmeanspp_factored`` with a unit first factor, so e_i = x_i; the first
center drawn uniformly, as scikit-learn's), then Lloyd's iterations whose assignment step is one
matrix product per block of points (‖c‖² − 2 x·c, the form scikit-learn uses too), so memory
stays O((N + K) D) at any N. Seeded: the same (points, clusters, seed) give the same clusters.
"""

from typing import NamedTuple

import torch
from torch import Tensor

from torch_al.checks import check_int
from torch_al.ops.kmeanspp_factored import kmeanspp_factored


class Clusters(NamedTuple):
    """``labels`` int64 Tensor[N] (a cluster per point), ``centers`` Tensor[K, D], ``inertia`` the
    sum of squared distances at the last assignment (float), ``iterations`` run."""

    labels: Tensor
    centers: Tensor
    inertia: float
    iterations: int


def kmeans(points: Tensor, clusters: int, seed: int = 0, max_iterations: int = 100) -> Clusters:
    """Partitions ``points`` (Tensor[N, D], float32/float64, finite) into ``clusters`` groups by
    k-means++ seeding and Lloyd's iterations, until no point changes cluster, the centers move by
    at most 1e-4 of the points' mean variance in all (squared; scikit-learn's default ``tol``), or
    ``max_iterations``.
    A cluster that empties keeps its center (it can win points back). Runs on points' device.

    Example:
        >>> import torch
        >>> from torch_al.kmeans import kmeans
        >>> points = torch.tensor([[0.0], [0.1], [5.0], [5.2]])
        >>> kmeans(points, 2).labels.tolist() in ([0, 0, 1, 1], [1, 1, 0, 0])
        True
    """
    if not isinstance(points, Tensor) or points.dim() != 2 or not points.dtype.is_floating_point:
        raise ValueError(f"kmeans: points must be a floating Tensor[N, D], got {type(points).__name__} {getattr(points, 'shape', '')}")
    n = points.shape[0]
    check_int(clusters, "kmeans: clusters", 1)
    check_int(max_iterations, "kmeans: max_iterations", 1)
    if clusters > n:
        raise ValueError(f"kmeans: clusters must be <= the number of points N={n}, got {clusters}")
    generator = torch.Generator().manual_seed(seed)
    first = torch.randint(n, (1,), generator=generator).to(points.device)
    rest, _ = kmeanspp_factored(points.new_ones(n, 1), points, clusters - 1, first, generator=generator)
    centers = points[torch.cat([first, rest])].clone()
    labels = torch.full((n,), -1, dtype=torch.int64, device=points.device)
    tolerance = 1e-4 * float(points.var(0, correction=0).mean()) if n > 1 else 0.0
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        distances, nearest = nearest_centers(points, centers)
        if torch.equal(nearest, labels):
            break
        labels = nearest
        counts = torch.bincount(labels, minlength=clusters)
        sums = torch.zeros_like(centers).index_add_(0, labels, points)
        filled = counts > 0
        moved = centers.clone()
        centers[filled] = sums[filled] / counts[filled].unsqueeze(1).to(points.dtype)
        if float((centers - moved).square().sum()) <= tolerance:
            distances, labels = nearest_centers(points, centers)
            break
    return Clusters(labels, centers, float(distances.sum()), iterations)


# Points per block of the assignment: its (block, K) products stay near 2^22 elements.
_BLOCK_ELEMENTS = 1 << 22


def nearest_centers(points: Tensor, centers: Tensor) -> tuple[Tensor, Tensor]:
    """Each point's squared distance to its nearest center (clamped at 0) and that center's index
    (the first of equals as the product rounds them)."""
    center_norms = centers.square().sum(1)
    block = max(1, _BLOCK_ELEMENTS // max(1, centers.shape[0]))
    distances, nearest = [], []
    for rows in points.split(block):
        products = torch.addmm(center_norms.unsqueeze(0), rows, centers.T, alpha=-2)
        best, index = products.min(1)
        distances.append(best.add_(rows.square().sum(1)).clamp_min_(0))
        nearest.append(index)
    return torch.cat(distances), torch.cat(nearest)
