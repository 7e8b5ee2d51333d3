"""torch_al::pfk_topk against a brute-force float64 reference (materialise R, mask, sort)."""

import pytest
import torch
from common_utils import cpu_and_cuda, run_in_fresh_process
from pfk_reference import COMBINES, assert_cpu_and_cuda_agree, fixed_shape_problem, random_mask, random_problem, reference_kernel, reference_topk, value_tolerance
from torch.testing import assert_close

import torch_al

MASKS = ("none", "random", "all_but_k", "all")
PRECISIONS = ("exact", "fast")


def check_against_reference(problem, mask, k, combine, dtype, precision="exact"):
    """Exact for exact inputs; otherwise values within tolerance and each index worth its value."""
    values, indices = torch_al.pfk_topk(*problem, pool_mask=mask, k=k, combine=combine, precision=precision)
    scores = reference_kernel(*[[t.cpu() for t in part] for part in problem], combine=combine)
    expected_values, expected_indices = reference_topk(scores, mask, k)
    assert values.dtype == dtype and indices.dtype == torch.int64
    assert values.shape == indices.shape == expected_values.shape
    assert_close(values.cpu().double(), expected_values, **value_tolerance(dtype))
    found = indices.cpu() >= 0
    assert torch.equal(found, expected_indices >= 0)
    if found.any():
        rows = torch.arange(scores.shape[0])[:, None].expand_as(indices)[found]
        assert_close(scores[rows, indices.cpu()[found]], values.cpu().double()[found], **value_tolerance(dtype))
        if mask is not None:
            assert not mask[indices.cpu()[found]].any()
        for row in indices.cpu():
            kept = row[row >= 0]
            assert kept.unique().numel() == kept.numel()
    return indices.cpu(), expected_indices


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("combine", COMBINES)
@pytest.mark.parametrize("mask_kind", MASKS)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_random_problems_match_reference(device, dtype, combine, mask_kind, precision):
    generator = torch.Generator().manual_seed(len(combine) * 7 + MASKS.index(mask_kind))
    for trial in range(4):
        problem = random_problem(generator, dtype, gradients=trial != 0)
        k = int(torch.randint(0, 9, (), generator=generator))
        mask = random_mask(generator, problem[1][0].shape[0], mask_kind, k)
        problem = [[t.to(device) for t in part] for part in problem]
        check_against_reference(problem, None if mask is None else mask.to(device), k, combine, dtype, precision)


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("combine", COMBINES)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_ties_break_to_the_lower_index_exactly(device, dtype, combine, precision):
    # Small integer descriptors: every value is exact and ties are everywhere.
    generator = torch.Generator().manual_seed(3)
    for _ in range(4):
        problem = random_problem(generator, dtype, integer=True, max_columns=600)
        problem = [[t.to(device) for t in part] for part in problem]
        mask = random_mask(generator, problem[1][0].shape[0], "random", 0)
        indices, expected = check_against_reference(problem, mask.to(device), 7, combine, dtype, precision)
        assert torch.equal(indices, expected)


def test_all_equal_values_return_the_lowest_allowed_indices():
    query, pool = [torch.ones(2, 3)], [torch.ones(50, 3)]
    mask = torch.zeros(50, dtype=torch.bool)
    mask[[0, 2]] = True
    values, indices = torch_al.pfk_topk(query, pool, pool_mask=mask, k=3)
    assert indices.tolist() == [[1, 3, 4], [1, 3, 4]]
    assert (values == 3).all()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("k", [1, 5, 40])  # 40: longer than the kernel's 16-column threshold blocks
@pytest.mark.parametrize("rows, columns", [(2, 20011), (64, 5003), (300, 777)])
def test_many_tiles_and_a_ragged_last_tile(threads, k, rows, columns):
    generator = torch.Generator().manual_seed(rows)
    query = [torch.randint(-2, 3, (rows, 5), generator=generator).float()]
    pool = [torch.randint(-2, 3, (columns, 5), generator=generator).float()]
    mask = torch.rand(columns, generator=generator) < 0.2
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        values, indices = torch_al.pfk_topk(query, pool, pool_mask=mask, k=k)
    finally:
        torch.set_num_threads(before)
    expected_values, expected_indices = reference_topk(reference_kernel(query, pool), mask, k)
    assert torch.equal(indices, expected_indices)
    assert torch.equal(values.double(), expected_values)


@pytest.mark.parametrize("capability", ["default", "avx2", None])
def test_every_cpu_engine_and_scan_gives_the_reference_lists(capability):
    # ATEN_CPU_CAPABILITY (as for torch's own kernels) picks the CPU path: "default" the BLAS tiles
    # with the scalar scan, "avx2" the tiles with the AVX2 scan, and on an AVX-512 machine its own
    # capability (None) the oneDNN GEMM blocks for float32. Each must give the reference's lists,
    # ties included, per row and per column.
    code = """
    import sys, torch, torch_al
    sys.path.insert(0, "tests")
    from pfk_reference import COMBINES, fixed_shape_problem, reference_kernel, reference_topk
    for dtype in (torch.float32, torch.float64):
        for combine in COMBINES:
            for k in (1, 5, 40):
                generator = torch.Generator().manual_seed(k)
                problem = [[t.to(dtype) for t in part] for part in fixed_shape_problem(generator, 20, 7001)]
                mask = torch.rand(7001, generator=generator) < 0.2
                scores = reference_kernel(*problem, combine=combine)
                assert torch.equal(torch_al.pfk_topk(*problem, pool_mask=mask, k=k, combine=combine)[1], reference_topk(scores, mask, k)[1])
                best = reference_topk(scores.amax(0)[None], mask, k)[1][0]
                assert torch.equal(torch_al.pfk_column_topk(*problem, pool_mask=mask, k=k, combine=combine)[1], best)
    print(torch.backends.cpu.get_cpu_capability())
    """
    if capability == "avx2" and torch.backends.cpu.get_cpu_capability() == "DEFAULT":
        pytest.skip("this CPU has no AVX2")
    env = {} if capability is None else {"ATEN_CPU_CAPABILITY": capability}
    ran_under = run_in_fresh_process(code, env=env).strip()
    if capability is not None:
        assert ran_under == capability.upper()


def test_single_scale_product_equals_fisher():
    generator = torch.Generator().manual_seed(5)
    problem = random_problem(generator, torch.float64, integer=True)
    single = [part[:1] for part in problem]
    assert all(torch.equal(a, b) for a, b in zip(torch_al.pfk_topk(*single, k=4), torch_al.pfk_topk(*single, k=4, combine="fisher")))


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize(
    "rows, columns, k",
    [(0, 10, 3), (4, 0, 3), (0, 0, 2), (3, 10, 0), (1, 1, 1), (2, 3, 8)],
)
def test_edge_sizes(device, rows, columns, k):
    query = [torch.randn(rows, 4, device=device)]
    pool = [torch.randn(columns, 4, device=device)]
    values, indices = torch_al.pfk_topk(query, pool, query, [torch.randn(columns, 4, device=device)], k=k)
    assert values.shape == indices.shape == (rows, k)
    assert (indices[:, columns:] == -1).all() and values[:, columns:].isneginf().all()


def test_zero_width_descriptors_give_zero_scores():
    values, indices = torch_al.pfk_topk([torch.zeros(2, 0)], [torch.zeros(5, 0)], k=2)
    assert indices.tolist() == [[0, 1], [0, 1]] and (values == 0).all()


def test_strided_inputs():
    generator = torch.Generator().manual_seed(9)
    query = [torch.randn(6, 5, generator=generator, dtype=torch.float64).t().contiguous().t()]
    pool_store = torch.randn(40, 10, generator=generator, dtype=torch.float64)
    pool = [pool_store[:, ::2]]  # a column slice of a wider store
    gradients = [torch.randn(1, 3, generator=generator, dtype=torch.float64).expand(6, 3)]
    pool_g = [torch.randn(3, 40, generator=generator, dtype=torch.float64).t()]
    mask = torch.zeros(80, dtype=torch.bool)[::2]
    values, indices = torch_al.pfk_topk(query, pool, gradients, pool_g, mask, 4)
    expected_values, expected_indices = reference_topk(reference_kernel(query, pool, gradients, pool_g), None, 4)
    assert_close(values, expected_values)
    assert torch.equal(indices, expected_indices)


WIDTHS = (3, 0, 5, 2)  # a zero-width scale inside


def column_views(store, layout):
    """Scales of widths WIDTHS cut from the columns of ``store``: "adjacent" (how descriptor
    capture stores them, read in place by the kernels), or laid out so they must be copied:
    "reversed" order, a "gap" between scales, a "transposed" store (column stride != 1)."""
    if layout == "transposed":
        store = store.t().contiguous().t()
    starts = [0, 3, 3, 8] if layout != "gap" else [0, 4, 4, 10]
    views = [store[:, start : start + width] for start, width in zip(starts, WIDTHS)]
    return views[::-1] if layout == "reversed" else views


@pytest.mark.parametrize("layout", ["adjacent", "reversed", "gap", "transposed"])
@pytest.mark.parametrize("combine", COMBINES)
@pytest.mark.parametrize("columns", [1, 700])
def test_scales_cut_from_one_store_equal_separate_copies(layout, combine, columns):
    generator = torch.Generator().manual_seed(columns)
    stores = [torch.randn(rows, 12, generator=generator, dtype=torch.float64) for rows in (5, columns, 5, columns)]
    views = [column_views(store, layout) for store in stores]
    copies = [[view.contiguous() for view in scales] for scales in views]
    mask = torch.rand(columns, generator=generator) < 0.3
    values, indices = torch_al.pfk_topk(*views, pool_mask=mask, k=4, combine=combine)
    copied_values, copied_indices = torch_al.pfk_topk(*copies, pool_mask=mask, k=4, combine=combine)
    assert torch.equal(indices, copied_indices)  # values may differ in the last bit: BLAS blocks by stride
    assert_close(values, copied_values, rtol=1e-14, atol=1e-14)
    expected_values, expected_indices = reference_topk(reference_kernel(*copies, combine=combine), mask, 4)
    assert torch.equal(indices, expected_indices)
    assert_close(values, expected_values)


@pytest.mark.parametrize("name", ["query_z", "pool_z", "query_g", "pool_g"])
@pytest.mark.parametrize("position", [0, 2, 3])
def test_non_finite_input_in_one_store_names_the_scale(name, position):
    problem = {key: column_views(torch.randn(rows, 12), "adjacent") for key, rows in (("query_z", 3), ("pool_z", 7), ("query_g", 3), ("pool_g", 7))}
    problem[name][position][-1, 0] = float("nan")
    with pytest.raises(RuntimeError, match=rf"pfk_topk: {name}\[{position}\] contains NaN"):
        torch_al.pfk_topk(**problem, k=2)
    problem[name][position][-1, 0] = float("inf")
    with pytest.raises(RuntimeError, match=rf"pfk_topk: {name}\[{position}\] contains inf"):
        torch_al.pfk_topk(**problem, k=2)


@pytest.mark.parametrize("overflowing_row", [[1e30, -1e30], [1e30, 1e30]], ids=["cancelling", "too-large"])
def test_value_overflowing_never_outranks_a_finite_one(overflowing_row):
    # Finite descriptors whose products overflow float32: the GEMM's order and FMAs decide whether
    # the value is inf, -inf or NaN (1e60 - 1e60 is NaN summed plainly, inf fused); each ranks as -inf.
    query, pool = [torch.tensor([[1e30, 1e30]])], [torch.tensor([overflowing_row, [1.0, 0.0]])]
    values, indices = torch_al.pfk_topk(query, pool, k=2)
    assert indices.tolist() == [[1, 0]]
    assert values[0, 0] == 1e30 and values[0, 1].isneginf()
    column_values, column_indices = torch_al.pfk_column_topk(query, pool, k=2)
    assert column_indices.tolist() == [1, 0]
    assert column_values[1].isneginf()


@pytest.mark.parametrize("name, position", [("query_z", 0), ("pool_z", 1), ("query_g", 1), ("pool_g", 0)])
@pytest.mark.parametrize("bad, message", [(float("nan"), "contains NaN"), (float("-inf"), "contains inf")])
def test_non_finite_input_names_the_tensor(name, position, bad, message):
    problem = {
        "query_z": [torch.randn(3, 2), torch.randn(3, 4)],
        "pool_z": [torch.randn(7, 2), torch.randn(7, 4)],
        "query_g": [torch.randn(3, 1), torch.randn(3, 2)],
        "pool_g": [torch.randn(7, 1), torch.randn(7, 2)],
    }
    problem[name][position][-1, -1] = bad
    with pytest.raises(RuntimeError, match=rf"pfk_topk: {name}\[{position}\] {message}"):
        torch_al.pfk_topk(**problem, k=2)


def good_args():
    return dict(
        query_z=[torch.randn(3, 2), torch.randn(3, 4)],
        pool_z=[torch.randn(7, 2), torch.randn(7, 4)],
        query_g=[torch.randn(3, 1), torch.randn(3, 2)],
        pool_g=[torch.randn(7, 1), torch.randn(7, 2)],
        pool_mask=torch.zeros(7, dtype=torch.bool),
        k=2,
        combine="product",
    )


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(query_z=[]), "query_z must hold at least one scale"),
        (dict(pool_z=[torch.randn(7, 2)]), "pool_z has 1 scales but query_z has 2"),
        (dict(query_z=[torch.randn(3), torch.randn(3, 4)]), r"query_z\[0\] must be \(M, C\), got shape \[3\]"),
        (dict(query_z=[torch.randn(3, 2), torch.randn(4, 4)]), r"query_z\[1\] must be \(M=3, C\), got shape \[4, 4\]"),
        (dict(pool_z=[torch.randn(7, 2), torch.randn(6, 4)]), r"pool_z\[1\] must be \(N=7, C\), got shape \[6, 4\]"),
        (dict(pool_z=[torch.randn(7, 2), torch.randn(7, 5)]), r"pool_z\[1\] has 5 channels but query_z\[1\] has 4"),
        (dict(query_g=[]), "query_g and pool_g must both be empty or both hold 2 scales, got 0 and 2"),
        (dict(query_g=[torch.randn(3, 1)], pool_g=[torch.randn(7, 1)]), "query_g has 1 scales but query_z has 2"),
        (dict(pool_g=[torch.randn(7, 1), torch.randn(7, 3)]), r"pool_g\[1\] has 3 channels but query_g\[1\] has 2"),
        (dict(query_z=[torch.ones(3, 2, dtype=torch.int64), torch.ones(3, 4, dtype=torch.int64)]), "must be float32 or float64"),
        (dict(pool_z=[torch.randn(7, 2), torch.randn(7, 4, dtype=torch.float64)]), r"pool_z\[1\] dtype (Double|torch.float64) must equal query_z\[0\] dtype (Float|torch.float32)"),
        (dict(pool_g=[torch.randn(7, 1), torch.randn(7, 2, device="meta")]), r"pool_g\[1\] is on meta but query_z\[0\] is on cpu"),
        (dict(pool_mask=torch.zeros(6, dtype=torch.bool)), r"pool_mask must be \(N=7,\), got shape \[6\]"),
        (dict(pool_mask=torch.zeros(7)), "pool_mask must be torch.bool"),
        (dict(k=-1), "k must be >= 0, got -1"),
        (dict(combine="mean"), 'combine must be one of "product", "fisher", "sum", got "mean"'),
        (dict(precision="bf16"), 'precision must be "exact" or "fast", got "bf16"'),
    ],
)
def test_bad_input_raises_a_named_error(change, message):
    args = good_args() | change
    with pytest.raises(RuntimeError, match=message):
        torch.ops.torch_al.pfk_topk(**args)
    # The fake mirrors the checks, so compiled and exported callers see the same errors.
    compiled = torch.compile(torch.ops.torch_al.pfk_topk, fullgraph=True, backend="eager", dynamic=False)
    with pytest.raises(Exception, match=message):
        compiled(**args)


def test_opcheck():
    generator = torch.Generator().manual_seed(11)
    for combine in COMBINES:
        query_z, pool_z, query_g, pool_g = random_problem(generator, torch.float32, max_rows=5, max_columns=40)
        mask = torch.rand(pool_z[0].shape[0], generator=generator) < 0.3
        for precision in PRECISIONS:
            torch.library.opcheck(torch.ops.torch_al.pfk_topk.default, (query_z, pool_z, query_g, pool_g, mask, 3, combine, precision))
    torch.library.opcheck(torch.ops.torch_al.pfk_topk.default, ([torch.randn(4, 3)], [torch.randn(9, 3)], [], [], None, 2))


@pytest.mark.parametrize("op", [torch_al.pfk_topk, torch_al.pfk_column_topk])
def test_check_finite_false_skips_the_finiteness_check_alone(op):
    generator = torch.Generator().manual_seed(21)
    name = op.__name__
    for combine in COMBINES:
        problem = random_problem(generator, torch.float32, max_rows=6, max_columns=300)
        mask = random_mask(generator, problem[1][0].shape[0], "random", 4)
        expected = op(*problem, pool_mask=mask, k=4, combine=combine)
        unchecked = op(*problem, pool_mask=mask, k=4, combine=combine, check_finite=False)
        assert all(torch.equal(a, b) for a, b in zip(unchecked, expected))
        torch.library.opcheck(getattr(torch.ops.torch_al, name).default, (*problem, mask, 4, combine, "exact", False))
    args = good_args()
    args["pool_z"][1][2, 0] = float("nan")
    with pytest.raises(RuntimeError, match=rf"{name}: pool_z\[1\] contains NaN"):
        op(**args)
    values, indices = op(**args, check_finite=False)  # the caller vouched for the inputs: no error
    assert indices.dtype == torch.int64 and values.shape == indices.shape
    with pytest.raises(RuntimeError, match="k must be >= 0, got -1"):  # every other check stays
        op(**(good_args() | dict(k=-1)), check_finite=False)


def test_check_finite_through_torchscript():
    @torch.jit.script
    def unchecked(query: torch.Tensor, pool: torch.Tensor):
        return torch_al.pfk_topk([query], [pool], k=2, check_finite=False)

    query, pool = torch.randn(3, 4), torch.randn(9, 4)
    for result, expected in zip(unchecked(query, pool), torch_al.pfk_topk([query], [pool], k=2)):
        assert torch.equal(result, expected)


@pytest.mark.needs_cuda
@pytest.mark.parametrize("op", [torch_al.pfk_topk, torch_al.pfk_column_topk])
def test_unchecked_call_never_waits_on_the_device(op):
    generator = torch.Generator().manual_seed(22)
    problem = [[t.cuda() for t in part] for part in random_problem(generator, torch.float32, max_rows=6, max_columns=3000)]
    mask = (torch.rand(problem[1][0].shape[0], generator=generator) < 0.3).cuda()
    expected = op(*problem, pool_mask=mask, k=5)  # also warms cuBLAS up
    torch.cuda.set_sync_debug_mode("error")
    try:
        values, indices = op(*problem, pool_mask=mask, k=5, check_finite=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.equal(values, expected[0]) and torch.equal(indices, expected[1])


def selection_scores(query_z, pool_z, query_g, pool_g, mask):
    values, indices = torch_al.pfk_topk(query_z, pool_z, query_g, pool_g, mask, k=3, combine="fisher")
    return values.clamp_min(-1e9).sum(), indices + 1


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_fullgraph(backend):
    generator = torch.Generator().manual_seed(2)
    problem = random_problem(generator, torch.float32, max_rows=5, max_columns=40)
    mask = torch.rand(problem[1][0].shape[0], generator=generator) < 0.3
    compiled = torch.compile(selection_scores, fullgraph=True, backend=backend)
    for result, expected in zip(compiled(*problem, mask), selection_scores(*problem, mask)):
        assert_close(result, expected)


def test_export():
    class Match(torch.nn.Module):
        def forward(self, query, pool, mask):
            return torch_al.pfk_topk([query], [pool], pool_mask=mask, k=2)

    args = (torch.randn(3, 4), torch.randn(10, 4), torch.rand(10) < 0.5)
    exported = torch.export.export(Match(), args)
    for result, expected in zip(exported.module()(*args), Match()(*args)):
        assert_close(result, expected)


def test_torchscript_roundtrip_in_fresh_process(tmp_path):
    class Match(torch.nn.Module):
        def forward(self, query: torch.Tensor, pool: torch.Tensor, mask: torch.Tensor):
            return torch_al.pfk_topk([query], [pool], [query], [pool], mask, 2, "fisher")

    path = tmp_path / "match.pt"
    torch.jit.script(Match()).save(str(path))
    query = torch.arange(6.0).reshape(3, 2)
    pool = torch.arange(10.0).reshape(5, 2) - 4
    mask = torch.tensor([False, True, False, False, False])
    output = run_in_fresh_process(
        f"""
        import torch, torch_al
        module = torch.jit.load({str(path)!r})
        query = torch.arange(6.0).reshape(3, 2)
        pool = torch.arange(10.0).reshape(5, 2) - 4
        values, indices = module(query, pool, torch.tensor([False, True, False, False, False]))
        print(values.tolist(), indices.tolist())
        """
    )
    values, indices = Match()(query, pool, mask)
    assert output.strip() == f"{values.tolist()} {indices.tolist()}"


@pytest.mark.parametrize("k", [1, 3, 40])
def test_fast_precision_equals_exact_over_many_tiles_on_cpu(k):
    # On CPU the screen is exact: "fast" runs the re-score over the kept candidates and must give
    # the exact answer, ties included (small integers), over several tiles.
    generator = torch.Generator().manual_seed(k)
    problem = fixed_shape_problem(generator, 30, 9000)
    mask = torch.rand(9000, generator=generator) < 0.2
    for combine in COMBINES:
        exact = torch_al.pfk_topk(*problem, pool_mask=mask, k=k, combine=combine)
        fast = torch_al.pfk_topk(*problem, pool_mask=mask, k=k, combine=combine, precision="fast")
        assert torch.equal(exact[0], fast[0]) and torch.equal(exact[1], fast[1])


def near_ties(rows: int = 4, columns: int = 3000, tied: int = 24):
    """Query 1 against a pool whose best `tied` columns (scattered) hold 1 + j · 2^-12: bfloat16
    rounds them to two values (1 and 1 + 2^-7), so a bfloat16 screen cannot order them; exactly,
    the best is the largest j. The rest of the pool lies below 0.5."""
    generator = torch.Generator().manual_seed(0)
    pool = torch.rand(columns, 1, generator=generator) * 0.5
    best = torch.randperm(columns, generator=generator)[:tied]
    pool[best, 0] = 1 + torch.arange(tied, dtype=torch.float32) * 2.0**-12
    return [torch.ones(rows, 1)], [pool], best


@pytest.mark.needs_cuda
@pytest.mark.parametrize("k", [1, 4])
def test_fast_precision_recovers_an_order_bfloat16_cannot_see(k):
    query, pool, best = near_ties()
    assert pool[0][best, 0].bfloat16().unique().numel() == 2
    expected = best.flip(0)[:k]
    fast = torch_al.pfk_topk([q.cuda() for q in query], [p.cuda() for p in pool], k=k, precision="fast")
    assert (fast[1].cpu() == expected).all()
    assert torch.equal(fast[0].cpu(), pool[0][expected, 0].expand(4, k))
    exact = torch_al.pfk_topk(query, pool, k=k)
    assert (exact[1] == expected).all()


@pytest.mark.needs_cuda
@pytest.mark.parametrize("combine", COMBINES)
@pytest.mark.parametrize("k", [1, 32])
def test_fast_precision_on_cuda_equals_exact_on_integer_descriptors(combine, k):
    # Small integers are exact in bfloat16, so the screen loses nothing: bit-equal to "exact".
    generator = torch.Generator().manual_seed(k)
    problem = fixed_shape_problem(generator, 50, 20000)
    mask = torch.rand(20000, generator=generator) < 0.2
    exact = torch_al.pfk_topk(*problem, pool_mask=mask, k=k, combine=combine)
    on_cuda = [[t.cuda() for t in part] for part in problem]
    fast = torch_al.pfk_topk(*on_cuda, pool_mask=mask.cuda(), k=k, combine=combine, precision="fast")
    assert torch.equal(exact[0], fast[0].cpu()) and torch.equal(exact[1], fast[1].cpu())


@pytest.mark.needs_cuda
@pytest.mark.parametrize("combine", COMBINES)
# k = 1: per-lane argmax; k <= 32: the warp's register list; k > 32: the list in memory. Few rows
# split each row's columns between warps (then a merge); many rows give one warp per row.
@pytest.mark.parametrize("k", [1, 9, 32, 33, 100])
@pytest.mark.parametrize("rows, columns", [(3, 30000), (40, 5000), (3000, 1500)])
def test_cpu_and_cuda_agree_tie_aware(combine, k, rows, columns):
    assert_cpu_and_cuda_agree(torch_al.pfk_topk, rows, columns, k, combine)
