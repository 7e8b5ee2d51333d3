"""Brute-force float64 references for the PFK matching ops: materialise R, mask, sort."""

import torch

COMBINES = ("product", "fisher", "sum")


def reference_kernel(query_z, pool_z, query_g=(), pool_g=(), combine="product") -> torch.Tensor:
    """R[m, n] in float64, built in full."""
    a = [q.double() @ p.double().T for q, p in zip(query_z, pool_z)]
    if len(query_g) == 0:
        return sum(a)
    b = [q.double() @ p.double().T for q, p in zip(query_g, pool_g)]
    if combine == "product":
        return sum(a) * sum(b)
    if combine == "fisher":
        return sum(x * y for x, y in zip(a, b))
    return sum(a) + sum(b)


def reference_topk(scores: torch.Tensor, mask, k: int):
    """Best-first k allowed columns of each row of scores (R, N), ties to the lower column."""
    rows, columns = scores.shape
    values = torch.full((rows, k), float("-inf"), dtype=torch.float64)
    indices = torch.full((rows, k), -1, dtype=torch.int64)
    allowed = torch.arange(columns) if mask is None else (~mask.cpu()).nonzero().flatten()
    taken = min(k, allowed.numel())
    if rows == 0 or taken == 0:
        return values, indices
    # A stable descending sort keeps equal values in ascending column order.
    sorted_values, order = torch.sort(scores[:, allowed], dim=1, descending=True, stable=True)
    values[:, :taken] = sorted_values[:, :taken]
    indices[:, :taken] = allowed[order[:, :taken]]
    return values, indices


def random_descriptors(generator, rows, widths, dtype, integer=False):
    """One (rows, C_j) tensor per width; small integers make every kernel value exact."""
    if integer:
        return [torch.randint(-2, 3, (rows, c), generator=generator).to(dtype) for c in widths]
    return [torch.randn(rows, c, generator=generator, dtype=torch.float64).to(dtype) for c in widths]


def random_problem(generator, dtype, integer=False, gradients=True, max_rows=8, max_columns=300):
    """Random M, N, J, C_j, C'_j: (query_z, pool_z, query_g, pool_g)."""
    rows = int(torch.randint(0, max_rows + 1, (), generator=generator))
    columns = int(torch.randint(0, max_columns + 1, (), generator=generator))
    scales = int(torch.randint(1, 4, (), generator=generator))
    widths_z = torch.randint(0, 9, (scales,), generator=generator).tolist()
    widths_g = torch.randint(1, 9, (scales,), generator=generator).tolist()
    query_z = random_descriptors(generator, rows, widths_z, dtype, integer)
    pool_z = random_descriptors(generator, columns, widths_z, dtype, integer)
    if not gradients:
        return query_z, pool_z, [], []
    query_g = random_descriptors(generator, rows, widths_g, dtype, integer)
    pool_g = random_descriptors(generator, columns, widths_g, dtype, integer)
    return query_z, pool_z, query_g, pool_g


def fixed_shape_problem(generator, rows, columns, widths=(3, 2, 4)):
    """Small-integer descriptors (exact values, ties everywhere) of M = rows, N = columns, with
    the given scale widths, gradients included."""
    return tuple(random_descriptors(generator, count, widths, torch.float32, True) for count in (rows, columns, rows, columns))


def assert_cpu_and_cuda_agree(op, rows, columns, k, combine):
    """op (pfk_topk or pfk_column_topk) on one fixed-shape integer problem, 30% masked, gives
    bit-equal values and indices on CPU and CUDA."""
    generator = torch.Generator().manual_seed(rows + k)
    problem = fixed_shape_problem(generator, rows, columns)
    mask = torch.rand(columns, generator=generator) < 0.3
    cpu = op(*problem, pool_mask=mask, k=k, combine=combine)
    cuda = op(*[[t.cuda() for t in part] for part in problem], pool_mask=mask.cuda(), k=k, combine=combine)
    assert torch.equal(cpu[0], cuda[0].cpu()) and torch.equal(cpu[1], cuda[1].cpu())


def random_mask(generator, columns, kind, k):
    """none, random, all but k (k allowed columns left), or all columns excluded."""
    if kind == "none":
        return None
    if kind == "random":
        return torch.rand(columns, generator=generator) < 0.4
    mask = torch.ones(columns, dtype=torch.bool)
    if kind == "all_but_k":
        mask[torch.randperm(columns, generator=generator)[:k]] = False
    return mask


def value_tolerance(dtype) -> dict:
    """Kernel values sum and multiply dot products: float32 errors grow with their magnitude."""
    return dict(atol=1e-3, rtol=1e-4) if dtype == torch.float32 else dict(atol=1e-10, rtol=1e-10)
