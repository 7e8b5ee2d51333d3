"""Selection of distinct pool points from the PFK matching: rank-by-rank fill or column maxima."""

from typing import List, Optional

import torch
from torch import Tensor

from torch_al.extension import assert_has_ops


def select_unique_ranked(values: Tensor, indices: Tensor, count: int) -> Tensor:
    """Fills up to ``count`` distinct pool indices rank by rank from per-row top-k lists.

    Every row's best entry first, rows ordered by value (descending, ties to the lower pool
    index), then every row's second-best, and so on, skipping indices already taken and empty
    slots (index < 0): the batch fill of PFK (Gudovskiy et al., CVPR 2020, and the authors' code).

    Args:
        values (Tensor[M, k], floating): per-row values, as returned by :func:`pfk_topk`.
        indices (Tensor[M, k], int64): the matching pool indices.
        count (int): number of indices wanted, >= 0.

    Returns:
        Tensor[count], int64: the distinct indices in fill order, padded with -1 when the lists
        hold fewer. No host synchronisation.
    """
    if not torch.jit.is_scripting():
        assert_has_ops()
    return torch.ops.torch_al.select_unique_ranked(values, indices, count)


def select_unique(
    query_z: List[Tensor],
    pool_z: List[Tensor],
    budget: int,
    query_g: Optional[List[Tensor]] = None,
    pool_g: Optional[List[Tensor]] = None,
    pool_mask: Optional[Tensor] = None,
    k: int = 32,
    combine: str = "product",
    rule: str = "rank",
    precision: str = "exact",
    check_finite: bool = True,
) -> Tensor:
    """Selects ``budget`` distinct unmasked pool points that best match the query rows.

    ``rule="rank"`` is PFK's batch fill (Gudovskiy et al., CVPR 2020, Algorithm 1 and the authors'
    code): each query row's top-k pool points under :func:`pfk_topk`, filled rank by rank with
    :func:`select_unique_ranked`. Where the authors' code fails because the k candidates per row
    run out before ``budget`` distinct points are found, this re-queries with the taken points
    masked and goes on filling, so it succeeds whenever enough points are unmasked.
    ``rule="column"`` scores each pool point by its best match over the query rows and takes the
    ``budget`` best (:func:`pfk_column_topk`).

    Args:
        query_z, pool_z, query_g, pool_g, pool_mask, combine, precision, check_finite: as in
            :func:`pfk_topk`, for the first query (a re-query reads the same descriptors and
            does not check them again).
        budget (int): number of points P to select, >= 0.
        k (int): candidates per query row and query (rank rule), >= 1; the authors use 32.
        rule (str): ``"rank"`` (default) or ``"column"``.

    Returns:
        Tensor[P], int64, on the descriptors' device: distinct global pool indices, none masked,
        in selection order. Ties break to the lower pool index.

    Raises:
        ValueError: for an unknown rule, ``budget < 0``, ``k < 1``, a budget larger than the
            number of unmasked pool points (both numbers are named), or no query rows.
        RuntimeError: for invalid descriptors, as :func:`pfk_topk`.
    """
    if not torch.jit.is_scripting():
        assert_has_ops()
    check_selection_options("select_unique", rule, budget, k)
    query_g_list = query_g if query_g is not None else []
    pool_g_list = pool_g if pool_g is not None else []
    mask = pool_mask
    if mask is None:
        mask = torch.zeros(pool_z[0].shape[0], dtype=torch.bool, device=pool_z[0].device)
    # The first query validates every input before the budget is checked against the mask.
    if rule == "column":
        values, indices = torch.ops.torch_al.pfk_column_topk(
            query_z, pool_z, query_g_list, pool_g_list, mask, budget, combine, precision, check_finite
        )
    else:
        values, indices = torch.ops.torch_al.pfk_topk(query_z, pool_z, query_g_list, pool_g_list, mask, k, combine, precision, check_finite)
    check_budget_fits("select_unique", budget, mask.shape[0] - int(mask.sum().item()), query_z[0].shape[0])
    if rule == "column":
        return indices
    selected = torch.full([budget], -1, dtype=torch.int64, device=indices.device)
    found = fill_rank_by_rank(selected, 0, values, indices)
    # Each re-query has an unmasked point and a query row, so it adds at least one point.
    while found < budget:
        mask = mask.index_fill(0, selected[:found], True)
        values, indices = torch.ops.torch_al.pfk_topk(query_z, pool_z, query_g_list, pool_g_list, mask, k, combine, precision, False)
        found = fill_rank_by_rank(selected, found, values, indices)
    return selected


def fill_rank_by_rank(selected: Tensor, found: int, values: Tensor, indices: Tensor) -> int:
    """Continues PFK's batch fill: writes after the ``found`` points already in ``selected``
    (int64 Tensor[budget]) the next distinct points of one query's per-row lists (values and
    indices Tensor[M, k], the taken points masked out of that query) in
    :func:`select_unique_ranked`'s order, and returns how many points ``selected`` now holds.
    ``select_unique`` and its form over ranks (which passes the ranks' merged lists) share it."""
    more = torch.ops.torch_al.select_unique_ranked(values, indices, selected.shape[0] - found)
    selected[found:] = more
    return found + int((more >= 0).sum().item())


def check_selection_options(op: str, rule: str, budget: int, k: int) -> None:
    """The options of ``select_unique`` and its form over ranks, checked before any query."""
    if rule != "rank" and rule != "column":
        raise ValueError('{}: rule must be "rank" or "column", got "{}"'.format(op, rule))
    if budget < 0 or k < 1:
        raise ValueError("{}: need budget >= 0 and k >= 1, got budget={} k={}".format(op, budget, k))


def check_budget_fits(op: str, budget: int, selectable: int, query_rows: int) -> None:
    """After the first query has validated the descriptors: ``budget`` distinct points need as many
    unmasked (``selectable``) pool points and at least one query row."""
    if budget > selectable:
        raise ValueError("{}: budget {} exceeds the {} selectable (unmasked) pool points".format(op, budget, selectable))
    if budget > 0 and query_rows == 0:
        raise ValueError("{}: no query rows (M = 0) to match a budget of {}".format(op, budget))
