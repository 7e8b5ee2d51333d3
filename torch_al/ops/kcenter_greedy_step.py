"""One farthest-first step of k-center greedy against explicit center rows."""

import torch
from torch import Tensor

from torch_al.extension import assert_has_ops


def kcenter_greedy_step(
    x: Tensor, centers: Tensor, min_sq: Tensor, selectable: Tensor, metric: str = "euclidean"
) -> tuple[Tensor, Tensor]:
    """Lowers every point's running min squared distance with new centers, in place, and returns
    the farthest selectable point: the step :func:`torch_al.kcenter_greedy` repeats, for callers
    whose centers are not rows of ``x`` (the k-center greedy of :mod:`torch_al.distributed`, where
    each pick's row is broadcast from the process that holds it). In pure torch::

        min_sq.copy_(torch.minimum(min_sq, torch.cdist(x, centers).square().min(1).values))
        best = torch.where(selectable, min_sq, -1).max(0)   # ties to the lower index

    but with ``kcenter_greedy``'s summation order, so the distances, and hence the picks of a
    loop of steps, are bit for bit those of ``kcenter_greedy`` on the same rows (up to 16 centers
    are applied one pass each; more go through the same nearest-center matrix product). No host
    synchronisation: nothing is checked that needs the data. A point whose distance is NaN (NaN in
    ``x`` or ``centers``, a zero row under ``"cosine"``) keeps ``min_sq`` NaN and is never
    returned, while an inf coordinate makes its point the farthest: check finiteness once, before
    a loop of steps.

    Args:
        x (Tensor[N, D]): the points; float16, bfloat16, float32 or float64.
        centers (Tensor[S, D]): S >= 1 center rows, x's dtype and device.
        min_sq (Tensor[N]): each point's squared distance to its nearest center so far (``inf``
            before any); float32, float64 for float64 x; contiguous. Updated in place.
        selectable (Tensor[N] bool): the points that may be returned.
        metric (str): ``"euclidean"``, or ``"cosine"`` (rows scaled to unit norm first; then
            ``1 - cos = min_sq / 2``; x's norms are recomputed on every call).

    Returns:
        (value, index): 0-dim tensors on x's device, the farthest selectable point's ``min_sq``
        (min_sq's dtype) and its row (int64); (-1, -1) when no point is selectable.
    """
    assert_has_ops()
    return torch.ops.torch_al.kcenter_greedy_step(x, centers, min_sq, selectable, metric)
