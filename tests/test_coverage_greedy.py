"""torch_al::coverage_greedy against a dense float64 greedy: picks, gains, ties and the ball's edge."""

import math

import pytest
import torch
from common_utils import cpu_and_cuda

import torch_al


def dense_coverage_greedy(points, radius, count, initial=None, exclude=None):
    """ProbCover's greedy over the whole N x N ball matrix in float64, ties to the lower row."""
    x = points.double().cpu()
    inside = (x[:, None, :] - x[None, :, :]).square().sum(2) <= radius * radius
    n = x.shape[0]
    uncovered = torch.ones(n, dtype=torch.bool)
    selectable = torch.ones(n, dtype=torch.bool)
    if initial is not None:
        initial = initial.cpu()
        uncovered &= ~inside[initial].any(0)
        selectable[initial] = False
    if exclude is not None:
        selectable &= ~exclude.cpu()
    picks, gains = [], []
    for _ in range(count):
        degree = torch.where(selectable, (inside & uncovered).sum(1), -1)
        pick = int(degree.argmax())  # the first of equal maxima
        picks.append(pick)
        gains.append(int(degree[pick]))
        uncovered &= ~inside[pick]
        selectable[pick] = False
    return torch.tensor(picks, dtype=torch.int64), torch.tensor(gains, dtype=torch.int64)


def assert_matches_dense(points, radius, count, **options):
    picks, gains = torch_al.coverage_greedy(points, radius, count, **options)
    want_picks, want_gains = dense_coverage_greedy(points, radius, count, **options)
    assert picks.dtype == gains.dtype == torch.int64 and picks.device == points.device
    assert torch.equal(picks.cpu(), want_picks) and torch.equal(gains.cpu(), want_gains)
    return gains


def radius_holding(points, neighbours):
    """A radius whose balls hold about `neighbours` points (from the first rows' distances)."""
    distances = torch.cdist(points[:64].double(), points.double())
    return float(distances.kthvalue(min(neighbours, points.shape[0]), dim=1).values.median())


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n, d, count, neighbours", [(1, 1, 1, 1), (40, 2, 40, 5), (700, 9, 60, 30), (1500, 64, 25, 200)])
def test_random_points_with_initial_and_exclude_match_the_dense_greedy(device, dtype, n, d, count, neighbours):
    generator = torch.Generator().manual_seed(n * 1000 + d)
    points = (torch.randn(n, d, generator=generator) * 2 + 5).to(device, dtype)
    initial = torch.randperm(n, generator=generator)[: n // 10].to(device)
    exclude = (torch.rand(n, generator=generator) < 0.2).to(device)
    exclude[initial] = False
    count = min(count, n - initial.numel() - int(exclude.sum()))
    radius = radius_holding(points, neighbours)
    gains = assert_matches_dense(points, radius, count, initial=initial, exclude=exclude)
    assert torch.all(gains[1:] <= gains[:-1])  # greedy gains never rise


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_grid_points_on_the_balls_edge_are_inside_and_ties_go_to_the_lower_row(device, offset):
    # Integer grid points: many pairs lie exactly at the radius (closed ball), every degree ties with
    # others; the offset makes the products cancel, so the exact recomputation decides.
    side = torch.arange(12, dtype=torch.float32)
    grid = torch.cartesian_prod(side, side, side[:4]) + offset
    points = grid[torch.randperm(grid.shape[0], generator=torch.Generator().manual_seed(3))].to(device)
    for radius in (1.0, 2.0, math.sqrt(5.0)):
        assert_matches_dense(points, radius, 40)


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_more_rows_than_one_block_and_pool_rows_than_one_tile(device):
    generator = torch.Generator().manual_seed(7)
    points = torch.rand(5000, 3, generator=generator).to(device)  # 10 row blocks, 2 pool tiles
    assert_matches_dense(points, 0.08, 30, initial=torch.arange(0, 5000, 9).to(device))


def test_zero_gain_tail_in_row_order():
    points = torch.tensor([[0.0], [10.0], [0.0], [10.0], [20.0]])
    exclude = torch.tensor([False, False, False, False, True])
    picks, gains = torch_al.coverage_greedy(points, 0.5, 4, exclude=exclude)
    # 0 covers rows 0 and 2, 1 covers 1 and 3; row 4 is excluded, so nothing is left to gain.
    assert picks.tolist() == [0, 1, 2, 3] and gains.tolist() == [2, 2, 0, 0]


def test_initial_mask_and_index_list_agree():
    points = torch.randn(300, 4, generator=torch.Generator().manual_seed(1))
    rows = torch.tensor([5, 17, 250])
    mask = torch.zeros(300, dtype=torch.bool)
    mask[rows] = True
    by_rows = torch_al.coverage_greedy(points, 1.0, 20, initial=rows)
    by_mask = torch_al.coverage_greedy(points, 1.0, 20, initial=mask)
    assert all(torch.equal(a, b) for a, b in zip(by_rows, by_mask))
    assert not set(by_rows[0].tolist()) & {5, 17, 250}


def test_empty_and_zero_count():
    picks, gains = torch_al.coverage_greedy(torch.empty(0, 3), 1.0, 0)
    assert picks.shape == gains.shape == (0,)
    picks, gains = torch_al.coverage_greedy(torch.empty(4, 0), 1.0, 2)  # no dimensions: one ball holds all
    assert picks.tolist() == [0, 1] and gains.tolist() == [4, 0]


@pytest.mark.parametrize(
    "points, radius, count, options, message",
    [
        (torch.rand(4), 1.0, 1, {}, r"points must be \(N, D\), got shape \[4\]"),
        (torch.rand(4, 2).half(), 1.0, 1, {}, "points must be float32 or float64, got Half"),
        (torch.rand(4, 2), -1.0, 1, {}, "radius must be finite and >= 0, got -1"),
        (torch.rand(4, 2), math.inf, 1, {}, "radius must be finite and >= 0, got inf"),
        (torch.rand(4, 2), 1.0, -1, {}, "count must be >= 0, got -1"),
        (torch.rand(4, 2), 1.0, 5, {}, r"count=5 is larger than the number of selectable rows, 4"),
        (torch.rand(4, 2), 1.0, 3, {"initial": torch.tensor([0, 1])}, "selectable rows, 2"),
        (torch.rand(4, 2), 1.0, 1, {"initial": torch.tensor([0, 4])}, r"initial indices must lie in \[0, N\) with N=4, got values in \[0, 4\]"),
        (torch.rand(4, 2), 1.0, 1, {"initial": torch.zeros(3, dtype=torch.bool)}, "initial mask has 3 entries but points has N=4"),
        (torch.rand(4, 2), 1.0, 1, {"initial": torch.tensor([0.0])}, "initial must be a 1-D bool mask of N entries or a 1-D int64 index list"),
        (torch.rand(4, 2), 1.0, 1, {"exclude": torch.zeros(4)}, "exclude must be a 1-D bool mask"),
        (torch.rand(4, 2), 1.0, 1, {"exclude": torch.zeros(5, dtype=torch.bool)}, "exclude has 5 entries but points has N=4"),
        (torch.tensor([[0.0, math.nan]]), 1.0, 1, {}, "points contains NaN or inf"),
    ],
)
@pytest.mark.parametrize("device", cpu_and_cuda())
def test_bad_input_is_named(device, points, radius, count, options, message):
    options = {name: value.to(device) for name, value in options.items()}
    with pytest.raises(RuntimeError, match=message):
        torch_al.coverage_greedy(points.to(device), radius, count, **options)


def test_matches_scikit_activeml_probcover_on_identical_inputs(monkeypatch):
    np = pytest.importorskip("numpy")
    prob_cover = pytest.importorskip("skactiveml.pool._prob_cover")
    # scikit-activeml breaks ties at random; with ties to the first, its greedy is ours.
    monkeypatch.setattr(prob_cover, "rand_argmax", lambda values, random_state=None: np.array([np.nanargmax(values)]))
    generator = torch.Generator().manual_seed(11)
    points = torch.randn(400, 6, dtype=torch.float64, generator=generator)
    radius = radius_holding(points, 12)
    labeled = torch.randperm(400, generator=generator)[:15]
    y = np.full(400, np.nan)
    y[labeled.numpy()] = 0
    strategy = prob_cover.ProbCover(deltas=[radius], random_state=0)
    theirs = strategy.query(points.numpy(), y, batch_size=30)
    ours, _ = torch_al.coverage_greedy(points, radius, 30, initial=labeled)
    assert ours.tolist() == theirs.tolist()


def test_opcheck():
    points = torch.randn(200, 5)
    samples = [
        (points, 1.0, 10),
        (points.double(), 1.5, 20, torch.arange(0, 200, 7), torch.rand(200) < 0.3),
        (points, 0.0, 3, torch.rand(200) < 0.5),
        (torch.empty(0, 5), 1.0, 0),
        (points.clone().requires_grad_(), 1.0, 2),
    ]
    for args in samples:
        torch.library.opcheck(torch.ops.torch_al.coverage_greedy.default, args)


def test_outputs_never_require_grad():
    picks, gains = torch_al.coverage_greedy(torch.rand(9, 3, requires_grad=True), 0.5, 2)
    assert not picks.requires_grad and not gains.requires_grad


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_fullgraph(backend):
    def probcover_picks(points: torch.Tensor) -> torch.Tensor:
        normalised = torch.nn.functional.normalize(points, dim=1)
        return torch_al.coverage_greedy(normalised, 0.5, 8)[0]

    points = torch.randn(300, 6)
    assert torch.equal(torch.compile(probcover_picks, fullgraph=True, backend=backend)(points), probcover_picks(points))


def test_torchscript():
    @torch.jit.script
    def picks(points: torch.Tensor, radius: float, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch_al.coverage_greedy(points, radius, count)

    points = torch.randn(150, 3, dtype=torch.float64)
    got = picks(points, 0.7, 12)
    want = dense_coverage_greedy(points, 0.7, 12)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
