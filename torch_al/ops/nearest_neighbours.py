"""Streamed k-nearest-neighbour search of query rows in a pool."""

from typing import Optional, Tuple

import torch
from torch import Tensor

from torch_al.extension import assert_has_ops


def nearest_neighbours(
    query: Tensor,
    pool: Tensor,
    k: int,
    pool_mask: Optional[Tensor] = None,
    query_index: Optional[Tensor] = None,
    metric: str = "sqeuclidean",
    check_finite: bool = True,
) -> Tuple[Tensor, Tensor]:
    """Per query row, the k nearest pool rows, never building the M x N distance matrix.

    The pool is streamed through :func:`torch_al.pfk_topk`'s engine (oneDNN's small-GEMM blocks on
    an AVX-512 CPU, BLAS tiles elsewhere, cuBLAS on CUDA): ``"sqeuclidean"`` ranks by
    ⟨[q, 1], [p, −‖p‖²/2]⟩, ``"cosine"`` by q·p/‖p‖. Those products lose bits to cancellation,
    so each row keeps k + max(k, 16) candidates, recomputes their distances exactly from the
    difference (or the normalised product) and ranks them again, nearest first, ties to the lower
    pool index. The result equals a dense ``torch.cdist`` + sort whenever the true k nearest lie
    among the candidates, i.e. unless more than max(k, 16) rows tie with the k-th within the
    products' rounding error. Extra memory is O(M · (k + tile)), plus an (N, 1) column of norms.

    Example::

        >>> x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
        >>> distances, indices = torch_al.nearest_neighbours(x, x, k=2, query_index=torch.arange(4))
        >>> indices
        tensor([[1, 2],
                [0, 2],
                [0, 1],
                [2, 1]])
        >>> distances[0]
        tensor([1., 4.])

    Args:
        query (Tensor[M, D]): float32 or float64.
        pool (Tensor[N, D]): query's dtype and device; read in place (any strides).
        k (int): neighbours per row, >= 0; may exceed the rows allowed (then padded).
        pool_mask (Tensor[N] bool, optional): True excludes a pool row.
        query_index (Tensor[M] int64, optional): the pool row each query row is, or -1; that row
            is not the query row's neighbour (kNN of a pool within itself:
            ``nearest_neighbours(x, x, k, query_index=torch.arange(len(x)))``).
        metric (str): ``"sqeuclidean"`` (default), ‖q − p‖²; or ``"cosine"``, 1 − q·p / (‖q‖‖p‖)
            with norms floored at 1e-8 (a zero row is at distance 1 from everything).
        check_finite (bool): True (default): NaN or inf in the points, or a query index outside
            [-1, N), is an error (one pass over the inputs and, on CUDA, one host
            synchronisation). False: no data check and no synchronisation.

    Returns:
        (distances, indices): Tensor[M, k] of the points' dtype and Tensor[M, k] int64, nearest
        first, padded with (inf, -1) where fewer than k rows are allowed.

    Raises:
        RuntimeError: on a bad shape, dtype, device, mask, query index, k or metric (the message
            names the argument), or, with ``check_finite``, non-finite points.
    """
    if not torch.jit.is_scripting():
        assert_has_ops()
    return torch.ops.torch_al.nearest_neighbours(query, pool, k, pool_mask, query_index, metric, check_finite)
