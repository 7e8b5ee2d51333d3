"""pfk_topk against the bare matrix products of the same tiles and the naive materialise+topk way.

Workloads of issue 3: M query rows, N pool points, J scales of total width L for z (and the same for
g when gradients are used), k = 1, 10% of the pool masked. Each variant runs in its own process so
its peak memory is its own; `extra_mib` is the peak minus the resident size once the inputs exist.
Every variant uses THREADS torch threads (default 1): on the shared 2-core development machine
(load average 6-8) multithreaded timings measure the neighbours, not the code.
"""

import os

import torch

from common import print_table, run_isolated, time_call, write_results

WIDTHS = {80: (10, 20, 50), 768: (256, 512)}  # LeNet's three layers; two wide layers
FULL = [  # (M, N, L, gradients)
    (125, 50_000, 80, True), (125, 50_000, 80, False), (1250, 50_000, 80, True),
    (125, 600_000, 80, True), (1250, 600_000, 80, True), (1250, 600_000, 80, False),
    (125, 50_000, 768, True), (1250, 50_000, 768, True), (125, 600_000, 768, False),
    (1250, 2_000_000, 768, False),
]
QUICK = [(125, 50_000, 80, True), (125, 50_000, 80, False), (125, 50_000, 768, True)]
NAIVE_LIMIT_MIB = 12 * 1024  # R plus the masked copy must stay well inside this machine's 24 GiB


def make_problem(rows: int, columns: int, width: int, gradients: bool, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    parts = [
        [torch.randn(n, c, generator=generator) for c in WIDTHS[width]] for n in (rows, columns)
    ]
    if gradients:
        parts += [[torch.randn(n, c, generator=generator) for c in WIDTHS[width]] for n in (rows, columns)]
    else:
        parts += [[], []]
    mask = torch.rand(columns, generator=generator) < 0.1
    return parts, mask


def naive(query_z, pool_z, query_g, pool_g, mask, k):
    scores = sum(q @ p.T for q, p in zip(query_z, pool_z))
    if query_g:
        scores = scores * sum(q @ p.T for q, p in zip(query_g, pool_g))
    return scores.masked_fill_(mask, float("-inf")).topk(k, dim=1)


def bare_products(query_z, pool_z, query_g, pool_g, mask, k):
    """The J (or 2J) torch.mm calls over the pool tiles pfk_topk uses, nothing else."""
    rows = query_z[0].shape[0]
    width = min(max((1 << 22) // (4 * rows), 64), 16384)  # csrc/cpu/pfk_stream.cpp tile_width
    out = torch.empty(rows, width)
    for begin in range(0, pool_z[0].shape[0], width):
        for q, p in zip(query_z + query_g, pool_z + pool_g):
            tile = p[begin : begin + width]
            torch.mm(q, tile.T, out=out[:, : tile.shape[0]])


def current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(variant: str, rows: int, columns: int, width: int, gradients: bool, repeats: int) -> dict:
    import torch_al  # noqa: F401  (registers the ops in this fresh process)
    from common import peak_rss_mib

    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    (query_z, pool_z, query_g, pool_g), mask = make_problem(rows, columns, width, gradients)
    functions = {"ours": torch_al.pfk_topk, "naive": naive, "mm": bare_products}
    before = current_rss_mib()
    seconds = time_call(lambda: functions[variant](query_z, pool_z, query_g, pool_g, mask, 1), repeats, warmup=0)
    return {"seconds": seconds, "peak_mib": peak_rss_mib(), "extra_mib": peak_rss_mib() - before}


def check_agreement(rows: int, width: int, gradients: bool) -> None:
    """Ours against the naive result on a 20k-point slice of the workload's shape."""
    import torch_al

    parts, mask = make_problem(rows, 20_000, width, gradients, seed=1)
    values, indices = torch_al.pfk_topk(*parts, pool_mask=mask, k=1)
    expected_values, expected_indices = naive(*parts, mask, 1)
    torch.testing.assert_close(values, expected_values, rtol=1e-4, atol=1e-3)
    agree = (indices == expected_indices).float().mean().item()
    assert agree > 0.99, f"only {agree:.3f} of the argmaxes agree"


def main(quick: bool) -> str:
    rows_out = []
    for rows, columns, width, gradients in QUICK if quick else FULL:
        check_agreement(rows, width, gradients)
        repeats = 3 if rows * columns <= 125 * 600_000 else 1
        config = dict(rows=rows, columns=columns, width=width, gradients=gradients, repeats=repeats)
        ours = run_isolated("bench_pfk_topk", "measure", variant="ours", **config)
        mm = run_isolated("bench_pfk_topk", "measure", variant="mm", **config)
        row = {
            "M": rows, "N": columns, "L": width, "grads": gradients,
            "ours_s": ours["seconds"], "mm_s": mm["seconds"], "ours/mm": ours["seconds"] / mm["seconds"],
            "ours_extra_MiB": ours["extra_mib"], "ours_peak_MiB": ours["peak_mib"],
        }
        naive_mib = 2 * rows * columns * 4 / 2**20 * (2 if gradients else 1)
        if naive_mib <= NAIVE_LIMIT_MIB:
            baseline = run_isolated("bench_pfk_topk", "measure", variant="naive", **config)
            row |= {"naive_s": baseline["seconds"], "naive/ours": baseline["seconds"] / ours["seconds"],
                    "naive_extra_MiB": baseline["extra_mib"]}
        else:
            row["naive_s"] = f"skipped: needs ~{naive_mib / 1024:.0f} GiB of M x N temporaries"
        rows_out.append(row)
        print_table([row], list(row))
    columns = ["M", "N", "L", "grads", "ours_s", "mm_s", "ours/mm", "naive_s", "naive/ours",
               "ours_extra_MiB", "naive_extra_MiB", "ours_peak_MiB"]
    print_table(rows_out, columns)
    return write_results(
        "pfk_topk", rows_out, quick=quick, k=1, masked_fraction=0.1, threads=int(os.environ.get("THREADS", "1"))
    )
