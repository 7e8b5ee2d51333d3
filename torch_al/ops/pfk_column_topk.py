"""Column-wise reduction of the PFK kernel: each pool point's best match over the query rows."""

from typing import List, Optional, Tuple

import torch
from torch import Tensor

from torch_al.extension import assert_has_ops
from torch_al.ops.pfk_topk import descriptor_list


def pfk_column_topk(
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
    """The k pool points whose best kernel value over the query rows is largest.

    Scores every allowed pool point n by s_n = max_m R[m, n], with R as in :func:`pfk_topk`
    (Gudovskiy et al., CVPR 2020), and returns the k best points; streamed like ``pfk_topk``, so
    R is never materialised beyond a tile. On CPU neither are the N scores; on CUDA they are
    (one (N,) vector, then one stable sort, no host synchronisation).

    Args:
        query_z, pool_z, query_g, pool_g, pool_mask, combine, precision, check_finite: as in :func:`pfk_topk`
            (``"fast"`` screens the column maxima, then recomputes the kept columns' maxima
            exactly over every query row).
        k (int): number of pool points, >= 0.

    Returns:
        (values, indices): Tensor[k] of the descriptors' dtype and Tensor[k] int64, best first,
        ties broken by the lower pool index, padded with (-inf, -1) where fewer than k points are
        allowed. With M = 0 every score is -inf and the lowest allowed indices come first.

    Raises:
        RuntimeError: as :func:`pfk_topk`.
    """
    if not torch.jit.is_scripting():
        assert_has_ops()
    return torch.ops.torch_al.pfk_column_topk(
        query_z, pool_z, descriptor_list(query_g), descriptor_list(pool_g), pool_mask, k, combine, precision, check_finite
    )
