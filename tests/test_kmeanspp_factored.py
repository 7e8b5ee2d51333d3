"""torch_al::kmeanspp_factored against a direct float64 reference over the explicit embeddings a ⊗ b."""

import pytest
import torch
from common_utils import cpu_and_cuda, run_in_fresh_process
from kmeanspp_reference import INF, dense_kmeanspp
from torch.testing import assert_close

import torch_al


def reference_kmeanspp(a, b, uniforms, initial=None):
    """D² sampling over e = a ⊗ b formed explicitly."""
    e = torch.einsum("nc,nd->ncd", a.double().cpu(), b.double().cpu()).flatten(1)
    return dense_kmeanspp(e, uniforms, None if initial is None else _mask(initial, len(a)))


def _mask(initial, n):
    mask = torch.zeros(n, dtype=torch.bool)
    mask[initial.cpu().long() if initial.dtype != torch.bool else initial.cpu()] = True
    return mask


def assert_matches_reference(a, b, uniforms, initial=None):
    indices, pick_sq = torch.ops.torch_al.kmeanspp_factored(a, b, uniforms.to(a.device), initial)
    expected_indices, expected_sq = reference_kmeanspp(a, b, uniforms, initial)
    assert indices.dtype == torch.int64 and indices.device == a.device
    assert pick_sq.dtype == torch.float64 and pick_sq.device == a.device
    assert indices.cpu().tolist() == expected_indices.tolist()
    # The factored form cancels: its error is relative to the largest squared norm, not to D².
    scale = float(torch.einsum("nc,nd->ncd", a.double().cpu(), b.double().cpu()).square().sum((1, 2)).max()) if len(a) else 1.0
    assert_close(pick_sq.cpu(), expected_sq, atol=1e-12 * scale, rtol=1e-9)


def random_case(generator, dtype, initial_kind):
    n = int(torch.randint(1, 90, (), generator=generator))
    c = int(torch.randint(1, 12, (), generator=generator))
    d = int(torch.randint(1, 70, (), generator=generator))
    a = torch.randn(n, c, generator=generator).to(dtype)
    b = torch.randn(n, d, generator=generator).to(dtype)
    initial = None
    if initial_kind != "none" and n > 1:
        size = int(torch.randint(1, n, (), generator=generator))
        initial = torch.randperm(n, generator=generator)[:size]
        if initial_kind == "mask":
            initial = _mask(initial, n)
    free = n - (0 if initial is None else int(_mask(initial, n).sum()))
    count = int(torch.randint(0, free + 1, (), generator=generator))
    return a, b, torch.rand(count, generator=generator, dtype=torch.float64), initial


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("initial_kind", ["none", "indices", "mask"])
def test_matches_reference_on_random_data(device, dtype, initial_kind):
    generator = torch.Generator().manual_seed(len(initial_kind) + (dtype == torch.float64))
    for _ in range(6):
        a, b, uniforms, initial = random_case(generator, dtype, initial_kind)
        assert_matches_reference(a.to(device), b.to(device), uniforms, None if initial is None else initial.to(device))


def test_large_initial_set_goes_through_several_tiles():
    generator = torch.Generator().manual_seed(3)
    a, b = torch.randn(2200, 3, generator=generator), torch.randn(2200, 4, generator=generator)
    initial = torch.randperm(2200, generator=generator)[:2100]  # more centers than one tile holds (2048)
    assert_matches_reference(a, b, torch.rand(40, generator=generator, dtype=torch.float64), initial)


def test_wrapper_draws_from_the_generator():
    a, b = torch.randn(60, 4), torch.randn(60, 9)
    picks = torch_al.kmeanspp_factored(a, b, 20, generator=torch.Generator().manual_seed(5))
    uniforms = torch.rand(20, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    expected = torch.ops.torch_al.kmeanspp_factored(a, b, uniforms)
    assert torch.equal(picks[0], expected[0]) and torch.equal(picks[1], expected[1])
    other = torch_al.kmeanspp_factored(a, b, 20, generator=torch.Generator().manual_seed(6))[0]
    assert not torch.equal(other, picks[0])
    with pytest.raises(ValueError, match="count must be an int >= 0, got -1"):
        torch_al.kmeanspp_factored(a, b, -1)


def test_first_pick_is_the_largest_embedding_and_u0_is_unused():
    a = torch.tensor([[1.0, 0.0], [0.0, 3.0], [3.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[1.0], [1.0], [-1.0], [2.0]])  # |e|^2 = 1, 9, 9, 8: rows 1 and 2 tie
    for u0 in (0.0, 0.999):
        indices, pick_sq = torch.ops.torch_al.kmeanspp_factored(a, b, torch.tensor([u0, 0.5], dtype=torch.float64))
        assert indices[0] == 1 and pick_sq[0] == INF
    # From center 1: D² = 10, 0 (picked), 18, 5 over rows 0..3: u = 0.5 of 33 falls in row 2's share.
    assert indices.tolist() == [1, 2] and pick_sq[1] == 18


def test_draws_at_the_ends_of_zero_to_one():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    b = torch.ones(4, 1)
    initial = torch.tensor([3])  # at the origin: D² = 1, 2, 1, 0, running sums 1, 3, 4, 4

    def first_pick(u: float) -> int:
        return int(torch.ops.torch_al.kmeanspp_factored(a, b, torch.tensor([u], dtype=torch.float64), initial)[0][0])

    assert first_pick(0.0) == 0
    assert first_pick(0.25) == 1  # the running sum must exceed u * total = 1, not reach it
    assert first_pick(0.75) == 2
    assert first_pick(1 - 2**-53) == 2


def test_zero_embeddings_then_lowest_remaining_indices():
    a = torch.zeros(7, 3)  # BADGE: every prediction one-hot and confident
    b = torch.randn(7, 5)
    indices, pick_sq = torch_al.kmeanspp_factored(a, b, 7)
    assert indices.tolist() == list(range(7))
    assert pick_sq[0] == INF and (pick_sq[1:] == 0).all()


def test_duplicates_are_at_distance_exactly_zero():
    a, b = torch.randn(5, 3), torch.randn(5, 8)
    a, b = a.repeat(4, 1), b.repeat(4, 1)  # rows i, i + 5, i + 10, i + 15 coincide
    uniforms = torch.rand(20, dtype=torch.float64)
    indices, pick_sq = torch.ops.torch_al.kmeanspp_factored(a, b, uniforms)
    assert sorted(indices[:5].remainder(5).tolist()) == list(range(5))  # one of each before any repeat
    assert (pick_sq[5:] == 0).all()
    assert indices.tolist() == reference_kmeanspp(a, b, uniforms)[0].tolist()
    # A duplicate of an initial center is never drawn while anything else is left.
    assert not set(torch_al.kmeanspp_factored(a, b, 15, torch.tensor([0, 1]))[0][:3].tolist()) & {5, 10, 15, 6, 11, 16}


def test_count_equal_to_free_rows_picks_each_once():
    a, b = torch.randn(30, 4), torch.randn(30, 6)
    assert sorted(torch_al.kmeanspp_factored(a, b, 30)[0].tolist()) == list(range(30))
    initial = torch.tensor([2, 7, 7])
    picked = torch_al.kmeanspp_factored(a, b, 28, initial)[0].tolist()
    assert sorted(picked) == [i for i in range(30) if i not in (2, 7)]


def test_single_row_and_empty_pool():
    a, b = torch.randn(1, 3), torch.randn(1, 2)
    indices, pick_sq = torch_al.kmeanspp_factored(a, b, 1)
    assert indices.tolist() == [0] and pick_sq.tolist() == [INF]
    assert torch_al.kmeanspp_factored(a, b, 0)[0].shape == (0,)
    assert torch_al.kmeanspp_factored(a, b, 0, torch.tensor([0]))[0].shape == (0,)
    assert torch_al.kmeanspp_factored(torch.randn(0, 3), torch.randn(0, 2), 0)[0].shape == (0,)


def test_strided_inputs_match_contiguous():
    a, b = torch.randn(40, 5), torch.randn(40, 7)
    uniforms = torch.rand(12, dtype=torch.float64)
    expected = torch.ops.torch_al.kmeanspp_factored(a, b, uniforms)
    result = torch.ops.torch_al.kmeanspp_factored(a.t().contiguous().t(), torch.stack([b, b], 2)[:, :, 0], uniforms)
    assert torch.equal(result[0], expected[0]) and torch.equal(result[1], expected[1])


def _u(*values):
    return torch.tensor(values, dtype=torch.float64)


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda: (torch.randn(4), torch.randn(4, 2), _u(0.5)), r"a must be 2-D \(N, C\), got shape \[4\]"),
        (lambda: (torch.randn(4, 3), torch.randn(4, 2, 1), _u(0.5)), r"b must be 2-D \(N, D\), got shape \[4, 2, 1\]"),
        (lambda: (torch.randn(4, 3), torch.randn(5, 2), _u(0.5)), r"same number of rows N, got a of shape \[4, 3\] and b of shape \[5, 2\]"),
        (lambda: (torch.randn(4, 3).half(), torch.randn(4, 2).half(), _u(0.5)), "a must be float32 or float64, got Half"),
        (lambda: (torch.randn(4, 3), torch.randn(4, 2).double(), _u(0.5)), "b dtype Double must equal a dtype Float"),
        (lambda: (torch.randn(4, 3), torch.randn(4, 2), torch.rand(2)), "uniforms must be a 1-D float64 tensor .* dtype Float"),
        (lambda: (torch.randn(4, 3), torch.randn(4, 2), _u(0.5, 1.0)), r"uniforms must lie in \[0, 1\), got 1 draw.* uniforms\[1\]"),
        (lambda: (torch.randn(4, 3), torch.randn(4, 2), _u(-0.1)), r"uniforms must lie in \[0, 1\), got 1 draw"),
        (lambda: (torch.randn(4, 3), torch.randn(4, 2), _u(float("nan"))), r"uniforms must lie in \[0, 1\)"),
        (lambda: (torch.randn(4, 3), torch.randn(4, 2), _u(0.5), torch.tensor([0.5])), "initial must be a 1-D bool mask .* dtype Float"),
        (lambda: (torch.randn(4, 3), torch.randn(4, 2), _u(0.5), torch.ones(3, dtype=torch.bool)), "initial mask has 3 entries but a has N=4"),
        (lambda: (torch.randn(4, 3), torch.randn(4, 2), _u(0.5), torch.tensor([1, 4, -1])), r"initial indices must lie in \[0, N\) with N=4, got 2 out of range"),
        (lambda: (torch.randn(4, 3), torch.randn(4, 2), _u(0.1, 0.2, 0.3, 0.4), torch.tensor([1])),
         r"4 picks \(one per uniform\) are more than the 3 rows that are not initial centers \(N=4 minus 1 initial\)"),
        (lambda: (torch.randn(0, 3), torch.randn(0, 2), _u(0.5)), "1 picks .* more than the 0 rows"),
        (lambda: (torch.full((3, 2), 1e200, dtype=torch.float64), torch.full((3, 2), 1e200, dtype=torch.float64), _u(0.5)), r"overflows float64 in 3 row\(s\); the first is row 0"),
    ],
)
def test_bad_input_raises_a_clear_error(make_args, message):
    with pytest.raises(RuntimeError, match=message):
        torch.ops.torch_al.kmeanspp_factored(*make_args())


@pytest.mark.parametrize("factor", ["a", "b"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_factors_are_rejected_naming_the_row(factor, bad):
    a, b = torch.randn(6, 3), torch.randn(6, 2)
    target = a if factor == "a" else b
    target[4, 1] = bad
    target[5, 0] = bad
    with pytest.raises(RuntimeError, match=f"{factor} must be finite, got 2 row.* the first is row 4"):
        torch_al.kmeanspp_factored(a, b, 2)


def test_opcheck():
    a, b = torch.randn(40, 6), torch.randn(40, 9)
    mask = torch.zeros(40, dtype=torch.bool)
    mask[:25] = True
    samples = [
        (a, b, torch.rand(5, dtype=torch.float64), None),
        (a.double(), b.double(), torch.rand(3, dtype=torch.float64), mask),
        (a, b, torch.rand(4, dtype=torch.float64), torch.tensor([3, 7], dtype=torch.int32)),
        (a, b, torch.rand(0, dtype=torch.float64), None),
        (torch.randn(0, 3), torch.randn(0, 2), torch.rand(0, dtype=torch.float64), None),
    ]
    for args in samples:
        torch.library.opcheck(torch.ops.torch_al.kmeanspp_factored.default, args)


def test_compile_fullgraph():
    def select(p: torch.Tensor, h: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
        a = p - torch.nn.functional.one_hot(p.argmax(1), p.shape[1]).to(p.dtype)
        return torch.ops.torch_al.kmeanspp_factored(a, h, uniforms)[0]

    p, h, uniforms = torch.randn(50, 4).softmax(1), torch.randn(50, 8), torch.rand(6, dtype=torch.float64)
    assert torch.equal(torch.compile(select, fullgraph=True, backend="aot_eager")(p, h, uniforms), select(p, h, uniforms))


class _Seeding(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor, uniforms: torch.Tensor, initial: torch.Tensor | None = None):
        return torch.ops.torch_al.kmeanspp_factored(a, b, uniforms, initial)


def test_torchscript_roundtrip_in_fresh_process(tmp_path):
    path = tmp_path / "kmeanspp.pt"
    torch.jit.script(_Seeding()).save(str(path))
    output = run_in_fresh_process(
        f"""
        import torch, torch_al
        module = torch.jit.load({str(path)!r})
        a, b = torch.arange(20.0).reshape(10, 2) ** 2, torch.ones(10, 3)
        u = torch.linspace(0, 0.9, 4, dtype=torch.float64)
        print(module(a, b, u)[0].tolist(), module(a, b, u, torch.tensor([9]))[0].tolist())
        """
    )
    a, b = torch.arange(20.0).reshape(10, 2) ** 2, torch.ones(10, 3)
    u = torch.linspace(0, 0.9, 4, dtype=torch.float64)
    expected = (_Seeding()(a, b, u)[0].tolist(), _Seeding()(a, b, u, torch.tensor([9]))[0].tolist())
    assert output.strip() == f"{expected[0]} {expected[1]}"


@pytest.mark.needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("initial_size", [0, 300])
def test_cpu_and_cuda_agree(dtype, initial_size):
    a, b = torch.randn(5000, 10).to(dtype), torch.randn(5000, 130).to(dtype)
    initial = torch.randperm(5000)[:initial_size] if initial_size else None
    uniforms = torch.rand(200, dtype=torch.float64)
    cpu = torch.ops.torch_al.kmeanspp_factored(a, b, uniforms, initial)
    cuda = torch.ops.torch_al.kmeanspp_factored(a.cuda(), b.cuda(), uniforms.cuda(), None if initial is None else initial.cuda())
    assert torch.equal(cpu[0], cuda[0].cpu())
    assert_close(cpu[1], cuda[1].cpu(), atol=1e-9, rtol=1e-12)
