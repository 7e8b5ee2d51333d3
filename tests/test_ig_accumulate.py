"""torch_al::ig_accumulate against a float64 reference."""

import pytest
import torch
from common_utils import cpu_and_cuda, run_in_fresh_process, tolerance
from torch.testing import assert_close

import torch_al

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def reference_ig_accumulate(grad: torch.Tensor, steps: int, acc: torch.Tensor) -> torch.Tensor:
    """acc + (1/steps) Σ_s mean_spatial(grad[s]), in float64."""
    grad64 = grad.double()
    pooled = grad64.mean(dim=tuple(range(3, grad.dim()))) if grad.dim() > 3 else grad64
    return acc.double() + pooled.sum(0) / steps


def layouts(grad: torch.Tensor) -> dict[str, torch.Tensor]:
    """The same values in several memory layouts."""
    variants = {
        "contiguous": grad,
        "sliced_channels": torch.cat([grad, grad], dim=2)[:, :, ::2],
        "batch_major": grad.transpose(0, 1).contiguous().transpose(0, 1),
        "expanded_steps": grad[:1].expand_as(grad),
    }
    if grad.dim() >= 4:
        # channels innermost, as a channels_last feature map's gradient is
        variants["channels_last"] = grad.movedim(2, -1).contiguous().movedim(-1, 2)
        variants["transposed_spatial"] = grad.transpose(-1, -2).contiguous().transpose(-1, -2)
    return variants


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spatial_dims", [0, 1, 2, 3])
def test_matches_reference_over_shapes_dtypes_and_layouts(device, dtype, spatial_dims):
    generator = torch.Generator().manual_seed(spatial_dims)
    for _ in range(3):
        shape = torch.randint(1, 6, (3 + spatial_dims,), generator=generator).tolist()
        grad = torch.randn(shape, generator=generator).to(device, dtype)
        steps = shape[0] + int(torch.randint(0, 4, (1,), generator=generator))
        for name, variant in layouts(grad).items():
            acc = torch.randn(shape[1:3], generator=generator).to(device, accumulation_dtype(dtype))
            expected = reference_ig_accumulate(variant, steps, acc)
            torch_al.ig_accumulate(variant, steps, acc)
            assert_close(acc.double(), expected, **tolerance(accumulation_dtype(dtype)), msg=name)


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_strided_accumulator_is_a_view_into_a_store(device):
    grad = torch.randn(4, 3, 5, 6, 6, device=device)
    store = torch.zeros(9, 8, device=device).t()  # (8, 9), column-major
    torch_al.ig_accumulate(grad, 7, store[2:5, 1:6])
    expected = torch.zeros(8, 9, dtype=torch.float64, device=device)
    expected[2:5, 1:6] = reference_ig_accumulate(grad, 7, torch.zeros(3, 5))
    assert_close(store.double(), expected, **tolerance(torch.float32))


def test_chunks_add_up_to_the_whole_path():
    grad = torch.randn(10, 2, 3, 4, 4, dtype=torch.float64)
    whole, chunked = torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64)
    torch_al.ig_accumulate(grad, 10, whole)
    for chunk in grad.split(3):
        torch_al.ig_accumulate(chunk, 10, chunked)
    assert_close(chunked, whole)
    assert_close(whole, grad.mean(dim=(0, 3, 4)))


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_accumulates_in_float32(device, dtype):
    # 128 steps x 4096 values of 1 + 2^-7: a half running sum would stall long before the end.
    grad = torch.full((128, 1, 1, 64, 64), 1 + 2**-7, dtype=dtype, device=device)
    acc = torch.zeros(1, 1, device=device)
    torch_al.ig_accumulate(grad, 128, acc)
    assert acc.item() == pytest.approx(1 + 2**-7, abs=1e-5)


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("shape", [(0, 2, 3, 4, 4), (3, 0, 3, 4), (3, 2, 0), (1, 1, 1)])
def test_empty_steps_batch_or_channels(device, shape):
    grad = torch.randn(shape, device=device)
    acc = torch.ones(shape[1:3], device=device)
    torch_al.ig_accumulate(grad, 5, acc)
    assert_close(acc.double(), reference_ig_accumulate(grad, 5, torch.ones(shape[1:3])).to(device))


def test_empty_spatial_extent_adds_nan_like_mean():
    acc = torch.zeros(2, 3)
    torch_al.ig_accumulate(torch.randn(4, 2, 3, 0, 5), 4, acc)
    assert acc.isnan().all()


def test_nan_and_inf_propagate():
    grad = torch.randn(3, 2, 3, 4)
    grad[1, 0, 1, 2] = float("nan")
    grad[2, 1, 2, 0] = float("inf")
    acc = torch.zeros(2, 3)
    torch_al.ig_accumulate(grad, 3, acc)
    assert acc[0, 1].isnan() and acc[1, 2].isinf()
    finite = torch.ones_like(acc, dtype=torch.bool)
    finite[0, 1] = finite[1, 2] = False
    assert_close(acc[finite].double(), reference_ig_accumulate(grad, 3, torch.zeros(2, 3))[finite])


def test_opcheck():
    samples = [
        (torch.randn(3, 4, 5, 6, 6), 8, torch.zeros(4, 5)),
        (torch.randn(3, 4, 5, 6, 6).movedim(2, -1).contiguous().movedim(-1, 2), 3, torch.zeros(4, 5)),
        (torch.randn(2, 3, 7, dtype=torch.float64, requires_grad=True), 2, torch.zeros(3, 7, dtype=torch.float64)),
        (torch.randn(4, 2, 3, 5, dtype=torch.float16), 4, torch.zeros(2, 3)),
        (torch.randn(0, 3, 2, 2), 1, torch.zeros(3, 2)),
    ]
    for args in samples:
        torch.library.opcheck(torch.ops.torch_al.ig_accumulate.default, args)


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_fullgraph(backend):
    def attention(grad: torch.Tensor, acc: torch.Tensor) -> torch.Tensor:
        torch.ops.torch_al.ig_accumulate(torch.relu(grad), 16, acc)
        return acc * 2

    compiled = torch.compile(attention, fullgraph=True, backend=backend)
    grad = torch.randn(4, 3, 5, 6, 6)
    acc, expected_acc = torch.ones(3, 5), torch.ones(3, 5)
    result = compiled(grad, acc)
    expected = attention(grad, expected_acc)
    assert_close(result, expected)
    assert_close(acc, expected_acc)


def test_export():
    class Attention(torch.nn.Module):
        def forward(self, grad):
            acc = grad.new_zeros(grad.shape[1:3])
            torch.ops.torch_al.ig_accumulate(grad, 4, acc)
            return acc

    grad = torch.randn(4, 2, 3, 5, 5)
    exported = torch.export.export(Attention(), (grad,))
    assert_close(exported.module()(grad), grad.mean(dim=(0, 3, 4)))


def test_torchscript_roundtrip_in_fresh_process(tmp_path):
    class Attention(torch.nn.Module):
        def forward(self, grad: torch.Tensor, acc: torch.Tensor) -> torch.Tensor:
            torch.ops.torch_al.ig_accumulate(grad, 2, acc)
            return acc

    path = tmp_path / "ig.pt"
    torch.jit.script(Attention()).save(str(path))
    output = run_in_fresh_process(
        f"""
        import torch, torch_al
        module = torch.jit.load({str(path)!r})
        grad = torch.arange(24.0).reshape(2, 1, 3, 4)
        print(module(grad, torch.ones(1, 3)).tolist())
        """
    )
    grad = torch.arange(24.0).reshape(2, 1, 3, 4)
    assert output.strip() == str((1 + grad.mean(-1).sum(0) / 2).tolist())


@pytest.mark.parametrize(
    "make_args, error, message",
    [
        (lambda: (torch.randn(2, 3, 4), 0, torch.zeros(3, 4)), ValueError, "steps must be a positive number of path steps K, got 0"),
        (lambda: (torch.randn(2, 3, 4), -3, torch.zeros(3, 4)), ValueError, "got -3"),
        (lambda: (torch.randn(3, 4), 2, torch.zeros(3, 4)), ValueError, r"grad must be \(S, B, C\) .* got shape \[3, 4\]"),
        (lambda: (torch.randn(1, 2, 3, 1, 1, 1, 1), 2, torch.zeros(2, 3)), ValueError, "at most 3 spatial"),
        (lambda: (torch.ones(2, 3, 4, dtype=torch.int64), 2, torch.zeros(3, 4)), TypeError, "grad must be a floating tensor"),
        (lambda: (torch.randn(2, 3, 4), 2, torch.zeros(3, 4, dtype=torch.float64)), TypeError, "acc must be Float for Float grad"),
        (lambda: (torch.randn(2, 3, 4, dtype=torch.float16), 2, torch.zeros(3, 4, dtype=torch.float16)), TypeError, "acc must be Float for Half grad"),
        (lambda: (torch.randn(2, 3, 4, 5), 2, torch.zeros(4, 3)), ValueError, r"acc must be \(B, C\) = \(3, 4\) for grad of shape \[2, 3, 4, 5\], got shape \[4, 3\]"),
        (lambda: (torch.randn(2, 3, 4), 2, torch.zeros(3, 4, 1)), ValueError, "got shape \\[3, 4, 1\\]"),
        (lambda: (torch.randn(2, 3, 4), 2, torch.zeros(3, 1).expand(3, 4)), RuntimeError, "acc has elements that share memory"),
    ],
)
def test_bad_input_raises_and_writes_nothing(make_args, error, message):
    grad, steps, acc = make_args()
    before = acc.clone()
    with pytest.raises(error, match=message):
        torch_al.ig_accumulate(grad, steps, acc)
    assert torch.equal(acc, before)


def test_rejects_an_accumulator_aliasing_grad():
    grad = torch.randn(1, 3, 4)
    with pytest.raises(RuntimeError, match="acc must not share memory with grad"):
        torch_al.ig_accumulate(grad, 1, grad[0])


def test_rejects_an_accumulator_on_another_device():
    with pytest.raises(RuntimeError, match="acc is on meta but grad is on cpu"):
        torch_al.ig_accumulate(torch.randn(2, 3, 4), 2, torch.zeros(3, 4, device="meta"))


def test_rejects_an_accumulator_that_requires_grad():
    acc = torch.zeros(3, 4, requires_grad=True)
    with pytest.raises(RuntimeError, match="acc must not require grad"):
        torch_al.ig_accumulate(torch.randn(2, 3, 4), 2, acc)


def test_bumps_the_accumulator_version():
    acc = torch.zeros(3, 4)
    version = acc._version
    torch_al.ig_accumulate(torch.randn(2, 3, 4), 2, acc)
    assert acc._version > version


def test_fake_mirrors_the_checks():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(), pytest.raises(ValueError, match=r"acc must be \(B, C\) = \(3, 4\)"):
        torch.ops.torch_al.ig_accumulate(torch.randn(2, 3, 4, 5), 2, torch.zeros(4, 3))


@pytest.mark.needs_cuda
def test_cpu_and_cuda_agree():
    grad = torch.randn(6, 3, 5, 7, 9).movedim(2, -1).contiguous().movedim(-1, 2)
    acc = torch.randn(3, 5)
    acc_cuda = acc.cuda()
    torch_al.ig_accumulate(grad.cuda(), 6, acc_cuda)
    torch_al.ig_accumulate(grad, 6, acc)
    assert_close(acc_cuda.cpu(), acc)
