"""torch_al::select_unique_ranked and torch_al.select_unique against brute force."""

import pytest
import torch
from common_utils import cpu_and_cuda, run_in_fresh_process
from pfk_reference import COMBINES, random_problem, reference_kernel, reference_topk

import torch_al


def reference_fill(values, indices, count, taken=()):
    """Rank by rank: rows by (value desc, index asc) within each rank, skipping taken and empty."""
    chosen, seen = [], set(taken)
    for rank in range(values.shape[1]):
        entries = sorted((-float(values[m, rank]), int(indices[m, rank])) for m in range(values.shape[0]))
        for _, index in entries:
            if len(chosen) == count:
                return chosen
            if index >= 0 and index not in seen:
                seen.add(index)
                chosen.append(index)
    return chosen


def reference_select(scores, mask, budget, k):
    """select_unique's rank rule: fill, and re-query with the taken points masked until full."""
    mask = torch.zeros(scores.shape[1], dtype=torch.bool) if mask is None else mask.clone()
    chosen = []
    while len(chosen) < budget:
        values, indices = reference_topk(scores, mask, k)
        new = reference_fill(values, indices, budget - len(chosen))
        chosen += new
        mask[new] = True
    return chosen


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_ranked_fill_matches_reference_with_ties_and_empty_slots(device):
    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        rows, k = torch.randint(0, 7, (2,), generator=generator).tolist()
        values = torch.randint(-2, 3, (rows, k), generator=generator).double()
        indices = torch.randint(-1, 12, (rows, k), generator=generator)
        values[indices < 0] = float("-inf")
        count = int(torch.randint(0, 15, (), generator=generator))
        selected = torch_al.select_unique_ranked(values.to(device), indices.to(device), count).cpu()
        expected = reference_fill(values, indices, count)
        assert selected.tolist() == expected + [-1] * (count - len(expected))


def test_ranked_fill_orders_rows_by_value_then_index():
    values = torch.tensor([[1.0, 0.9], [2.0, 0.1], [2.0, 0.5]])
    indices = torch.tensor([[7, 3], [5, 7], [4, 8]])
    # rank 0: (2.0, 4), (2.0, 5), (1.0, 7); rank 1: (0.9, 3), (0.5, 8), (0.1, 7: taken)
    assert torch_al.select_unique_ranked(values, indices, 6).tolist() == [4, 5, 7, 3, 8, -1]


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("combine", COMBINES)
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("precision", ["exact", "fast"])
def test_select_unique_matches_reference(device, combine, k, precision):
    generator = torch.Generator().manual_seed(k)
    for _ in range(4):
        problem = random_problem(generator, torch.float64, integer=True, max_columns=120)
        rows, columns = problem[0][0].shape[0], problem[1][0].shape[0]
        mask = torch.rand(columns, generator=generator) < 0.3
        budget = int(torch.randint(0, int((~mask).sum()) + 1, (), generator=generator))
        if rows == 0:
            continue
        on_device = [[t.to(device) for t in part] for part in problem]
        selected = torch_al.select_unique(
            on_device[0], on_device[1], budget, on_device[2], on_device[3], mask.to(device), k, combine, precision=precision
        )
        scores = reference_kernel(*problem, combine=combine)
        assert selected.cpu().tolist() == reference_select(scores, mask, budget, k)
        assert selected.unique().numel() == budget and not mask[selected.cpu()].any()


def test_re_queries_when_every_row_wants_the_same_points():
    # Identical query rows and k=1: each query yields one new point, the authors' code fails here.
    query = [torch.ones(5, 2)]
    pool = [torch.arange(40.0).reshape(20, 2)]
    selected = torch_al.select_unique(query, pool, 12, k=1)
    assert selected.tolist() == list(range(19, 7, -1))


@pytest.mark.parametrize("combine", COMBINES)
@pytest.mark.parametrize("precision", ["exact", "fast"])
def test_column_rule_matches_brute_force(combine, precision):
    generator = torch.Generator().manual_seed(6)
    problem = random_problem(generator, torch.float64, integer=True, max_columns=200)
    while problem[0][0].shape[0] == 0 or problem[1][0].shape[0] < 10:
        problem = random_problem(generator, torch.float64, integer=True, max_columns=200)
    mask = torch.rand(problem[1][0].shape[0], generator=generator) < 0.3
    selected = torch_al.select_unique(problem[0], problem[1], 6, problem[2], problem[3], mask, combine=combine, rule="column", precision=precision)
    best = reference_kernel(*problem, combine=combine).amax(0)
    assert selected.tolist() == reference_topk(best[None], mask, 6)[1][0].tolist()


def test_budget_beyond_the_selectable_points_names_both_numbers():
    mask = torch.zeros(10, dtype=torch.bool)
    mask[:4] = True
    with pytest.raises(ValueError, match=r"budget 7 exceeds the 6 selectable \(unmasked\) pool points"):
        torch_al.select_unique([torch.randn(3, 2)], [torch.randn(10, 2)], 7, pool_mask=mask)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(rule="best"), ValueError, 'rule must be "rank" or "column", got "best"'),
        (dict(k=0), ValueError, "k >= 1"),
        (dict(budget=-1), ValueError, "budget >= 0"),
        (dict(query_z=[torch.randn(0, 2)]), ValueError, r"no query rows \(M = 0\)"),
        (dict(pool_mask=torch.zeros(9, dtype=torch.bool)), RuntimeError, r"pool_mask must be \(N=10,\)"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    args = dict(query_z=[torch.randn(3, 2)], pool_z=[torch.randn(10, 2)], budget=2) | kwargs
    with pytest.raises(error, match=message):
        torch_al.select_unique(**args)


def test_zero_budget_is_empty():
    assert torch_al.select_unique([torch.randn(0, 2)], [torch.randn(4, 2)], 0).shape == (0,)


def test_select_unique_ranked_errors_and_opcheck():
    with pytest.raises(RuntimeError, match=r"indices must be int64 of the shape of values \[2, 3\]"):
        torch_al.select_unique_ranked(torch.randn(2, 3), torch.zeros(2, 3, dtype=torch.int32), 2)
    with pytest.raises(RuntimeError, match="count must be >= 0"):
        torch_al.select_unique_ranked(torch.randn(2, 3), torch.zeros(2, 3, dtype=torch.int64), -1)
    values, indices = torch_al.pfk_topk([torch.randn(4, 3)], [torch.randn(20, 3)], k=3)
    torch.library.opcheck(torch.ops.torch_al.select_unique_ranked.default, (values, indices, 7))


def test_scripted_selection_in_fresh_process(tmp_path):
    path = tmp_path / "select.pt"
    torch.jit.script(torch_al.select_unique).save(str(path))
    query, pool = [torch.ones(5, 2)], [torch.arange(40.0).reshape(20, 2)]
    expected = torch_al.select_unique(query, pool, 12, k=1)
    output = run_in_fresh_process(
        f"""
        import torch, torch_al
        select = torch.jit.load({str(path)!r})
        print(select([torch.ones(5, 2)], [torch.arange(40.0).reshape(20, 2)], 12, None, None, None, 1, "product", "rank", "exact", True).tolist())
        """
    )
    assert output.strip() == str(expected.tolist())
