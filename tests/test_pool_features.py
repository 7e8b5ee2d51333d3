"""torch_al::pool_features and torch_al::pool_features_into against a float64 reference."""

import pytest
import torch
from common_utils import cpu_and_cuda, run_in_fresh_process, tolerance
from torch.testing import assert_close

import torch_al

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def reference_pool_features(x: torch.Tensor) -> torch.Tensor:
    """Mean over the trailing dims, in float64."""
    x64 = x.double()
    return x64.mean(dim=tuple(range(2, x.dim()))) if x.dim() > 2 else x64.clone()


def random_shape(generator: torch.Generator, spatial_dims: int) -> list[int]:
    return torch.randint(1, 7, (2 + spatial_dims,), generator=generator).tolist()


def layouts(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The same values in several memory layouts."""
    variants = {"contiguous": x, "sliced": torch.cat([x, x], dim=1)[:, ::2]}
    if x.dim() == 4:
        variants["channels_last"] = x.contiguous(memory_format=torch.channels_last)
    if x.dim() == 5:
        variants["channels_last_3d"] = x.contiguous(memory_format=torch.channels_last_3d)
    if x.dim() >= 4:
        variants["transposed_spatial"] = x.transpose(-1, -2).contiguous().transpose(-1, -2)
    variants["expanded"] = x[:1].expand_as(x)
    return variants


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spatial_dims", [0, 1, 2, 3])
def test_matches_reference_over_shapes_dtypes_and_layouts(device, dtype, spatial_dims):
    generator = torch.Generator().manual_seed(spatial_dims)
    for _ in range(4):
        x = torch.randn(random_shape(generator, spatial_dims), generator=generator).to(device, dtype)
        for name, variant in layouts(x).items():
            result = torch_al.pool_features(variant)
            assert result.dtype == dtype and result.shape == variant.shape[:2], name
            assert_close(result.double(), reference_pool_features(variant), **tolerance(dtype), msg=name)


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_half_accumulates_in_float32(device):
    # 4096 values of 1 + 2^-10: a float16 running sum would stall long before the end.
    x = torch.full((1, 1, 64, 64), 1 + 2**-10, dtype=torch.float16, device=device)
    assert torch_al.pool_features(x).item() == pytest.approx(1 + 2**-10, abs=1e-4)


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (1, 3, 4, 4), (2, 0, 4), (1, 1)])
def test_edge_sizes(device, shape):
    x = torch.randn(shape, device=device)
    assert_close(torch_al.pool_features(x).double(), reference_pool_features(x))


def test_empty_spatial_extent_gives_nan_like_mean():
    x = torch.randn(2, 3, 0, 4)
    assert torch_al.pool_features(x).isnan().all()


def test_nan_and_inf_propagate():
    x = torch.randn(2, 3, 4, 4)
    x[0, 1, 2, 2] = float("nan")
    x[1, 2, 0, 0] = float("inf")
    result = torch_al.pool_features(x)
    assert result[0, 1].isnan() and result[1, 2].isinf()
    finite = torch.ones_like(result, dtype=torch.bool)
    finite[0, 1] = finite[1, 2] = False
    assert_close(result[finite].double(), reference_pool_features(x)[finite], **tolerance(torch.float32))


@pytest.mark.parametrize("shape", [(3, 4), (3, 4, 5), (2, 3, 4, 5), (2, 2, 3, 2, 2)])
def test_gradcheck(shape):
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(torch_al.pool_features, (x,))
    assert torch.autograd.gradgradcheck(torch_al.pool_features, (x,))


def test_gradcheck_channels_last():
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    assert torch.autograd.gradcheck(torch_al.pool_features, (x.requires_grad_(),))


def test_opcheck():
    samples = [
        (torch.randn(3, 4, 5, 6),),
        (torch.randn(3, 4, 5, 6).contiguous(memory_format=torch.channels_last),),
        (torch.randn(2, 3, 7, dtype=torch.float64, requires_grad=True),),
        (torch.randn(0, 3, 2, 2),),
    ]
    for args in samples:
        torch.library.opcheck(torch.ops.torch_al.pool_features.default, args)
    store = torch.zeros(8, 10)
    torch.library.opcheck(
        torch.ops.torch_al.pool_features_into.default,
        (torch.randn(3, 4, 5, 6), store, torch.tensor([7, 0, 3]), 2),
    )
    torch.library.opcheck(torch.ops.torch_al.pool_features_into.default, (torch.randn(3, 4, 5, 6), store[2:5], None, 2))


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_fullgraph(backend):
    def pooled_pair(x: torch.Tensor, store: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        pooled = torch_al.pool_features(torch.relu(x))
        torch.ops.torch_al.pool_features_into(x.detach(), store, rows, 1)
        return pooled * 2

    compiled = torch.compile(pooled_pair, fullgraph=True, backend=backend)
    x = torch.randn(4, 3, 5, 5, requires_grad=True)
    store, expected_store = torch.zeros(6, 5), torch.zeros(6, 5)
    rows = torch.tensor([5, 1, 0, 2])
    result = compiled(x, store, rows)
    expected = pooled_pair(x, expected_store, rows)
    assert_close(result, expected)
    assert_close(store, expected_store)
    result.sum().backward()
    assert_close(x.grad, (torch.relu(x) > 0).float() * 2 / 25)


def test_export():
    class Pool(torch.nn.Module):
        def forward(self, x):
            return torch_al.pool_features(x) + 1

    exported = torch.export.export(Pool(), (torch.randn(2, 3, 4, 4),))
    x = torch.randn(2, 3, 4, 4)
    assert_close(exported.module()(x), torch_al.pool_features(x) + 1)


def test_torchscript_roundtrip_in_fresh_process(tmp_path):
    class Pool(torch.nn.Module):
        def forward(self, x: torch.Tensor, store: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            torch.ops.torch_al.pool_features_into(x, store, rows, 0)
            return torch.ops.torch_al.pool_features(x)

    path = tmp_path / "pool.pt"
    torch.jit.script(Pool()).save(str(path))
    output = run_in_fresh_process(
        f"""
        import torch, torch_al
        module = torch.jit.load({str(path)!r})
        x = torch.arange(24.0).reshape(2, 3, 4)
        store = torch.zeros(3, 3)
        pooled = module(x, store, torch.tensor([2, 0]))
        print(pooled.tolist(), store.tolist())
        """
    )
    x = torch.arange(24.0).reshape(2, 3, 4)
    pooled = x.mean(-1)
    store = torch.zeros(3, 3)
    store[[2, 0]] = pooled
    assert output.strip() == f"{pooled.tolist()} {store.tolist()}"


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", DTYPES)
def test_into_matches_reference(device, dtype):
    generator = torch.Generator().manual_seed(1)
    for spatial_dims in range(4):
        x = torch.randn(random_shape(generator, spatial_dims), generator=generator).to(device, dtype)
        n, c = x.shape[:2]
        store = torch.zeros(n + 5, c + 4, device=device, dtype=dtype)
        rows = torch.randperm(n + 5, generator=generator)[:n].to(device)
        torch_al.pool_features_into(x, store, rows, 3)
        expected = torch.zeros(n + 5, c + 4, dtype=torch.float64, device=device)
        expected[rows, 3 : 3 + c] = reference_pool_features(x)
        assert_close(store.double(), expected, **tolerance(dtype))


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_into_without_rows_fills_a_narrowed_block(device):
    x = torch.randn(3, 4, 5, device=device)
    store = torch.zeros(7, 6, device=device)
    torch_al.pool_features_into(x, store.narrow(0, 2, 3), None, 1)
    expected = torch.zeros(7, 6, dtype=torch.float64, device=device)
    expected[2:5, 1:5] = reference_pool_features(x)
    assert_close(store.double(), expected, **tolerance(torch.float32))


@pytest.mark.needs_cuda
def test_into_without_rows_never_waits_on_the_device():
    x = torch.randn(3, 4, 5, device="cuda")
    store = torch.zeros(7, 6, device="cuda")
    torch.cuda.set_sync_debug_mode("error")
    try:
        torch_al.pool_features_into(x, store[2:5], None, 1)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert_close(store[2:5, 1:5].double(), reference_pool_features(x))


def test_into_strided_store_and_channels_last_input():
    x = torch.randn(3, 4, 5, 5).contiguous(memory_format=torch.channels_last)
    store = torch.zeros(6, 8).t()  # (8, 6), column-major
    torch_al.pool_features_into(x, store, torch.tensor([1, 7, 4]), 2)
    expected = torch.zeros(8, 6, dtype=torch.float64)
    expected[[1, 7, 4], 2:6] = reference_pool_features(x)
    assert_close(store.double(), expected, **tolerance(torch.float32))


def test_into_empty_batch_is_a_no_op():
    store = torch.ones(4, 3)
    torch_al.pool_features_into(torch.randn(0, 3, 2, 2), store, torch.zeros(0, dtype=torch.long), 0)
    assert (store == 1).all()


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda: (torch.randn(2), torch.zeros(4, 4), torch.tensor([0, 1]), 0), r"x must be .* got shape \[2\]"),
        (lambda: (torch.randn(2, 3, 1, 1, 1, 1), torch.zeros(4, 4), torch.tensor([0, 1]), 0), "at most 3 spatial"),
        (lambda: (torch.ones(2, 3, dtype=torch.int64), torch.zeros(4, 4, dtype=torch.int64), torch.tensor([0, 1]), 0), "floating"),
        (lambda: (torch.randn(2, 3, 4), torch.zeros(4), torch.tensor([0, 1]), 0), r"out must be a 2-D store"),
        (lambda: (torch.randn(2, 3, 4), torch.zeros(4, 4, dtype=torch.float64), torch.tensor([0, 1]), 0), "out dtype Double must equal x dtype Float"),
        (lambda: (torch.randn(2, 3, 4), torch.zeros(4, 4), torch.tensor([0, 1], dtype=torch.int32), 0), "rows must be a 1-D int64"),
        (lambda: (torch.randn(2, 3, 4), torch.zeros(4, 4), torch.tensor([0, 1, 2]), 0), "rows has 3 entries but x has N=2"),
        (lambda: (torch.randn(2, 3, 4), torch.zeros(4, 4), None, 0), r"without rows, out must have x's N=2 rows .* got out of shape \[4, 4\]"),
        (lambda: (torch.randn(2, 3, 4), torch.zeros(4, 4), torch.tensor([0, 4]), 0), r"rows must lie in \[0, 4\)"),
        (lambda: (torch.randn(2, 3, 4), torch.zeros(4, 4), torch.tensor([-1, 2]), 0), r"got values in \[-1, 2\]"),
        (lambda: (torch.randn(2, 3, 4), torch.zeros(4, 4), torch.tensor([1, 1]), 0), "rows must be distinct"),
        (lambda: (torch.randn(2, 3, 4), torch.zeros(4, 4), torch.tensor([0, 1]), 2), r"columns \[2, 5\) of x \(C=3\) do not fit out of shape \[4, 4\]"),
        (lambda: (torch.randn(2, 3, 4), torch.zeros(4, 4), torch.tensor([0, 1]), -1), r"columns \[-1, 2\)"),
    ],
)
def test_into_bad_input_raises_and_writes_nothing(make_args, message):
    x, store, rows, column = make_args()
    before = store.clone()
    with pytest.raises(RuntimeError, match=message):
        torch_al.pool_features_into(x, store, rows, column)
    assert torch.equal(store, before)


def test_into_rejects_a_store_on_another_device():
    store = torch.zeros(4, 4, device="meta")
    with pytest.raises(RuntimeError, match="out is on meta but x is on cpu"):
        torch_al.pool_features_into(torch.randn(2, 3, 4), store, torch.tensor([0, 1]), 0)


def test_into_rejects_a_store_that_requires_grad():
    store = torch.zeros(4, 4, requires_grad=True)
    with pytest.raises(RuntimeError, match="out must not require grad"):
        torch_al.pool_features_into(torch.randn(2, 3, 4), store, torch.tensor([0, 1]), 0)


def test_into_bumps_the_store_version():
    store = torch.zeros(4, 4)
    version = store._version
    torch_al.pool_features_into(torch.randn(2, 3, 4), store, torch.tensor([0, 1]), 0)
    assert store._version > version


def test_pool_features_bad_rank_names_the_shape():
    with pytest.raises(RuntimeError, match=r"pool_features: x must be .* got shape \[5\]"):
        torch_al.pool_features(torch.randn(5))


@pytest.mark.needs_cuda
def test_cpu_and_cuda_agree():
    x = torch.randn(3, 5, 7, 9).contiguous(memory_format=torch.channels_last)
    assert_close(torch_al.pool_features(x.cuda()).cpu(), torch_al.pool_features(x))
