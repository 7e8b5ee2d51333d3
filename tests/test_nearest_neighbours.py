"""torch_al::nearest_neighbours against a dense float64 reference: distances, order and ties."""

import math

import pytest
import torch
from common_utils import cpu_and_cuda, tolerance

import torch_al


def dense_distances(query, pool, metric):
    q, p = query.double().cpu(), pool.double().cpu()
    if metric == "sqeuclidean":
        return (q[:, None, :] - p[None, :, :]).square().sum(2)
    norms = q.norm(dim=1, keepdim=True).clamp_min(1e-8) * p.norm(dim=1).clamp_min(1e-8)
    return 1 - (q @ p.T) / norms


def reference_neighbours(query, pool, k, pool_mask=None, query_index=None, metric="sqeuclidean"):
    """Every distance in float64, the allowed rows sorted by (distance, index), padded with (inf, -1)."""
    distances = dense_distances(query, pool, metric)
    allowed = torch.ones_like(distances, dtype=torch.bool)
    if pool_mask is not None:
        allowed &= ~pool_mask.cpu()
    if query_index is not None:
        rows = torch.nonzero(query_index.cpu() >= 0).flatten()
        allowed[rows, query_index.cpu()[rows]] = False
    values = torch.full((query.shape[0], k), math.inf, dtype=torch.float64)
    indices = torch.full((query.shape[0], k), -1)
    for m in range(query.shape[0]):
        candidates = torch.nonzero(allowed[m]).flatten()  # increasing index
        order = torch.sort(distances[m, candidates], stable=True).indices[:k]
        values[m, : order.numel()] = distances[m, candidates[order]]
        indices[m, : order.numel()] = candidates[order]
    return values, indices


def assert_matches_reference(got, query, pool, k, **options):
    distances, indices = (t.cpu() for t in got)
    want_distances, want_indices = reference_neighbours(query, pool, k, **options)
    assert distances.dtype == query.dtype and indices.dtype == torch.int64
    assert distances.shape == indices.shape == (query.shape[0], k)
    torch.testing.assert_close(distances.double(), want_distances, **tolerance(query.dtype))
    if query.dtype == torch.float64 and options.get("metric") != "cosine":
        assert torch.equal(indices, want_indices)
    else:  # near-ties may swap (float32; cosine's division): each listed row is at its rank's reference distance
        assert torch.equal(indices < 0, want_indices < 0)
        exact = dense_distances(query, pool, options.get("metric", "sqeuclidean"))
        listed = exact.gather(1, indices.clamp_min(0))
        torch.testing.assert_close(torch.where(indices < 0, math.inf, listed), want_distances, **tolerance(query.dtype))
        assert all(len(set(row.tolist()) - {-1}) == (row >= 0).sum() for row in indices)  # no row twice


SHAPES = [(1, 1, 1, 1), (3, 10, 2, 4), (17, 300, 5, 20), (64, 1000, 33, 7), (130, 2500, 80, 1), (9, 40, 768, 50)]


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("metric", ["sqeuclidean", "cosine"])
@pytest.mark.parametrize("m, n, d, k", SHAPES)
def test_random_points_with_a_mask_match_the_reference(device, dtype, metric, m, n, d, k):
    generator = torch.Generator().manual_seed(m * n + d)
    query = torch.randn(m, d, generator=generator, dtype=dtype) + 3  # off the origin: cancellation in ‖q‖² − 2q·p
    pool = torch.randn(n, d, generator=generator, dtype=dtype) + 3
    pool_mask = torch.rand(n, generator=generator) < 0.3
    got = torch_al.nearest_neighbours(query.to(device), pool.to(device), k, pool_mask=pool_mask.to(device), metric=metric)
    assert_matches_reference(got, query, pool, k, pool_mask=pool_mask, metric=metric)


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("metric", ["sqeuclidean", "cosine"])
def test_ties_and_duplicates_go_to_the_lower_index(device, dtype, metric):
    generator = torch.Generator().manual_seed(1)
    pool = torch.randint(-2, 3, (600, 3), generator=generator).to(dtype)  # 125 distinct points: every row repeats
    pool[::50] = 0  # zero rows: cosine distance 1 from everything
    query = torch.cat([pool[:40], torch.randint(-2, 3, (20, 3), generator=generator).to(dtype)])
    for k in (1, 5, 30, 700):
        got = torch_al.nearest_neighbours(query.to(device), pool.to(device), k, metric=metric)
        assert_matches_reference(got, query, pool, k, metric=metric)
        if metric == "sqeuclidean":  # integer points: every product is exact, so the ties are real ones
            assert torch.equal(got[1].cpu(), reference_neighbours(query, pool, k)[1]), k


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_a_row_is_not_its_own_neighbour_even_among_copies(device):
    generator = torch.Generator().manual_seed(2)
    points = torch.randn(200, 6, generator=generator, dtype=torch.float64)
    points[100:150] = points[100]  # 50 copies: the row itself would tie with them
    query_index = torch.arange(200)
    query_index[::7] = -1  # these rows keep themselves (distance 0)
    for k in (1, 3, 60, 250):
        got = torch_al.nearest_neighbours(points.to(device), points.to(device), k, query_index=query_index.to(device))
        assert_matches_reference(got, points, points, k, query_index=query_index)
        assert not ((got[1].cpu() == query_index[:, None]) & (query_index[:, None] >= 0)).any()


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_strided_pool_and_query_read_in_place(device):
    generator = torch.Generator().manual_seed(3)
    store = torch.randn(500, 40, generator=generator, dtype=torch.float64)
    pool = store[:, 5:25]  # a column slice of a wider store
    query = store.t().contiguous().t()[::9, 10:30]  # column-major rows, every 9th
    pool_mask = torch.zeros(500, dtype=torch.bool)
    pool_mask[::3] = True
    got = torch_al.nearest_neighbours(query.to(device), pool.to(device), 6, pool_mask=pool_mask.to(device))
    assert_matches_reference(got, query, pool, 6, pool_mask=pool_mask)


@pytest.mark.parametrize(
    "m, n, d, k, masked",
    [(0, 5, 3, 2, False), (4, 0, 3, 2, False), (4, 5, 3, 0, False), (4, 5, 0, 3, False), (4, 5, 3, 8, False), (4, 5, 3, 2, True)],
)
def test_empty_inputs_and_short_pools_pad_with_inf(m, n, d, k, masked):
    query, pool = torch.randn(m, d, dtype=torch.float64), torch.randn(n, d, dtype=torch.float64)
    pool_mask = torch.ones(n, dtype=torch.bool) if masked else None
    got = torch_al.nearest_neighbours(query, pool, k, pool_mask=pool_mask)
    assert_matches_reference(got, query, pool, k, pool_mask=pool_mask)


@pytest.mark.parametrize(
    "query, pool, k, options, message",
    [
        (torch.rand(4), torch.rand(5, 4), 1, {}, r"query must be \(M, D\), got shape \[4\]"),
        (torch.rand(4, 3), torch.rand(5, 2), 1, {}, r"pool has 2 dimensions but query has 3"),
        (torch.rand(4, 3).half(), torch.rand(5, 3).half(), 1, {}, "query must be float32 or float64, got Half"),
        (torch.rand(4, 3), torch.rand(5, 3).double(), 1, {}, "pool dtype Double must equal query dtype Float"),
        (torch.rand(4, 3), torch.rand(5, 3), -1, {}, "k must be >= 0, got -1"),
        (torch.rand(4, 3), torch.rand(5, 3), 1, {"metric": "l1"}, 'metric must be "sqeuclidean" or "cosine", got "l1"'),
        (torch.rand(4, 3), torch.rand(5, 3), 1, {"pool_mask": torch.zeros(4, dtype=torch.bool)}, r"pool_mask must be \(N=5,\)"),
        (torch.rand(4, 3), torch.rand(5, 3), 1, {"pool_mask": torch.zeros(5)}, "pool_mask must be torch.bool"),
        (torch.rand(4, 3), torch.rand(5, 3), 1, {"query_index": torch.arange(5)}, r"query_index must be \(M=4,\)"),
        (torch.rand(4, 3), torch.rand(5, 3), 1, {"query_index": torch.arange(4).int()}, "query_index must be int64"),
        (torch.rand(4, 3), torch.rand(5, 3), 1, {"query_index": torch.tensor([0, 1, 2, 5])}, r"pool rows in \[0, N=5\) or -1, got values in \[0, 5\]"),
        (torch.rand(4, 3), torch.rand(5, 3), 1, {"query_index": torch.tensor([0, -2, 2, 3])}, r"got values in \[-2, 3\]"),
        (torch.tensor([[0.0, math.nan]]), torch.rand(5, 2), 1, {}, "query contains NaN or inf"),
        (torch.rand(2, 2), torch.tensor([[0.0, math.inf]]), 1, {}, "pool contains NaN or inf"),
    ],
)
@pytest.mark.parametrize("device", cpu_and_cuda())
def test_bad_input_is_named(device, query, pool, k, options, message):
    options = {name: value.to(device) if isinstance(value, torch.Tensor) else value for name, value in options.items()}
    with pytest.raises(RuntimeError, match=message):
        torch_al.nearest_neighbours(query.to(device), pool.to(device), k, **options)


def test_without_the_check_no_data_is_read_for_errors():
    query_index = torch.tensor([7, -1])  # out of range: excludes nothing
    got = torch_al.nearest_neighbours(torch.zeros(2, 2), torch.eye(2), 2, query_index=query_index, check_finite=False)
    assert torch.equal(got[1], torch.tensor([[0, 1], [0, 1]]))


def test_opcheck():
    query, pool = torch.randn(20, 8), torch.randn(300, 8)
    samples = [
        (query, pool, 3),
        (query.double(), pool.double(), 5, torch.rand(300) < 0.5, None, "cosine"),
        (pool[:20], pool, 2, None, torch.arange(20)),
        (torch.empty(0, 8), pool, 2),
        (query.clone().requires_grad_(), pool, 1),
    ]
    for args in samples:
        torch.library.opcheck(torch.ops.torch_al.nearest_neighbours.default, args)


def test_outputs_never_require_grad():
    distances, indices = torch_al.nearest_neighbours(torch.rand(4, 3, requires_grad=True), torch.rand(9, 3), 2)
    assert not distances.requires_grad and not indices.requires_grad


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_fullgraph(backend):
    def typicality(points: torch.Tensor) -> torch.Tensor:
        distances, _ = torch_al.nearest_neighbours(points, points, 4, query_index=torch.arange(points.shape[0]))
        return 1 / distances.sqrt().mean(1)

    points = torch.randn(200, 5)
    torch.testing.assert_close(torch.compile(typicality, fullgraph=True, backend=backend)(points), typicality(points))


def test_torchscript():
    @torch.jit.script
    def neighbours(query: torch.Tensor, pool: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch_al.nearest_neighbours(query, pool, k, metric="cosine")

    query, pool = torch.randn(10, 4, dtype=torch.float64), torch.randn(50, 4, dtype=torch.float64)
    assert_matches_reference(neighbours(query, pool, 3), query, pool, 3, metric="cosine")
