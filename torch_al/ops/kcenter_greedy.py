"""k-center greedy (farthest-first) selection: the core-set strategy of Sener & Savarese."""

import torch
from torch import Tensor, nn

from torch_al.extension import assert_has_ops

METRICS = ("euclidean", "cosine")


def kcenter_greedy(
    x: Tensor,
    k: int,
    initial: Tensor | None = None,
    *,
    first: int | None = None,
    metric: str = "euclidean",
    exclude: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Picks k points of x farthest-first: the k-center greedy of the core-set approach.

    Implements the greedy k-center algorithm of Sener & Savarese, "Active Learning for
    Convolutional Neural Networks: A Core-Set Approach" (ICLR 2018): each pick is

        u = argmax_{i selectable} min_{j in centers} dist(x_i, x_j)

    and u then joins the centers. The centers start as the ``initial`` set (e.g. the labeled set);
    with an empty initial set the first pick is ``first`` (0 by default: no hidden randomness, pass
    a random index yourself to randomise it). Selectable points are those neither initial,
    excluded nor already picked. Ties go to the lower index, on CPU and CUDA alike; both backends
    return the same picks bit for bit (with an initial set of more than 16 points, the nearest
    initial center is found with a matrix product, whose rounding differs across devices only
    between initial centers at near-equal distance). Each pick is one pass over x (on the CPU at
    D <= 128 over a transposed copy of x in panels of 16 points, the same sums vectorised across points).

    Args:
        x (Tensor[N, D]): the points; float16, bfloat16, float32 or float64 (distances are
            accumulated in float32, or float64 for float64 x); any strides. Must be finite.
        k (int): the number of picks, ``0 <= k <=`` the number of selectable points.
        initial (Tensor[N] bool or Tensor[S] int64/int32, optional): points covered from the
            start: a mask, or indices in ``[0, N)`` (any order, repeats allowed).
        first (int, optional): the first pick when the initial set is empty (default 0); ignored
            otherwise, so one setting serves every round of an active-learning loop.
        metric (str): ``"euclidean"`` (plain L2 distance) or ``"cosine"`` (1 - cosine similarity;
            every row needs a nonzero norm).
        exclude (Tensor[N] bool, optional): points that may never be picked; they still get a
            distance in ``min_dist``.

    Returns:
        (indices, min_dist): ``indices`` (Tensor[k], int64) in pick order; ``min_dist``
        (Tensor[N], float32, or float64 for float64 x) the distance of every point to its nearest
        center after the last pick (the coverage radius is its max over the points that matter to
        you); ``inf`` everywhere when there are no centers (k = 0, no initial set).

    Raises:
        RuntimeError: on a bad shape, dtype, device or metric; NaN/inf in x (naming the first bad
            row); initial indices out of range; k larger than the number of selectable points
            (naming both); an excluded or out-of-range ``first``. These checks cost one host synchronisation.
    """
    assert_has_ops()
    return torch.ops.torch_al.kcenter_greedy(x, k, initial, first, metric, exclude)


class KCenterGreedy(nn.Module):
    """:func:`kcenter_greedy` with its hyper-parameters bound; scriptable.

    Args:
        k (int): the number of picks per call.
        metric (str): ``"euclidean"`` or ``"cosine"``.
        first (int, optional): the first pick when the initial set is empty (default 0).
    """

    def __init__(self, k: int, metric: str = "euclidean", first: int | None = None) -> None:
        super().__init__()
        if k < 0:
            raise ValueError(f"KCenterGreedy: k must be >= 0, got {k}")
        if metric not in METRICS:
            raise ValueError(f"KCenterGreedy: metric must be one of {METRICS}, got {metric!r}")
        self.k = k
        self.metric = metric
        self.first = first

    def forward(
        self, x: Tensor, initial: Tensor | None = None, exclude: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """x (Tensor[N, D]), initial and exclude as in :func:`kcenter_greedy` -> (indices[k], min_dist[N])."""
        return torch.ops.torch_al.kcenter_greedy(x, self.k, initial, self.first, self.metric, exclude)

    def extra_repr(self) -> str:
        return f"k={self.k}, metric={self.metric!r}, first={self.first}"
