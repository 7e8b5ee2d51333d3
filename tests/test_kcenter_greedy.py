"""torch_al::kcenter_greedy against a direct float64 reference that recomputes every distance each pick."""

import pytest
import torch
from common_utils import cpu_and_cuda, run_in_fresh_process
from torch.testing import assert_close

import torch_al

DIRECT_INITIAL_LIMIT = 16  # kKCenterDirectInitialCenters: larger initial sets take the matrix-product path


def reference_distances(x: torch.Tensor, centers: torch.Tensor, metric: str) -> torch.Tensor:
    """[N, S] distances in float64, from differences (no expanded form)."""
    if metric == "cosine":
        return 1 - x @ centers.T
    return ((x[:, None, :] - centers[None, :, :]) ** 2).sum(-1).sqrt()


def reference_kcenter_greedy(x, k, initial=None, first=0, metric="euclidean", exclude=None):
    """Farthest-first picks; every step recomputes the distances of all points to all centers."""
    x = x.double().cpu()
    if metric == "cosine":
        x = x / x.norm(dim=1, keepdim=True)
    n = x.shape[0]
    covered = torch.zeros(n, dtype=torch.bool)
    if initial is not None:
        covered[initial.cpu().long()] = True
    blocked = covered | (exclude.cpu() if exclude is not None else covered)
    initial_list = covered.nonzero().flatten().tolist()
    picks: list[int] = []
    for _ in range(k):
        centers = initial_list + picks
        if not centers:
            picks.append(first)
            continue
        min_dist = reference_distances(x, x[centers], metric).min(1).values
        min_dist[blocked] = -1
        min_dist[picks] = -1
        picks.append(int(min_dist.argmax()))  # argmax returns the first maximum: ties to the lower index
    centers = initial_list + picks
    if not centers:
        return torch.tensor(picks, dtype=torch.long), torch.full((n,), float("inf"), dtype=torch.float64)
    return torch.tensor(picks, dtype=torch.long), reference_distances(x, x[centers], metric).min(1).values


def random_case(generator: torch.Generator, initial_size: int, with_exclude: bool):
    n = int(torch.randint(initial_size + 5, 100, (), generator=generator))
    d = int(torch.randint(1, 24, (), generator=generator))
    x = torch.randn(n, d, generator=generator)
    initial = torch.randperm(n, generator=generator)[:initial_size] if initial_size else None
    exclude = torch.rand(n, generator=generator) < 0.2 if with_exclude else None
    blocked = torch.zeros(n, dtype=torch.bool)
    if initial is not None:
        blocked[initial] = True
    if exclude is not None:
        exclude[0] = False  # keep the default first pick selectable
        blocked |= exclude
    selectable = int((~blocked).sum())
    k = int(torch.randint(0, selectable + 1, (), generator=generator))
    return x, k, initial, exclude


def assert_matches_reference(x, k, initial=None, first=None, metric="euclidean", exclude=None, atol=1e-5):
    indices, min_dist = torch_al.kcenter_greedy(x, k, initial, first=first, metric=metric, exclude=exclude)
    expected_indices, expected_dist = reference_kcenter_greedy(x, k, initial, first or 0, metric, exclude)
    assert indices.dtype == torch.int64 and indices.device == x.device
    assert torch.equal(indices.cpu(), expected_indices)
    assert_close(min_dist.double().cpu(), expected_dist, atol=atol, rtol=1e-5)


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("initial_size", [0, 3, 40])
@pytest.mark.parametrize("with_exclude", [False, True])
def test_matches_reference_on_random_data(device, metric, initial_size, with_exclude):
    generator = torch.Generator().manual_seed(initial_size + 100 * with_exclude)
    for _ in range(3):
        x, k, initial, exclude = random_case(generator, initial_size, with_exclude)
        to = lambda t: None if t is None else t.to(device)  # noqa: E731
        assert_matches_reference(x.to(device), k, to(initial), metric=metric, exclude=to(exclude))


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_dtypes_accumulate_in_float32_or_float64(device, dtype):
    x = torch.randn(120, 24).to(device, dtype)
    indices, min_dist = torch_al.kcenter_greedy(x, 12)
    assert min_dist.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    expected_indices, expected_dist = reference_kcenter_greedy(x, 12)
    assert torch.equal(indices.cpu(), expected_indices)
    assert_close(min_dist.double().cpu(), expected_dist, atol=1e-5, rtol=1e-5)


def test_large_offset_keeps_full_precision():
    # float32 cannot hold 1e4 + (squared distances ~ 1) after expanding |x|^2 - 2 x.c + |c|^2: the
    # direct differences and the centred matrix product must both stay exact to float32 rounding.
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(400, 16, generator=generator) + 1e4
    initial = torch.randperm(400, generator=generator)[:60]
    assert_matches_reference(x, 25)
    assert_matches_reference(x, 25, initial[:5])
    assert_matches_reference(x, 25, initial)


def test_duplicated_points_then_lowest_remaining_indices():
    base = torch.randn(5, 3)
    x = base.repeat(4, 1)  # rows i, i + 5, i + 10, i + 15 coincide
    indices, min_dist = torch_al.kcenter_greedy(x, 12)
    assert torch.equal(indices, reference_kcenter_greedy(x, 12)[0])
    assert sorted(x[indices[:5]].tolist()) == sorted(base.tolist())
    # Once every point is covered at distance 0, the lowest not-yet-picked indices follow in order.
    rest = [i for i in range(20) if i not in indices[:5].tolist()][:7]
    assert indices[5:].tolist() == rest
    assert (min_dist == 0).all()


def test_ties_go_to_the_lower_index():
    x = torch.tensor([[0.0], [1.0], [-1.0], [2.0], [-2.0]])
    assert torch_al.kcenter_greedy(x, 5)[0].tolist() == [0, 3, 4, 1, 2]


def test_single_point_and_empty_pool():
    x = torch.randn(1, 4)
    indices, min_dist = torch_al.kcenter_greedy(x, 1)
    assert indices.tolist() == [0] and min_dist.tolist() == [0.0]
    indices, min_dist = torch_al.kcenter_greedy(x, 0)
    assert indices.shape == (0,) and min_dist.isinf().all()
    indices, min_dist = torch_al.kcenter_greedy(torch.randn(0, 4), 0)
    assert indices.shape == (0,) and min_dist.shape == (0,)


def test_k_zero_returns_distances_to_the_initial_set():
    x = torch.randn(50, 6)
    indices, min_dist = torch_al.kcenter_greedy(x, 0, torch.tensor([3, 9]))
    assert indices.shape == (0,)
    assert_close(min_dist.double(), reference_distances(x.double(), x[[3, 9]].double(), "euclidean").min(1).values)


def test_k_equal_to_n_picks_every_point_once():
    x = torch.randn(30, 5)
    indices, min_dist = torch_al.kcenter_greedy(x, 30)
    assert sorted(indices.tolist()) == list(range(30))
    assert (min_dist == 0).all()


def test_initial_as_mask_or_index_list_with_repeats_in_any_order():
    x = torch.randn(80, 7)
    mask = torch.zeros(80, dtype=torch.bool)
    mask[[4, 60, 22]] = True
    expected = torch_al.kcenter_greedy(x, 10, mask)
    for initial in (torch.tensor([60, 4, 22, 4]), torch.tensor([22, 60, 4], dtype=torch.int32)):
        result = torch_al.kcenter_greedy(x, 10, initial)
        assert torch.equal(result[0], expected[0]) and torch.equal(result[1], expected[1])
    assert not set(expected[0].tolist()) & {4, 22, 60}


def test_first_and_exclude():
    x = torch.randn(40, 3)
    exclude = torch.zeros(40, dtype=torch.bool)
    exclude[10:30] = True
    indices, min_dist = torch_al.kcenter_greedy(x, 8, first=5, exclude=exclude)
    assert indices[0] == 5 and not exclude[indices].any()
    assert_matches_reference(x, 8, first=5, exclude=exclude)
    assert min_dist[exclude].isfinite().all()  # excluded points are still covered
    labeled = torch.tensor([7])
    assert torch.equal(torch_al.kcenter_greedy(x, 3, labeled, first=5)[0], torch_al.kcenter_greedy(x, 3, labeled)[0])


def test_strided_inputs_match_contiguous():
    x = torch.randn(60, 9)
    expected = torch_al.kcenter_greedy(x, 10)
    for variant in (x.t().contiguous().t(), torch.stack([x, x], 2)[:, :, 0]):
        result = torch_al.kcenter_greedy(variant, 10)
        assert torch.equal(result[0], expected[0]) and torch.equal(result[1], expected[1])


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda: (torch.randn(5), 1), r"x must be 2-D \(N, D\), got shape \[5\]"),
        (lambda: (torch.ones(4, 2, dtype=torch.int64), 1), "x must be a floating tensor"),
        (lambda: (torch.randn(4, 2), -1), "k must be >= 0, got -1"),
        (lambda: (torch.randn(4, 2), 1, None, None, "manhattan"), "metric must be 'euclidean' or 'cosine', got 'manhattan'"),
        (lambda: (torch.randn(4, 2), 1, torch.tensor([0.5])), "initial must be a 1-D bool mask .* dtype Float"),
        (lambda: (torch.randn(4, 2), 1, torch.ones(3, dtype=torch.bool)), "initial mask has 3 entries but x has N=4"),
        (lambda: (torch.randn(4, 2), 1, torch.tensor([1, 4, -1])), r"initial indices must lie in \[0, N\) with N=4, got 2 out of range"),
        (lambda: (torch.randn(4, 2), 1, None, None, "euclidean", torch.tensor([0, 1])), "exclude must be a 1-D bool mask"),
        (lambda: (torch.randn(4, 2), 1, None, None, "euclidean", torch.ones(5, dtype=torch.bool)), "exclude has 5 entries but x has N=4"),
        (lambda: (torch.randn(4, 2), 4, torch.tensor([1])), r"k=4 is larger than the number of selectable points, 3 \(N=4"),
        (lambda: (torch.randn(0, 2), 1), "k=1 is larger than the number of selectable points, 0"),
        (lambda: (torch.randn(4, 2), 1, None, 4), r"first must lie in \[0, N\) with N=4, got 4"),
        (lambda: (torch.randn(4, 2), 1, None, None, "euclidean", torch.tensor([True, False, False, False])), "the first pick, index 0, is excluded"),
        (lambda: (torch.tensor([[1.0, 2.0], [0.0, 0.0], [0.0, 0.0]]), 1, None, None, "cosine"), "nonzero, finite norm; 2 row.* the first is row 1"),
    ],
)
def test_bad_input_raises_a_clear_error(make_args, message):
    with pytest.raises(RuntimeError, match=message):
        torch.ops.torch_al.kcenter_greedy(*make_args())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_x_is_rejected_naming_the_row(bad):
    x = torch.randn(6, 3)
    x[4, 1] = bad
    x[5, 0] = bad
    with pytest.raises(RuntimeError, match="x must be finite, got 2 row.* the first is row 4"):
        torch_al.kcenter_greedy(x, 2)


def test_module_binds_hyper_parameters():
    selector = torch_al.KCenterGreedy(4, metric="cosine", first=2)
    x = torch.randn(30, 5)
    assert torch.equal(selector(x)[0], torch_al.kcenter_greedy(x, 4, first=2, metric="cosine")[0])
    with pytest.raises(ValueError, match="metric must be one of"):
        torch_al.KCenterGreedy(3, metric="l1")
    with pytest.raises(ValueError, match="k must be >= 0"):
        torch_al.KCenterGreedy(-1)


def test_opcheck():
    x = torch.randn(40, 6)
    mask = torch.zeros(40, dtype=torch.bool)
    mask[:25] = True
    samples = [
        (x, 5, None, None, "euclidean", None),
        (x, 5, torch.tensor([3, 7]), None, "cosine", None),
        (x.double(), 3, mask, None, "euclidean", ~mask & (torch.arange(40) > 30)),
        (x, 0, None, 2, "euclidean", None),
        (torch.randn(0, 3), 0, None, None, "euclidean", None),
    ]
    for args in samples:
        torch.library.opcheck(torch.ops.torch_al.kcenter_greedy.default, args)


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_fullgraph(backend):
    def select(x: torch.Tensor, labeled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        indices, min_dist = torch_al.kcenter_greedy(torch.nn.functional.normalize(x, dim=1), 6, labeled)
        return indices, min_dist.max()

    x, labeled = torch.randn(50, 8), torch.tensor([1, 2, 3])
    result = torch.compile(select, fullgraph=True, backend=backend)(x, labeled)
    expected = select(x, labeled)
    assert torch.equal(result[0], expected[0])
    assert_close(result[1], expected[1])


def test_export():
    exported = torch.export.export(torch_al.KCenterGreedy(4), (torch.randn(20, 3), torch.tensor([0, 5])))
    x, labeled = torch.randn(20, 3), torch.tensor([0, 5])
    assert torch.equal(exported.module()(x, labeled)[0], torch_al.kcenter_greedy(x, 4, labeled)[0])


def test_torchscript_roundtrip_in_fresh_process(tmp_path):
    path = tmp_path / "kcenter.pt"
    torch.jit.script(torch_al.KCenterGreedy(3, first=1)).save(str(path))
    output = run_in_fresh_process(
        f"""
        import torch, torch_al
        module = torch.jit.load({str(path)!r})
        x = torch.arange(20.0).reshape(10, 2) ** 2
        print(module(x)[0].tolist(), module(x, torch.tensor([9]))[0].tolist())
        """
    )
    x = torch.arange(20.0).reshape(10, 2) ** 2
    expected = (torch_al.kcenter_greedy(x, 3, first=1)[0].tolist(), torch_al.kcenter_greedy(x, 3, torch.tensor([9]))[0].tolist())
    assert output.strip() == f"{expected[0]} {expected[1]}"


@pytest.mark.needs_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("initial_size", [0, 5, 200])
def test_cpu_and_cuda_agree_bit_for_bit(dtype, metric, initial_size):
    x = (torch.randn(3000, 70) + 3).to(dtype)
    initial = torch.randperm(3000)[:initial_size] if initial_size else None
    cpu = torch_al.kcenter_greedy(x, 50, initial, metric=metric)
    cuda = torch_al.kcenter_greedy(x.cuda(), 50, None if initial is None else initial.cuda(), metric=metric)
    assert torch.equal(cpu[0], cuda[0].cpu())
    assert torch.equal(cpu[1], cuda[1].cpu())


@pytest.mark.needs_cuda
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_initial_centers_ignore_the_global_tf32_setting(metric):
    """The nearest initial center of each point comes from exact float32 products even where the
    user allowed TF32: rounded products would name other centers for near ties."""
    generator = torch.Generator().manual_seed(0)
    x = (torch.randn(3000, 70, generator=generator) + 3).cuda()
    initial = torch.randperm(3000, generator=generator)[:200].cuda()
    exact = torch_al.kcenter_greedy(x, 50, initial, metric=metric)
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        loose = torch_al.kcenter_greedy(x, 50, initial, metric=metric)
    finally:
        torch.set_float32_matmul_precision(before)
    assert torch.equal(exact[0], loose[0]) and torch.equal(exact[1], loose[1])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("dims", [0, 1, 3, 31, 33, 64, 128])
def test_low_dimensional_passes_equal_the_per_point_pass_bit_for_bit(dtype, metric, dims):
    """Up to D = 128 the picks run through points packed in panels, vectorised across points; a
    loop of kcenter_greedy_step (the per-point pass) must give the same picks and distances."""
    generator = torch.Generator().manual_seed(dims)
    x = (torch.randn(1000, dims, generator=generator) * 3 + 1).to(dtype)
    x[7] = x[3]  # a tie: the lower index must win both ways
    if dims == 0 and metric == "cosine":  # no row has a norm to scale by
        with pytest.raises(RuntimeError, match="needs rows with a nonzero, finite norm"):
            torch_al.kcenter_greedy(x, 40, first=5, metric=metric)
        return
    picks, distances = torch_al.kcenter_greedy(x, 40, first=5, metric=metric)
    distance_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    min_sq = torch.full((1000,), float("inf"), dtype=distance_dtype)
    selectable = torch.ones(1000, dtype=torch.bool)
    stepped, nxt = [], 5
    for _ in range(40):
        stepped.append(nxt)
        selectable[nxt] = False
        nxt = int(torch_al.kcenter_greedy_step(x, x[nxt : nxt + 1], min_sq, selectable, metric)[1])
    assert picks.tolist() == stepped
    finished = min_sq / 2 if metric == "cosine" else min_sq.sqrt()
    assert torch.equal(distances, finished.to(distances.dtype))
