"""torch_al::kcenter_greedy_step against a float64 reference, and a loop of steps against
kcenter_greedy itself, bit for bit: the property the distributed k-center greedy rests on."""

import pytest
import torch
from common_utils import cpu_and_cuda
from torch.testing import assert_close

import torch_al

DIRECT_CENTERS_LIMIT = 16  # kKCenterDirectInitialCenters: more centers take the matrix-product path


def reference_step(x, centers, min_sq, selectable, metric="euclidean"):
    """(new min_sq, value, index) in float64 from differences; argmax takes the first maximum."""
    x, centers = x.double(), centers.double()
    if metric == "cosine":
        x, centers = x / x.norm(dim=1, keepdim=True), centers / centers.norm(dim=1, keepdim=True)
    squared = ((x[:, None, :] - centers[None, :, :]) ** 2).sum(-1).min(1).values
    lowered = torch.minimum(min_sq.double(), squared)
    masked = torch.where(selectable, lowered, torch.tensor(-1.0, dtype=torch.float64))
    if not selectable.any():
        return lowered, -1.0, -1
    return lowered, float(masked.max()), int(masked.argmax())


def fresh_min_sq(x: torch.Tensor) -> torch.Tensor:
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    return torch.full((x.shape[0],), float("inf"), dtype=dtype, device=x.device)


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("centers_count", [1, 5, 40])
def test_matches_reference_on_random_data(device, metric, centers_count):
    generator = torch.Generator().manual_seed(centers_count)
    for _ in range(3):
        n, d = int(torch.randint(1, 90, (), generator=generator)), int(torch.randint(1, 40, (), generator=generator))
        x = torch.randn(n, d, generator=generator)
        centers = torch.randn(centers_count, d, generator=generator)
        min_sq = torch.where(torch.rand(n, generator=generator) < 0.3, 0.5, float("inf"))
        selectable = torch.rand(n, generator=generator) < 0.7
        expected_min_sq, expected_value, expected_index = reference_step(x, centers, min_sq, selectable, metric)
        on = min_sq.to(device)
        value, index = torch_al.kcenter_greedy_step(x.to(device), centers.to(device), on, selectable.to(device), metric)
        assert value.dim() == 0 and index.dim() == 0 and index.dtype == torch.int64 and value.device == x.to(device).device
        assert_close(on.double().cpu(), expected_min_sq, atol=1e-5, rtol=1e-5)
        assert int(index) == expected_index
        assert float(value) == pytest.approx(expected_value, abs=1e-5, rel=1e-5)


def steps_as_kcenter_greedy(x, k, initial, metric):
    """kcenter_greedy's picks rebuilt from steps whose centers are passed as rows."""
    n = x.shape[0]
    min_sq, selectable = fresh_min_sq(x), torch.ones(n, dtype=torch.bool, device=x.device)
    picks = []
    if initial is None:
        index = torch.tensor(0)
    else:
        initial = initial.unique()  # kcenter_greedy applies its initial set in ascending order
        selectable[initial] = False
        _, index = torch_al.kcenter_greedy_step(x, x[initial], min_sq, selectable, metric)
    for _ in range(k):
        pick = int(index)
        picks.append(pick)
        selectable[pick] = False
        _, index = torch_al.kcenter_greedy_step(x, x[pick : pick + 1], min_sq, selectable, metric)
    if not picks and initial is None:
        return torch.tensor(picks, dtype=torch.int64), min_sq
    return torch.tensor(picks, dtype=torch.int64), min_sq / 2 if metric == "cosine" else min_sq.sqrt()


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("initial_size", [0, 3, DIRECT_CENTERS_LIMIT + 24])
def test_a_loop_of_steps_is_kcenter_greedy_bit_for_bit(device, dtype, metric, initial_size):
    generator = torch.Generator().manual_seed(7 + initial_size)
    x = (torch.randn(700, 37, generator=generator) + 2).to(dtype).to(device)
    initial = torch.randperm(700, generator=generator)[:initial_size].to(device) if initial_size else None
    expected = torch_al.kcenter_greedy(x, 30, initial, metric=metric)
    picks, min_dist = steps_as_kcenter_greedy(x, 30, initial, metric)
    assert torch.equal(picks, expected[0].cpu())
    assert torch.equal(min_dist, expected[1])


def test_ties_go_to_the_lower_index_and_nothing_selectable_gives_minus_one():
    x = torch.tensor([[0.0], [2.0], [-2.0], [1.0]])
    min_sq = fresh_min_sq(x)
    value, index = torch_al.kcenter_greedy_step(x, torch.zeros(1, 1), min_sq, torch.ones(4, dtype=torch.bool))
    assert (float(value), int(index)) == (4.0, 1)
    assert min_sq.tolist() == [0.0, 4.0, 4.0, 1.0]
    value, index = torch_al.kcenter_greedy_step(x, torch.ones(1, 1), min_sq, torch.zeros(4, dtype=torch.bool))
    assert (float(value), int(index)) == (-1.0, -1)
    assert min_sq.tolist() == [0.0, 1.0, 4.0, 0.0]  # still lowered


def test_empty_pool():
    x = torch.empty(0, 3)
    value, index = torch_al.kcenter_greedy_step(x, torch.ones(2, 3), fresh_min_sq(x), torch.ones(0, dtype=torch.bool))
    assert (float(value), int(index)) == (-1.0, -1)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_nan_points_get_nan_and_never_win(metric):
    x = torch.tensor([[1.0, 0.0], [float("nan"), 0.0], [0.0, 3.0], [0.0, 0.0]])
    min_sq = fresh_min_sq(x)
    value, index = torch_al.kcenter_greedy_step(x, torch.tensor([[1.0, 0.1]]), min_sq, torch.ones(4, dtype=torch.bool), metric)
    nan_rows = [1, 3] if metric == "cosine" else [1]  # a zero row has no cosine direction
    assert min_sq[nan_rows].isnan().all() and not min_sq[[0, 2]].isnan().any()
    assert int(index) == 2 and float(value) == float(min_sq[2])
    torch_al.kcenter_greedy_step(x, torch.tensor([[5.0, 5.0]]), min_sq, torch.ones(4, dtype=torch.bool), metric)
    assert min_sq[nan_rows].isnan().all()  # a later finite distance does not make them candidates again


def test_many_centers_use_the_product_path_and_still_match_the_reference():
    generator = torch.Generator().manual_seed(3)
    x, centers = torch.randn(300, 12, generator=generator) + 50, torch.randn(60, 12, generator=generator) + 50
    min_sq, selectable = fresh_min_sq(x), torch.ones(300, dtype=torch.bool)
    value, index = torch_al.kcenter_greedy_step(x, centers, min_sq, selectable)
    expected_min_sq, expected_value, expected_index = reference_step(x, centers, fresh_min_sq(x), selectable)
    assert_close(min_sq.double(), expected_min_sq, atol=1e-4, rtol=1e-5)
    assert int(index) == expected_index


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda x, m, s: (x[0], x[:1], m, s), "x must be 2-D"),
        (lambda x, m, s: (x.long(), x[:1].long(), m, s), "x must be a floating tensor"),
        (lambda x, m, s: (x, x[:0], m, s), r"centers must be \(S, D\) with S >= 1"),
        (lambda x, m, s: (x, x[:1, :2], m, s), "D = 3"),
        (lambda x, m, s: (x, x[:1].double(), m, s), "centers must have x's dtype"),
        (lambda x, m, s: (x, x[:1], m.double(), s), "min_sq must be a contiguous Float tensor of N = 5"),
        (lambda x, m, s: (x, x[:1], m[:4], s), "min_sq must be"),
        (lambda x, m, s: (x, x[:1], torch.zeros(10)[::2], s), r"not contiguous"),
        (lambda x, m, s: (x, x[:1], m, s.float()), "selectable must be a bool tensor of N = 5"),
        (lambda x, m, s: (x, x[:1], m, s, "l1"), "metric must be 'euclidean' or 'cosine'"),
    ],
)
def test_bad_input_raises_a_clear_error(make_args, message):
    x = torch.randn(5, 3)
    with pytest.raises(RuntimeError, match=message):
        torch_al.kcenter_greedy_step(*make_args(x, fresh_min_sq(x), torch.ones(5, dtype=torch.bool)))


def test_outputs_are_not_differentiable_and_min_sq_is_versioned_as_written():
    x = torch.randn(10, 3, requires_grad=True)
    min_sq = fresh_min_sq(x)
    value, index = torch_al.kcenter_greedy_step(x, x[:2].detach(), min_sq, torch.ones(10, dtype=torch.bool))
    assert not value.requires_grad and not index.requires_grad
    assert min_sq._version == 1
    weights = torch.ones(10, requires_grad=True)
    loss = (weights * min_sq).sum()  # saves min_sq for its backward
    torch_al.kcenter_greedy_step(x.detach(), x[:1].detach(), min_sq, torch.ones(10, dtype=torch.bool))
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_opcheck():
    x = torch.randn(40, 6)
    selectable = torch.rand(40) < 0.5
    samples = [
        (x, x[:2] + 1, fresh_min_sq(x), selectable, "euclidean"),
        (x, torch.randn(30, 6), fresh_min_sq(x), selectable, "cosine"),
        (x.double(), torch.randn(3, 6).double(), fresh_min_sq(x.double()), ~selectable, "euclidean"),
        (torch.randn(0, 6), x[:1], torch.empty(0), torch.ones(0, dtype=torch.bool), "euclidean"),
        (x.clone().requires_grad_(), x[:3].clone().requires_grad_(), fresh_min_sq(x), selectable, "euclidean"),
    ]
    for args in samples:
        torch.library.opcheck(torch.ops.torch_al.kcenter_greedy_step.default, args)


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_fullgraph(backend):
    def farthest(x: torch.Tensor, centers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        min_sq = torch.full((x.shape[0],), float("inf"))
        value, index = torch_al.kcenter_greedy_step(x, centers, min_sq, x[:, 0] > -1)
        return value, index, min_sq

    x, centers = torch.randn(50, 8), torch.randn(3, 8)
    result = torch.compile(farthest, fullgraph=True, backend=backend)(x, centers)
    expected = farthest(x, centers)
    for got, want in zip(result, expected):
        assert torch.equal(got, want)


def test_torchscript():
    @torch.jit.script
    def farthest(x: torch.Tensor, centers: torch.Tensor, min_sq: torch.Tensor, selectable: torch.Tensor):
        return torch.ops.torch_al.kcenter_greedy_step(x, centers, min_sq, selectable, "cosine")

    x, centers, selectable = torch.randn(30, 4), torch.randn(2, 4), torch.rand(30) < 0.5
    scripted_min_sq, eager_min_sq = fresh_min_sq(x), fresh_min_sq(x)
    scripted = farthest(x, centers, scripted_min_sq, selectable)
    eager = torch_al.kcenter_greedy_step(x, centers, eager_min_sq, selectable, "cosine")
    assert torch.equal(scripted[1], eager[1]) and torch.equal(scripted_min_sq, eager_min_sq)


@pytest.mark.needs_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("centers_count", [1, 200])
def test_cpu_and_cuda_agree_bit_for_bit(dtype, metric, centers_count):
    x, centers = (torch.randn(3000, 70) + 3).to(dtype), (torch.randn(centers_count, 70) + 3).to(dtype)
    selectable = torch.rand(3000) < 0.8
    cpu_min_sq, cuda_min_sq = fresh_min_sq(x), fresh_min_sq(x).cuda()
    cpu = torch_al.kcenter_greedy_step(x, centers, cpu_min_sq, selectable, metric)
    cuda = torch_al.kcenter_greedy_step(x.cuda(), centers.cuda(), cuda_min_sq, selectable.cuda(), metric)
    assert torch.equal(cpu_min_sq, cuda_min_sq.cpu())
    assert torch.equal(cpu[0], cuda[0].cpu()) and torch.equal(cpu[1], cuda[1].cpu())
