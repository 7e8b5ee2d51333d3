"""Pooled feature / gradient descriptors: the mean of a layer output over its trailing dims."""

import torch
from torch import Tensor

from torch_al.extension import assert_has_ops


def pool_features(x: Tensor) -> Tensor:
    """Average-pools a layer output into a per-sample descriptor.

    This is the descriptor pooling φ of PFK (Gudovskiy et al., CVPR 2020) and EBA (ICLR-W 2019):
    a feature map z_i, or its gradient ∂L/∂z_i, becomes one value per channel.

    Args:
        x (Tensor[N, C, *spatial]): 0 to 3 trailing (spatial / temporal) dims; float16, bfloat16,
            float32 or float64; any strides (contiguous, channels_last, transposed, expanded).

    Returns:
        Tensor[N, C], same dtype as x: the mean over the trailing dims, accumulated in float32 for
        half inputs. Differentiable. NaN/inf in x propagate, as with ``torch.mean``.
    """
    assert_has_ops()
    return torch.ops.torch_al.pool_features(x)


def pool_features_into(x: Tensor, out: Tensor, rows: Tensor | None, column: int) -> None:
    """Pools x and writes the result into ``out[rows, column:column + C]`` in one pass.

    Lets a scoring loop fill a preallocated descriptor store with no intermediate tensors. The
    store is a sink: the written values carry no gradient, and ``out`` must not require grad.

    Args:
        x (Tensor[N, C, *spatial]): as in :func:`pool_features`.
        out (Tensor[P, L]): the store; same dtype and device as x; any strides.
        rows (Tensor[N], int64, or None): distinct rows of ``out`` in ``[0, P)``, one per sample
            of x. None: sample n goes to row n, and ``out`` must have exactly N rows (pass
            ``store.narrow(0, start, N)`` to fill a contiguous block of rows).
        column (int): first column written; ``column + C <= L``.

    Raises:
        RuntimeError: on any shape, dtype, device or range mismatch; ``out`` is then left
            unchanged. On CUDA the range check of ``rows`` costs one host synchronisation; a
            call without rows checks only shapes and never waits on the device.
    """
    assert_has_ops()
    torch.ops.torch_al.pool_features_into(x, out, rows, column)
