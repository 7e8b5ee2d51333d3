"""ProbCover's greedy coverage of δ-balls (Yehuda et al., NeurIPS 2022), streamed and exact."""

from typing import Optional

import torch
from torch import Tensor

from torch_al.extension import assert_has_ops


def coverage_greedy(
    points: Tensor,
    radius: float,
    count: int,
    initial: Optional[Tensor] = None,
    exclude: Optional[Tensor] = None,
) -> tuple[Tensor, Tensor]:
    """Picks ``count`` rows of ``points``, each the one whose ball holds the most uncovered points.

    The greedy of ProbCover (Yehuda et al., "Active Learning Through a Covering Lens", NeurIPS
    2022): the ball of a row x is every row x' with ||x - x'|| <= radius (Euclidean; pass
    L2-normalised rows for cosine geometry). Each pick is the selectable row whose ball holds the
    most points not yet covered, ties to the lower row; then every point of its ball is covered.
    Rows of ``initial`` (the labeled set) start with their balls covered and are never picked; rows
    of ``exclude`` are never picked but still count as points to cover. Once every ball is empty of
    uncovered points the picks go on with gain 0 in row order (the paper then picks at random:
    :class:`torch_al.strategies.ProbCover` does).

    Exactly the dense greedy's picks: a pair is inside a ball when its float64 square distance,
    summed in increasing dimension, is <= radius ** 2; block products of at most 512 x 4096 rows
    only screen the pairs, and those whose screen is within its rounding bound of radius ** 2 are
    recomputed exactly. Each row's degree (the uncovered points in its ball) is counted in one
    streamed pass; a pick covering P new points lowers the degrees by one pass of those P rows, so
    the whole greedy costs about two N x N x D products, never an N x N matrix or an edge list.
    Extra memory is O(N) plus the blocks. On CUDA each pick costs host syncs.

    Args:
        points (Tensor[N, D]): float32 or float64, finite.
        radius (float): δ, finite and >= 0.
        count (int): picks P, at most the rows neither initial nor excluded.
        initial (Tensor, optional): a bool mask of N or int64 row indices, on points' device.
        exclude (Tensor[N] bool, optional): rows never picked.

    Returns:
        (picks, gains): ``picks`` (Tensor[P] int64) rows in pick order; ``gains`` (Tensor[P]
        int64) the points each pick newly covered, non-increasing.

    Raises:
        RuntimeError: a bad shape, dtype or device, a radius or count out of range, NaN/inf in
            points, initial indices out of [0, N) (each naming what was given and expected).

    Example:
        >>> import torch, torch_al
        >>> points = torch.tensor([[0.0], [0.5], [1.0], [5.0]])
        >>> torch_al.coverage_greedy(points, radius=0.6, count=2)
        (tensor([1, 3]), tensor([3, 1]))
    """
    if not torch.jit.is_scripting():
        assert_has_ops()
    return torch.ops.torch_al.coverage_greedy(points, radius, count, initial, exclude)
