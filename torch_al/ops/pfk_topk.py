"""Masked streaming kernel-argmax: PFK / PCC / EBA matching of query rows against a pool."""

from typing import List, Optional, Tuple

import torch
from torch import Tensor

from torch_al.extension import assert_has_ops


def pfk_topk(
    query_z: List[Tensor],
    pool_z: List[Tensor],
    query_g: Optional[List[Tensor]] = None,
    pool_g: Optional[List[Tensor]] = None,
    pool_mask: Optional[Tensor] = None,
    k: int = 1,
    combine: str = "product",
    precision: str = "exact",
    check_finite: bool = True,
) -> Tuple[Tensor, Tensor]:
    """Per query row, the k pool points with the largest kernel value, never building the M x N matrix.

    With a_j = query_z[j][m] · pool_z[j][n] and b_j = query_g[j][m] · pool_g[j][n], the kernel R[m, n] is
    ``"product"`` (Σ_j a_j)(Σ_j b_j), PFK as eq. 12 of Gudovskiy et al. (CVPR 2020) writes it;
    ``"fisher"`` Σ_j a_j b_j, the Fisher kernel summed over layers (eq. 11); ``"sum"`` Σ_j (a_j + b_j),
    what the authors' released code computes. Without gradients it is PCC, Σ_j a_j. EBA (ICLR-W 2019)
    is the single-scale product with the concatenated descriptor as z and the attention as g.

    The pool is streamed in tiles: matrix products (BLAS / cuBLAS) per tile, then a fused epilogue
    applies the combine and the mask and merges into a running per-row top-k. Extra memory is
    O(M · (k + tile)), independent of N.

    Args:
        query_z (list of Tensor[M, C_j]): J >= 1 scales of query (validation) descriptors.
        pool_z (list of Tensor[N, C_j]): the pool descriptors, same scales.
        query_g (list of Tensor[M, C'_j], optional): gradient descriptors; with ``pool_g`` either
            both omitted (PCC) or both of J scales.
        pool_g (list of Tensor[N, C'_j], optional): the pool's gradient descriptors.
        pool_mask (Tensor[N], bool, optional): True marks a column that may not be chosen
            (labeled or already selected).
        k (int): entries per row, >= 0; may exceed the number of allowed columns.
        combine (str): ``"product"`` (default), ``"fisher"`` or ``"sum"``.
        precision (str): ``"exact"`` (default): every product in the descriptors' dtype.
            ``"fast"``: float32 descriptors on CUDA are screened with bfloat16 tensor-core
            products (float32 accumulation) for the best k' = k + max(k, 16) columns per row,
            whose values are then recomputed exactly and ranked again (ties to the lower index).
            The result is exact whenever the exact top-k lies among the k' screened, e.g. when
            the k-th best value leads the (k' + 1)-th by more than twice bfloat16's error of
            a product; values are exact float32 products, not necessarily bit-equal to
            ``"exact"``'s (another summation order). Elsewhere (CPU, float64) the screen is
            exact and the result equals ``"exact"``'s.
        check_finite (bool): True (default): a NaN or inf in a descriptor is an error naming it,
            which costs one pass over the inputs and, on CUDA, the call's one host
            synchronisation. False: no check and no synchronisation (the call then queues on the
            stream, and can be captured in a CUDA graph), for descriptors the caller has already
            validated; a NaN or inf then decides picks silently.

    All descriptors share one dtype (float32 or float64) and one device.

    Returns:
        (values, indices): Tensor[M, k] of the descriptors' dtype and Tensor[M, k] int64, best
        first, ties broken by the lower pool index, padded with (-inf, -1) where fewer than k
        columns are allowed. An allowed column whose value is -inf is still returned.

    Raises:
        RuntimeError: on a bad shape, dtype, device, k, mask or combine (the message names the
            argument), or, with ``check_finite``, when a descriptor contains NaN or inf.
    """
    if not torch.jit.is_scripting():
        assert_has_ops()
    return torch.ops.torch_al.pfk_topk(
        query_z, pool_z, descriptor_list(query_g), descriptor_list(pool_g), pool_mask, k, combine, precision, check_finite
    )


def descriptor_list(descriptors: Optional[List[Tensor]]) -> List[Tensor]:
    """The schema's form of optional descriptors: an omitted list is an empty one."""
    return descriptors if descriptors is not None else []
