"""Class lines: the pool ordered from most to least like one class (GALAXY, DIRECT)."""

import torch
from torch import Tensor

from torch_al.extension import assert_has_ops


def class_line_order(probabilities: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Class ``k``'s line: the rows of ``probabilities`` from most to least k-like. In pure torch::

        p = probabilities.double()
        top = p.max(1, keepdim=True).values
        keys = torch.where(p == top, 1 + p, p - top)[:, k]   # a predicted k by confidence, the rest by margin
        order = torch.sort(keys, descending=True, stable=True).indices
        position = torch.empty_like(order).scatter_(0, order, torch.arange(len(order)))

    but sorted as integers (a radix sort of the keys' bits on the CPU), with the same order, ties
    to the lower row.

    Args:
        probabilities (Tensor[N, C]): float32 or float64 class probabilities (any finite scores
            work: only their order within a row and the key arithmetic matter), read as float64.
        k (int): the class, in ``[0, C)``.

    Returns:
        (order, position): int64 Tensor[N] each on the input's device; ``order[i]`` is the row at
        place i (place 0 the most k-like), ``position[row]`` the row's place.

    Example::

        >>> p = torch.tensor([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]])
        >>> torch_al.class_line_order(p, 0)[0].tolist()  # predicted 0 by confidence, then the other by margin
        [0, 2, 1]
    """
    assert_has_ops()
    return torch.ops.torch_al.class_line_order(probabilities, k)
