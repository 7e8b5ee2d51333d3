"""pfk_topk and pfk_column_topk against the hardware bound, faiss-cpu and the naive torch path.

The bound is the same FLOPs done by one large `torch.mm` per factor over the concatenated
descriptors, written into a preallocated output (per scale for `fisher`, whose scales do not
factor): what BLAS reaches on this machine, not our own tiling. Descriptors are column views of
one (N, L) store per factor, as torch_al's descriptor capture returns them. 10% of the pool is
masked. Forms: `pcc` (no gradients, one factor), and with gradients `product`, `fisher`, `sum`.

Per workload one fresh process measures ours' extra memory first (peak resident minus resident
once the inputs exist), then times the variants taking turns (`time_interleaved`), so a change
in the shared machine's load weighs on all of them alike:

  ours     torch_al.pfk_topk
  column   torch_al.pfk_column_topk (same arguments, k = the budget over all rows)
  bound    the torch.mm calls above
  onednn   the same products by oneDNN's GEMM (`mkldnn_linear` on oneDNN tensors, N <= 200k): on a
           CPU where MKL runs its AVX2 code (AMD), this is the fastest GEMM torch has, and the
           speed our AVX-512 engine (oneDNN's small-matrix kernels) is measured against
  faiss    faiss-cpu IndexFlatIP.search over the unmasked pool rows (pcc form only: an inner-product
           index has no product/fisher/sum kernels); install faiss-cpu for it, never a dependency
  naive    mm + masked_fill + topk over the materialised M x N kernel, where it fits in memory

THREADS (default 1) torch threads, and faiss's OpenMP threads, per process. On an AVX-512 CPU,
ATEN_CPU_CAPABILITY=avx2 measures the BLAS-tile engine that AVX2 machines run (results named
pfk_topk_avx2.json).

DEVICE=cuda (`benchmarks/run.py --device cuda`) runs the same table on the GPU: the bound is
cuBLAS's fp32 GEMM (TF32 off, as in ours), extra memory is CUDA's peak allocation above what the
inputs hold, faiss is left out, and the results go to pfk_topk_cuda.json.
"""

import os

import torch
from common import print_table, reset_peak_rss, run_isolated, time_interleaved, write_results

WIDTHS = {80: (10, 20, 50), 768: (256, 512)}  # LeNet's three descriptor layers; two wide layers
FORMS = ("pcc", "product", "fisher", "sum")
# (M, N, L, form, k)
FULL = [
    (rows, columns, width, form, k)
    for rows in (125, 1250)
    for columns in (50_000, 200_000)
    for width in (80, 768)
    for form, k in (("pcc", 1), ("pcc", 32), ("product", 1), ("fisher", 1), ("sum", 32))
] + [(1250, 2_000_000, 768, "pcc", 1)]  # memory: 5.9 GiB of descriptors, ours' extra bytes do not grow with N
QUICK = [(125, 50_000, 80, "pcc", 1), (125, 50_000, 80, "product", 32), (125, 20_000, 768, "fisher", 1)]
NAIVE_LIMIT_MIB = {"cpu": 4 * 1024, "cuda": 32 * 1024}
BOUND_CHUNK = 50_000  # bound products are written 50k columns at a time into one reused output
# oneDNN allocates each product: chunks small enough for the allocator to reuse, not fault in, memory
ONEDNN_CHUNK = 4096
DEVICES = ("cpu", "cuda")


def threads() -> int:
    return int(os.environ.get("THREADS", "1"))


def device() -> str:
    return os.environ.get("DEVICE", "cpu")


def column_views(rows: int, width: int, generator: torch.Generator) -> list[torch.Tensor]:
    store = torch.randn(rows, width, generator=generator).to(device())
    starts = [sum(WIDTHS[width][:j]) for j in range(len(WIDTHS[width]))]
    return [store[:, start : start + c] for start, c in zip(starts, WIDTHS[width])]


def make_problem(rows: int, columns: int, width: int, form: str, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    query_z, pool_z = column_views(rows, width, generator), column_views(columns, width, generator)
    if form == "pcc":
        query_g, pool_g = [], []
    else:
        query_g, pool_g = column_views(rows, width, generator), column_views(columns, width, generator)
    mask = (torch.rand(columns, generator=generator) < 0.1).to(device())
    return (query_z, pool_z, query_g, pool_g), mask


def bound_factors(query_z, pool_z, query_g, pool_g, form: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (query, pool) matrix pairs whose products carry the kernel's FLOPs."""
    joined = lambda scales: torch.cat(scales, dim=1)  # noqa: E731
    if form == "pcc":
        return [(joined(query_z), joined(pool_z))]
    if form == "sum":
        return [(joined(query_z + query_g), joined(pool_z + pool_g))]
    if form == "product":
        return [(joined(query_z), joined(pool_z)), (joined(query_g), joined(pool_g))]
    return [(q.contiguous(), p.contiguous()) for q, p in zip(query_z + query_g, pool_z + pool_g)]


def bound_call(factors, rows: int, columns: int):
    out = torch.empty(rows, min(columns, BOUND_CHUNK), device=device())

    def call():
        for query, pool in factors:
            for begin in range(0, columns, BOUND_CHUNK):
                tile = pool[begin : begin + BOUND_CHUNK]
                torch.mm(query, tile.T, out=out[:, : tile.shape[0]])

    return call


def onednn_bound_call(factors, columns: int):
    converted = [
        (query.contiguous().to_mkldnn(), [pool[b : b + ONEDNN_CHUNK].contiguous().to_mkldnn() for b in range(0, columns, ONEDNN_CHUNK)])
        for query, pool in factors
    ]  # fmt: skip

    def call():
        for query, chunks in converted:
            for chunk in chunks:
                torch._C._nn.mkldnn_linear(query, chunk)

    return call


def naive(query_z, pool_z, query_g, pool_g, mask, k, form):
    z = sum(q @ p.T for q, p in zip(query_z, pool_z))
    if form == "pcc":
        scores = z
    elif form == "product":
        scores = z * sum(q @ p.T for q, p in zip(query_g, pool_g))
    elif form == "sum":
        scores = z + sum(q @ p.T for q, p in zip(query_g, pool_g))
    else:
        scores = sum((qz @ pz.T) * (qg @ pg.T) for qz, pz, qg, pg in zip(query_z, pool_z, query_g, pool_g))
    return scores.masked_fill_(mask, float("-inf")).topk(k, dim=1)


def faiss_call(query_z, pool_z, mask, k):
    """IndexFlatIP.search over the allowed pool rows, and the pool indices it returns."""
    import faiss

    faiss.omp_set_num_threads(threads())
    allowed = (~mask).nonzero().flatten()
    index = faiss.IndexFlatIP(sum(p.shape[1] for p in pool_z))
    index.add(torch.cat(pool_z, dim=1)[allowed].numpy())
    queries = torch.cat(query_z, dim=1).numpy()
    found = {}

    def call():
        found["indices"] = allowed[torch.from_numpy(index.search(queries, k)[1])]

    return call, found


def faiss_installed() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def extra_mib(call) -> tuple[float, tuple]:
    """Peak memory of call() above what was held before it (resident on CPU, allocated on CUDA)."""
    from common import peak_rss_mib

    if device() == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        result = call()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20, result
    before = current_rss_mib()
    reset_peak_rss()
    result = call()
    return peak_rss_mib() - before, result


def measure(rows: int, columns: int, width: int, form: str, k: int, repeats: int) -> dict:
    import torch_al

    torch.backends.cuda.matmul.allow_tf32 = False  # the bound and ours both in exact fp32
    problem, mask = make_problem(rows, columns, width, form)
    combine = "product" if form == "pcc" else form
    ours = lambda: torch_al.pfk_topk(*problem, pool_mask=mask, k=k, combine=combine)  # noqa: E731
    extra, (values, indices) = extra_mib(ours)
    result = {"ours_extra_mib": extra}
    calls = {
        "ours": ours,
        "column": lambda: torch_al.pfk_column_topk(*problem, pool_mask=mask, k=k, combine=combine),
        "bound": bound_call(bound_factors(*problem, form), rows, columns),
    }
    if form == "pcc" and device() == "cpu" and faiss_installed() and columns <= 200_000:
        calls["faiss"], found = faiss_call(problem[0], problem[1], mask, k)
    if device() == "cpu" and torch.backends.mkldnn.is_available() and columns <= 200_000:
        calls["onednn"] = onednn_bound_call(bound_factors(*problem, form), columns)
    naive_mib = rows * columns * 4 * (3 if form == "pcc" else 5) / 2**20
    if naive_mib <= NAIVE_LIMIT_MIB[device()]:
        calls["naive"] = lambda: naive(*problem, mask, k, form)
    result |= time_interleaved(calls, repeats)
    if "faiss" in calls:
        result["faiss_same_indices"] = (found["indices"] == indices.cpu()).float().mean().item()
    return result


def check_agreement(rows: int, width: int, form: str, k: int) -> None:
    """Ours against the naive result on a 20k-point pool of the workload's shape."""
    import torch_al

    problem, mask = make_problem(rows, 20_000, width, form, seed=1)
    combine = "product" if form == "pcc" else form
    values, indices = torch_al.pfk_topk(*problem, pool_mask=mask, k=k, combine=combine)
    expected_values, expected_indices = naive(*problem, mask, k, form)
    torch.testing.assert_close(values, expected_values, rtol=1e-4, atol=1e-3 * expected_values.abs().max().item())
    agree = (indices == expected_indices).float().mean().item()
    assert agree > 0.99, f"only {agree:.3f} of the top-k indices agree"


def workload_row(rows: int, columns: int, width: int, form: str, k: int) -> dict:
    check_agreement(rows, width, form, k)
    repeats = 10 if device() == "cuda" else 3 if rows * columns * width <= 1250 * 200_000 * 80 else 1
    result = run_isolated("bench_pfk_topk", "measure", rows=rows, columns=columns, width=width, form=form, k=k, repeats=repeats)
    row = {"M": rows, "N": columns, "L": width, "form": form, "k": k, "ours_s": result["ours"], "bound_s": result["bound"],
           "ours/bound": result["ours"] / result["bound"], "column/ours": result["column"] / result["ours"],
           "ours_extra_MiB": result["ours_extra_mib"]}  # fmt: skip
    if "onednn" in result:
        row["ours/onednn"] = result["ours"] / result["onednn"]
    if "faiss" in result:
        row |= {"faiss/ours": result["faiss"] / result["ours"], "faiss_same_indices": result["faiss_same_indices"]}
    if "naive" in result:
        row["naive/ours"] = result["naive"] / result["ours"]
    return row


def main(quick: bool) -> str:
    torch.set_num_threads(threads())  # the measuring processes inherit it
    rows_out = []
    columns = ["M", "N", "L", "form", "k", "ours_s", "bound_s", "ours/bound", "ours/onednn", "column/ours", "faiss/ours",
               "faiss_same_indices", "naive/ours", "ours_extra_MiB"]  # fmt: skip
    for workload in QUICK if quick else FULL:
        rows_out.append(workload_row(*workload))
        print_table(rows_out[-1:], columns)
    print_table(rows_out, columns)
    name = "pfk_topk_cuda" if device() == "cuda" else "pfk_topk" if threads() == 1 else f"pfk_topk_threads{threads()}"
    if device() == "cpu" and "ATEN_CPU_CAPABILITY" in os.environ:  # a lowered capability: the BLAS tiles
        name += f"_{os.environ['ATEN_CPU_CAPABILITY']}"
    return write_results(
        name, rows_out, quick=quick, masked_fraction=0.1, device=device(), threads=threads(),
        faiss=device() == "cpu" and faiss_installed(),
    )  # fmt: skip
