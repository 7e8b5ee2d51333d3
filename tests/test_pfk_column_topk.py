"""torch_al::pfk_column_topk against a brute-force float64 reference (materialise R, max, sort)."""

import pytest
import torch
from common_utils import cpu_and_cuda
from pfk_reference import COMBINES, assert_cpu_and_cuda_agree, random_mask, random_problem, reference_kernel, reference_topk, value_tolerance
from torch.testing import assert_close

import torch_al


def reference_column_topk(problem, mask, k, combine):
    scores = reference_kernel(*problem, combine=combine)
    best = scores.amax(0) if scores.shape[0] > 0 else torch.full((scores.shape[1],), float("-inf"), dtype=torch.float64)
    values, indices = reference_topk(best[None], mask, k)
    return values[0], indices[0], best


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("combine", COMBINES)
@pytest.mark.parametrize("mask_kind", ["none", "random", "all_but_k", "all"])
@pytest.mark.parametrize("precision", ["exact", "fast"])
def test_random_problems_match_reference(device, dtype, combine, mask_kind, precision):
    generator = torch.Generator().manual_seed(len(combine) + len(mask_kind))
    for trial in range(3):
        problem = random_problem(generator, dtype, gradients=trial != 0)
        k = int(torch.randint(0, 12, (), generator=generator))
        mask = random_mask(generator, problem[1][0].shape[0], mask_kind, k)
        on_device = [[t.to(device) for t in part] for part in problem]
        values, indices = torch_al.pfk_column_topk(
            *on_device, pool_mask=None if mask is None else mask.to(device), k=k, combine=combine, precision=precision
        )
        expected_values, expected_indices, best = reference_column_topk(problem, mask, k, combine)
        assert values.shape == indices.shape == (k,) and indices.dtype == torch.int64
        assert_close(values.cpu().double(), expected_values, **value_tolerance(dtype))
        found = indices.cpu() >= 0
        assert torch.equal(found, expected_indices >= 0)
        assert_close(best[indices.cpu()[found]], values.cpu().double()[found], **value_tolerance(dtype))
        assert indices[found].unique().numel() == int(found.sum())


@pytest.mark.parametrize("combine", COMBINES)
@pytest.mark.parametrize("rows, max_columns", [(6, 600), (40, 9000)])
@pytest.mark.parametrize("precision", ["exact", "fast"])
def test_ties_break_to_the_lower_index_exactly(combine, rows, max_columns, precision):
    generator = torch.Generator().manual_seed(rows)
    problem = random_problem(generator, torch.float32, integer=True, max_rows=rows, max_columns=max_columns)
    mask = random_mask(generator, problem[1][0].shape[0], "random", 0)
    values, indices = torch_al.pfk_column_topk(*problem, pool_mask=mask, k=25, combine=combine, precision=precision)
    expected_values, expected_indices, _ = reference_column_topk(problem, mask, 25, combine)
    assert torch.equal(indices, expected_indices)
    assert torch.equal(values.double(), expected_values)


@pytest.mark.needs_cuda
@pytest.mark.parametrize("combine", COMBINES)
@pytest.mark.parametrize("k", [1, 25, 300])
@pytest.mark.parametrize("rows, columns", [(3, 30000), (300, 2000)])
def test_cpu_and_cuda_agree_tie_aware(combine, k, rows, columns):
    assert_cpu_and_cuda_agree(torch_al.pfk_column_topk, rows, columns, k, combine)


@pytest.mark.parametrize("precision", ["exact", "fast"])
def test_no_query_rows_scores_every_column_minus_inf(precision):
    mask = torch.tensor([True, False, False, True, False])
    values, indices = torch_al.pfk_column_topk([torch.zeros(0, 2)], [torch.randn(5, 2)], pool_mask=mask, k=4, precision=precision)
    assert indices.tolist() == [1, 2, 4, -1] and values.isneginf().all()


def test_errors_name_the_op():
    with pytest.raises(RuntimeError, match=r"pfk_column_topk: pool_z\[0\] contains NaN"):
        torch_al.pfk_column_topk([torch.randn(2, 3)], [torch.full((4, 3), float("nan"))], k=1)
    with pytest.raises(RuntimeError, match="pfk_column_topk: k must be >= 0"):
        torch_al.pfk_column_topk([torch.randn(2, 3)], [torch.randn(4, 3)], k=-2)


def test_opcheck_and_compile():
    generator = torch.Generator().manual_seed(8)
    problem = random_problem(generator, torch.float32, max_rows=5, max_columns=40)
    mask = torch.rand(problem[1][0].shape[0], generator=generator) < 0.3
    torch.library.opcheck(torch.ops.torch_al.pfk_column_topk.default, (*problem, mask, 4, "sum"))
    torch.library.opcheck(torch.ops.torch_al.pfk_column_topk.default, (*problem, mask, 4, "sum", "fast"))
    compiled = torch.compile(torch_al.pfk_column_topk, fullgraph=True, backend="aot_eager")
    for result, expected in zip(compiled(*problem, mask, 4), torch_al.pfk_column_topk(*problem, mask, 4)):
        assert_close(result, expected)
