"""torch_al::facility_location_greedy against a dense float64 plain greedy over the materialised similarity."""

import pytest
import torch
from common_utils import cpu_and_cuda, run_in_fresh_process
from torch.testing import assert_close

import torch_al


def reference_similarity(a: torch.Tensor, b: torch.Tensor, kernel: str = "dot", gamma: float = 1.0) -> torch.Tensor:
    a, b = a.double().cpu(), b.double().cpu()
    if kernel == "gaussian":
        return torch.exp(-gamma * (a[:, None, :] - b[None, :, :]).square().sum(2))
    return (a @ b.T).clamp(min=0)


def reference_facility_location(candidates: torch.Tensor, universe: torch.Tensor, count: int, initial=None, kernel="dot", gamma=1.0, weights=None):
    """Plain greedy: every candidate's gain recomputed from the K x N similarity at every pick."""
    similarity = reference_similarity(candidates, universe, kernel, gamma)  # [K, N]
    weights = torch.ones(universe.shape[0], dtype=torch.float64) if weights is None else weights.double().cpu()
    cover = torch.zeros(universe.shape[0], dtype=torch.float64)
    if initial is not None and initial.shape[0] > 0:
        cover = reference_similarity(initial, universe, kernel, gamma).amax(0)
    taken = torch.zeros(candidates.shape[0], dtype=torch.bool)
    picks, gains = [], []
    for _ in range(count):
        gain = (weights * (similarity - cover).clamp(min=0)).sum(1)
        gain[taken] = -1
        pick = int(gain.argmax())  # the first maximum: ties to the lower index
        picks.append(pick)
        gains.append(float(gain[pick]))
        taken[pick] = True
        cover = torch.maximum(cover, similarity[pick])
    return torch.tensor(picks, dtype=torch.long), torch.tensor(gains, dtype=torch.float64)


def objective(candidates: torch.Tensor, universe: torch.Tensor, picks: torch.Tensor) -> float:
    if picks.numel() == 0:
        return 0.0
    return float((candidates[picks].double() @ universe.double().T).clamp(min=0).amax(0).sum())


def assert_matches_reference(candidates, universe, count, atol=1e-9):
    picks, gains = torch_al.facility_location_greedy(candidates, universe, count)
    expected_picks, expected_gains = reference_facility_location(candidates, universe, count)
    assert picks.dtype == torch.int64 and picks.device == candidates.device
    assert gains.dtype == candidates.dtype and gains.shape == (count,)
    assert picks.cpu().tolist() == expected_picks.tolist()
    assert_close(gains.double().cpu(), expected_gains, atol=atol, rtol=1e-5)
    return picks, gains


def normalised(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=1)


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_reference_on_random_data(device, dtype):
    generator = torch.Generator().manual_seed(0)
    for _ in range(4):
        k = int(torch.randint(1, 60, (), generator=generator))
        n = int(torch.randint(1, 700, (), generator=generator))  # up to three tiles, the last one partial
        d = int(torch.randint(1, 40, (), generator=generator))
        count = int(torch.randint(0, k + 1, (), generator=generator))
        candidates = normalised(torch.randn(k, d, generator=generator, dtype=torch.float64))
        universe = normalised(torch.randn(n, d, generator=generator, dtype=torch.float64))
        assert_matches_reference(candidates.to(device, dtype), universe.to(device, dtype), count, atol=1e-4)


def test_gains_sum_to_the_objective_and_never_increase():
    candidates, universe = normalised(torch.randn(40, 8)), normalised(torch.randn(300, 8))
    picks, gains = torch_al.facility_location_greedy(candidates.double(), universe.double(), 40)
    assert (gains[1:] <= gains[:-1]).all()
    assert_close(float(gains.sum()), objective(candidates, universe, picks))


def test_candidates_drawn_from_the_universe():
    universe = normalised(torch.randn(500, 16, dtype=torch.float64))
    candidates = universe[torch.randperm(500)[:120]]
    assert_matches_reference(candidates, universe, 30)


def integer_points(generator: torch.Generator, rows: int, dims: int) -> torch.Tensor:
    """Small integers: every similarity and gain is exact in float32, so ties are exact ties."""
    return torch.randint(-2, 3, (rows, dims), generator=generator).float()


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_duplicate_candidates_and_exact_ties_go_to_the_lower_index(device):
    generator = torch.Generator().manual_seed(3)
    base = integer_points(generator, 6, 5)
    candidates = base.repeat(3, 1)  # rows i, i + 6, i + 12 coincide
    universe = integer_points(generator, 50, 5)
    picks, gains = assert_matches_reference(candidates.to(device), universe.to(device), 18)
    assert picks[:6].max() < 6  # the first copy of each row before any other
    # Once a row's copy is picked its duplicates gain nothing; zero gains go in index order.
    zero = (gains == 0).nonzero().flatten().tolist()
    assert picks[zero].tolist() == sorted(picks[zero].tolist())


def test_count_equal_to_k_picks_every_candidate_once():
    candidates, universe = torch.randn(25, 4, dtype=torch.float64), torch.randn(90, 4, dtype=torch.float64)
    picks, _ = assert_matches_reference(candidates, universe, 25)
    assert sorted(picks.tolist()) == list(range(25))


def test_single_universe_point():
    candidates = torch.tensor([[1.0, 0.0], [0.6, 0.8], [-1.0, 0.0], [0.8, 0.6]], dtype=torch.float64)
    universe = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    picks, gains = assert_matches_reference(candidates, universe, 4)
    assert picks.tolist() == [0, 1, 2, 3] and gains.tolist() == [1.0, 0.0, 0.0, 0.0]


def test_zero_rows_are_similar_to_nothing():
    candidates = torch.tensor([[0.0, 0.0], [0.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    universe = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    picks, gains = assert_matches_reference(candidates, universe, 4)
    assert picks.tolist() == [3, 1, 0, 2] and gains.tolist() == [2.0, 1.0, 0.0, 0.0]


def test_negative_similarities_count_as_zero():
    candidates = torch.tensor([[-1.0], [1.0]])
    universe = torch.tensor([[1.0], [2.0], [-5.0]])
    picks, gains = torch_al.facility_location_greedy(candidates, universe, 2)
    # Candidate 0 gains 5 on the last point only, candidate 1 gains 1 + 2: their negative similarities add nothing.
    assert picks.tolist() == [0, 1] and gains.tolist() == [5.0, 3.0]


def test_empty_inputs():
    picks, gains = torch_al.facility_location_greedy(torch.randn(5, 3), torch.randn(0, 3), 3)
    assert picks.tolist() == [0, 1, 2] and gains.tolist() == [0.0, 0.0, 0.0]
    picks, gains = torch_al.facility_location_greedy(torch.randn(0, 3), torch.randn(4, 3), 0)
    assert picks.shape == (0,) and gains.shape == (0,)
    picks, _ = torch_al.facility_location_greedy(torch.randn(3, 0), torch.randn(4, 0), 2)
    assert picks.tolist() == [0, 1]


def test_strided_inputs_match_contiguous():
    candidates, universe = torch.randn(30, 6), torch.randn(400, 6)
    expected = torch_al.facility_location_greedy(candidates, universe, 10)
    for c, u in ((candidates.t().contiguous().t(), universe[:, None, :].expand(400, 2, 6)[:, 0]),):
        result = torch_al.facility_location_greedy(c, u, 10)
        assert torch.equal(result[0], expected[0]) and torch.equal(result[1], expected[1])


def _nan_at(shape, row):
    x = torch.randn(*shape)
    x[row, 0] = float("nan")
    return x


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda: (torch.randn(5), torch.randn(4, 5), 1), r"candidates must be 2-D \(K, D\), got shape \[5\]"),
        (lambda: (torch.randn(4, 5), torch.randn(2, 4, 5), 1), r"universe must be 2-D \(N, D\), got shape \[2, 4, 5\]"),
        (lambda: (torch.ones(4, 2, dtype=torch.int64), torch.ones(3, 2, dtype=torch.int64), 1), "candidates must be float32 or float64, got Long"),
        (lambda: (torch.randn(4, 2).half(), torch.randn(3, 2).half(), 1), "candidates must be float32 or float64, got Half"),
        (lambda: (torch.randn(4, 2), torch.randn(3, 2).double(), 1), "universe must have the dtype of candidates, Float, got Double"),
        (lambda: (torch.randn(4, 2), torch.randn(3, 5), 1), r"universe must have D=2 columns like candidates \[4, 2\], got shape \[3, 5\]"),
        (lambda: (torch.randn(4, 2), torch.randn(3, 2), 5), r"count must lie in \[0, K\] with K=4 candidates, got 5"),
        (lambda: (torch.randn(4, 2), torch.randn(3, 2), -1), r"count must lie in \[0, K\] with K=4 candidates, got -1"),
        (lambda: (_nan_at((6, 2), 4), torch.randn(3, 2), 1), "candidates must be finite, got 1 row.* the first is row 4"),
        (lambda: (torch.randn(6, 2), torch.randn(3, 2).index_fill_(0, torch.tensor([1, 2]), float("inf")), 1), "universe must be finite, got 2 row.* the first is row 1"),
        (lambda: (torch.randn(4, 2), torch.randn(3, 2), 1, torch.randn(2, 3)), r"initial must be \(L, D=2\) rows, got shape \[2, 3\]"),
        (lambda: (torch.randn(4, 2), torch.randn(3, 2), 1, torch.randn(2, 2).double()), "initial must have the dtype of candidates, Float, got Double"),
        (lambda: (torch.randn(4, 2), torch.randn(3, 2), 1, _nan_at((3, 2), 2)), "initial must be finite, got 1 row.* the first is row 2"),
        (lambda: (torch.randn(4, 2), torch.randn(3, 2), 1, None, "rbf"), 'kernel must be "dot" or "gaussian", got "rbf"'),
        (lambda: (torch.randn(4, 2), torch.randn(3, 2), 1, None, "gaussian", 0.0), "gamma must be finite and > 0 for the gaussian kernel, got 0"),
        (lambda: (torch.randn(4, 2), torch.randn(3, 2), 1, None, "dot", 1.0, torch.ones(4)), r"weights must be 1-D with one entry per universe point \(N=3\), got shape \[4\]"),
        (lambda: (torch.randn(4, 2), torch.randn(3, 2), 1, None, "dot", 1.0, torch.ones(3, 1)), r"weights must be 1-D with one entry per universe point \(N=3\), got shape \[3, 1\]"),
        (lambda: (torch.randn(4, 2), torch.randn(3, 2), 1, None, "dot", 1.0, torch.ones(3).double()), "weights must have the dtype of candidates, Float, got Double"),
        (lambda: (torch.randn(4, 2), torch.randn(3, 2), 1, None, "dot", 1.0, torch.tensor([1.0, -0.5, -1.0])), r"weights must be finite and >= 0, got 2 bad weight\(s\); the first is at 1"),
        (lambda: (torch.randn(4, 2), torch.randn(3, 2), 1, None, "dot", 1.0, torch.tensor([1.0, 1.0, float("nan")])), r"weights must be finite and >= 0, got 1 bad weight\(s\); the first is at 2"),
    ],
)
def test_bad_input_raises_a_clear_error(make_args, message):
    with pytest.raises(RuntimeError, match=message):
        torch.ops.torch_al.facility_location_greedy(*make_args())


def test_inputs_on_different_devices_are_rejected():
    with pytest.raises(RuntimeError, match="universe is on meta but candidates are on cpu"):
        torch.ops.torch_al.facility_location_greedy(torch.randn(4, 2), torch.randn(3, 2, device="meta"), 1)


def test_module_binds_the_count():
    candidates, universe = torch.randn(20, 4), torch.randn(60, 4)
    selector = torch_al.FacilityLocationGreedy(5)
    assert torch.equal(selector(candidates, universe)[0], torch_al.facility_location_greedy(candidates, universe, 5)[0])
    with pytest.raises(ValueError, match="count must be an int >= 0, got -1"):
        torch_al.FacilityLocationGreedy(-1)


def test_opcheck():
    samples = [
        (torch.randn(20, 5), torch.randn(300, 5), 6),
        (torch.randn(20, 5, dtype=torch.float64), torch.randn(7, 5, dtype=torch.float64), 20),
        (torch.randn(4, 3), torch.randn(0, 3), 2),
        (torch.randn(0, 3), torch.randn(5, 3), 0),
        (torch.randn(20, 5), torch.randn(300, 5), 6, torch.randn(3, 5), "gaussian", 0.5),
        (torch.randn(20, 5), torch.randn(300, 5), 6, None, "gaussian", 0.5, torch.rand(300)),
    ]
    for args in samples:
        torch.library.opcheck(torch.ops.torch_al.facility_location_greedy.default, args)


def test_compile_fullgraph():
    def select(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        unit = torch.nn.functional.normalize(features, dim=1)
        picks, gains = torch_al.facility_location_greedy(unit[:10], unit, 4)
        return picks, gains.sum()

    features = torch.randn(50, 8)
    result = torch.compile(select, fullgraph=True, backend="aot_eager")(features)
    expected = select(features)
    assert torch.equal(result[0], expected[0])
    assert_close(result[1], expected[1])


def test_export():
    candidates, universe = torch.randn(12, 3), torch.randn(40, 3)
    exported = torch.export.export(torch_al.FacilityLocationGreedy(4), (candidates, universe))
    assert torch.equal(exported.module()(candidates, universe)[0], torch_al.facility_location_greedy(candidates, universe, 4)[0])


def test_torchscript_roundtrip_in_fresh_process(tmp_path):
    path = tmp_path / "facility_location.pt"
    torch.jit.script(torch_al.FacilityLocationGreedy(3)).save(str(path))
    output = run_in_fresh_process(
        f"""
        import torch, torch_al
        module = torch.jit.load({str(path)!r})
        x = torch.arange(24.0).reshape(12, 2).sin()
        print(module(x, x)[0].tolist())
        """
    )
    x = torch.arange(24.0).reshape(12, 2).sin()
    assert output.strip() == str(torch_al.facility_location_greedy(x, x, 3)[0].tolist())


@pytest.mark.needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_and_cuda_agree_bit_for_bit(dtype):
    candidates = normalised(torch.randn(700, 48)).to(dtype)
    universe = normalised(torch.randn(3000, 48)).to(dtype)
    cpu = torch_al.facility_location_greedy(candidates, universe, 150)
    cuda = torch_al.facility_location_greedy(candidates.cuda(), universe.cuda(), 150)
    assert torch.equal(cpu[0], cuda[0].cpu())
    assert torch.equal(cpu[1], cuda[1].cpu())


@pytest.mark.needs_cuda
def test_inputs_on_cpu_and_cuda_are_rejected():
    with pytest.raises(RuntimeError, match="universe is on cpu but candidates are on cuda:0"):
        torch.ops.torch_al.facility_location_greedy(torch.randn(4, 2, device="cuda"), torch.randn(3, 2), 1)


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kernel, gamma", [("dot", 1.0), ("gaussian", 1.0), ("gaussian", 7.5)])
def test_initial_rows_and_the_gaussian_kernel_match_the_reference(device, dtype, kernel, gamma):
    generator = torch.Generator().manual_seed(int(gamma * 10))
    for k, n, d, labeled in ((30, 300, 8, 5), (64, 700, 33, 0), (5, 1, 2, 3)):
        universe = normalised(torch.randn(n, d, generator=generator, dtype=torch.float64))
        candidates = universe[: min(k, n)] if n >= k else normalised(torch.randn(k, d, generator=generator, dtype=torch.float64))
        initial = normalised(torch.randn(labeled, d, generator=generator, dtype=torch.float64))
        count = min(10, candidates.shape[0])
        picks, gains = torch_al.facility_location_greedy(
            candidates.to(device, dtype), universe.to(device, dtype), count, initial.to(device, dtype), kernel, gamma
        )
        want_picks, want_gains = reference_facility_location(candidates, universe, count, initial, kernel, gamma)
        assert picks.cpu().tolist() == want_picks.tolist()
        assert_close(gains.double().cpu(), want_gains, atol=1e-4 if dtype == torch.float32 else 1e-9, rtol=1e-5)


def test_gaussian_padding_points_add_nothing():
    # 257 points: the second tile holds one point and 255 padding rows, which must not count.
    universe = torch.zeros(257, 2, dtype=torch.float64)
    picks, gains = torch_al.facility_location_greedy(universe[:1], universe, 1, kernel="gaussian", gamma=3.0)
    assert picks.tolist() == [0] and gains.tolist() == [257.0]


def test_matches_scikit_activeml_max_herding(monkeypatch):
    np = pytest.importorskip("numpy")
    max_herding = pytest.importorskip("skactiveml.pool._max_herding")
    monkeypatch.setattr(max_herding, "rand_argmax", lambda values, random_state=None: np.array([np.nanargmax(values)]))
    generator = torch.Generator().manual_seed(3)
    x = normalised(torch.randn(300, 5, generator=generator, dtype=torch.float64))
    labeled = torch.tensor([4, 50, 51, 299])
    unlabeled = torch.ones(300, dtype=torch.bool)
    unlabeled[labeled] = False
    y = np.full(300, np.nan)
    y[labeled.numpy()] = 0
    theirs = max_herding.MaxHerding(metric_dict={"gamma": 2.0}, random_state=0).query(x.numpy(), y, batch_size=12)
    pool_rows = unlabeled.nonzero().flatten()
    picks, _ = torch_al.facility_location_greedy(x[pool_rows], x[pool_rows], 12, x[labeled], "gaussian", 2.0)
    assert pool_rows[picks].tolist() == theirs.tolist()


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kernel", ["dot", "gaussian"])
def test_weighted_points_match_the_reference(device, dtype, kernel):
    generator = torch.Generator().manual_seed(11)
    for k, n, d, labeled in ((40, 600, 6, 4), (20, 257, 3, 0)):
        universe = normalised(torch.randn(n, d, generator=generator, dtype=torch.float64))
        candidates = universe[:k]
        initial = normalised(torch.randn(labeled, d, generator=generator, dtype=torch.float64))
        weights = torch.rand(n, generator=generator, dtype=torch.float64)
        weights[::7] = 0  # points that count for nothing
        picks, gains = torch_al.facility_location_greedy(
            candidates.to(device, dtype), universe.to(device, dtype), 15, initial.to(device, dtype), kernel, 2.0, weights.to(device, dtype)
        )
        want_picks, want_gains = reference_facility_location(candidates, universe, 15, initial, kernel, 2.0, weights)
        assert picks.cpu().tolist() == want_picks.tolist()
        assert_close(gains.double().cpu(), want_gains, atol=1e-4 if dtype == torch.float32 else 1e-9, rtol=1e-5)


def test_unit_weights_change_nothing_and_zero_weights_drop_points():
    universe = normalised(torch.randn(400, 5, dtype=torch.float64))
    plain = torch_al.facility_location_greedy(universe[:50], universe, 12, None, "gaussian", 3.0)
    ones = torch_al.facility_location_greedy(universe[:50], universe, 12, None, "gaussian", 3.0, torch.ones(400, dtype=torch.float64))
    assert torch.equal(plain[0], ones[0]) and torch.equal(plain[1], ones[1])
    # Weighing out the second half is covering the first half alone.
    half = torch.cat([torch.ones(200), torch.zeros(200)]).double()
    weighted = torch_al.facility_location_greedy(universe[:50], universe, 12, None, "gaussian", 3.0, half)
    first_half = torch_al.facility_location_greedy(universe[:50], universe[:200], 12, None, "gaussian", 3.0)
    assert torch.equal(weighted[0], first_half[0])
    assert_close(weighted[1], first_half[1])
