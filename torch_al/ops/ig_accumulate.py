"""Integrated-gradient accumulation: the pooled path average of layer gradients, chunk by chunk."""

import torch
from torch import Tensor

from torch_al.extension import assert_has_ops


def ig_accumulate(grad: Tensor, steps: int, acc: Tensor) -> None:
    """Adds one chunk of path steps to the integrated-gradient attention of a batch, in place.

    The explanation-based attention of EBA (Gudovskiy et al., ICLR-W 2019) is
    a_i = φ((1/K) Σ_{k=1..K} ∂L(f(k·X_i/K), ŷ_i)/∂F_i), with φ the mean over the spatial dims.
    Called once per chunk of S ≤ K steps, this computes, in one pass over ``grad``::

        acc += grad.mean(dim=spatial).sum(dim=0) / steps

    so after all K steps ``acc`` holds the attention, already scaled by 1/K: the op divides by
    ``steps``, and callers pass the total K (not S) with every chunk.

    Args:
        grad (Tensor[S, B, C, *spatial]): gradients w.r.t. a layer output at S path steps of a
            batch of B; 0 to 3 spatial dims; float16, bfloat16, float32 or float64; any strides.
        steps (int): K, the total number of path steps; positive.
        acc (Tensor[B, C]): the running attention, float32 (float64 for float64 ``grad``) so the
            sum over all K steps does not lose precision with half gradients; any strides (e.g.
            a column slice of an (N, L) store), no elements shared with each other or ``grad``;
            must not require grad.

    Raises:
        ValueError: ``steps`` ≤ 0, or ``grad`` / ``acc`` of the wrong rank or shape.
        TypeError: ``grad`` not floating, or ``acc`` not of its accumulation dtype.
        RuntimeError: different devices, overlapping memory, or ``acc`` requiring grad. In every
            case ``acc`` is left unchanged.

    The sum is deterministic (no atomics) on CPU and CUDA. NaN/inf propagate; an empty spatial
    extent adds NaN, as ``torch.mean`` would.
    """
    assert_has_ops()
    torch.ops.torch_al.ig_accumulate(grad, steps, acc)
