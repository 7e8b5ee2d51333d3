"""nearest_neighbours against faiss-cpu's IndexFlatL2 and torch's cdist + topk, in one run.

Per workload: M query rows, a pool of N rows of D float32 dimensions, k = 20 nearest by squared L2
(TypiClust's typicality uses K = 20). Columns (seconds, one torch thread and one faiss thread):
  op      torch_al.nearest_neighbours(query, pool, k)
  faiss   faiss-cpu IndexFlatL2 over the pool (index built outside the timing), .search(query, k);
          install faiss-cpu for it, never a dependency
  torch   torch.cdist(query, pool chunk) and topk, merged over chunks of 50 000 pool rows
Each variant's neighbours are checked against the op's (same sets on at least 99% of the rows,
the share recorded: faiss ranks by float32 ‖q‖² − 2q·p + ‖p‖², which cancellation leaves off by
more than the gaps between close neighbours, where the op re-ranks its candidates by the
difference). Ratios:
faiss/op and torch/op (> 1: the op is faster).

Memory (a fresh process per N): the op's peak resident memory above what the inputs hold, at
N = 100 000 and 1 000 000 (M = 1000, D = 128): flat in N when the pool is streamed.
"""

import argparse
import os

import torch
from common import peak_rss_mib, print_table, reset_peak_rss, run_isolated, time_interleaved, write_results

import torch_al

K = 20
GRID = [(1000, 100_000, 128), (1000, 100_000, 768), (10_000, 100_000, 128)]
QUICK = [(200, 20_000, 64)]
MEMORY_N = [100_000, 1_000_000]
TORCH_CHUNK = 50_000


def points(m: int, n: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(m + n + d)
    centers = torch.randn(50, d, generator=generator) * 3  # clustered, as embeddings are
    pool = centers[torch.randint(0, 50, (n,), generator=generator)] + torch.randn(n, d, generator=generator)
    return pool[torch.randperm(n, generator=generator)[:m]].clone(), pool


def torch_neighbours(query: torch.Tensor, pool: torch.Tensor, k: int) -> torch.Tensor:
    best_d = best_i = None
    for first in range(0, pool.shape[0], TORCH_CHUNK):
        d = torch.cdist(query, pool[first : first + TORCH_CHUNK]).square()
        values, indices = d.topk(min(k, d.shape[1]), dim=1, largest=False)
        indices = indices + first
        if best_d is not None:
            values, at = torch.cat([best_d, values], 1).topk(k, dim=1, largest=False)
            indices = torch.cat([best_i, indices], 1).gather(1, at)
        best_d, best_i = values, indices
    return best_i


def faiss_search(query: torch.Tensor, pool: torch.Tensor, k: int):
    try:
        import faiss
    except ImportError:
        return None
    faiss.omp_set_num_threads(1)
    index = faiss.IndexFlatL2(pool.shape[1])
    index.add(pool.numpy())
    return lambda: torch.from_numpy(index.search(query.numpy(), k)[1])


def same_sets(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.sort(1).values == b.sort(1).values).all(1).double().mean())


def run_workload(m: int, n: int, d: int) -> dict:
    query, pool = points(m, n, d)
    ours = torch_al.nearest_neighbours(query, pool, K)[1]
    calls = {"op": lambda: torch_al.nearest_neighbours(query, pool, K), "torch": lambda: torch_neighbours(query, pool, K)}
    search = faiss_search(query, pool, K)
    if search is not None:
        calls["faiss"] = search
    agreement = {name: same_sets(ours, call() if name == "torch" else call()) for name, call in calls.items() if name != "op"}
    assert all(a >= 0.99 for a in agreement.values()), agreement
    times = time_interleaved(calls)
    row = {"M": m, "N": n, "D": d, "k": K, "op_s": round(times["op"], 3), "torch_s": round(times["torch"], 3)}
    row["faiss_s"] = round(times["faiss"], 3) if "faiss" in times else None
    row["faiss/op"] = round(times["faiss"] / times["op"], 2) if "faiss" in times else None
    row["torch/op"] = round(times["torch"] / times["op"], 2)
    row["same_sets"] = agreement
    return row


def measure_memory(n: int) -> dict:
    """The op's peak resident memory above the inputs', in a fresh process."""
    torch.set_num_threads(1)
    query, pool = points(1000, n, 128)
    torch_al.nearest_neighbours(query[:10], pool[:1000], K)  # load the kernels outside the peak
    reset_peak_rss()
    before = peak_rss_mib()
    torch_al.nearest_neighbours(query, pool, K)
    return {"N": n, "M": 1000, "D": 128, "inputs_mib": round((query.numel() + pool.numel()) * 4 / 2**20, 1), "extra_mib": round(peak_rss_mib() - before, 1)}


def main(quick: bool) -> str:
    torch.set_num_threads(1)
    if os.environ.get("DEVICE", "cpu") != "cpu":
        raise SystemExit("bench_nearest_neighbours measures the CPU (faiss-cpu is the peer)")
    rows = [run_workload(*w) for w in (QUICK if quick else GRID)]
    print_table(rows, ["M", "N", "D", "k", "op_s", "faiss_s", "torch_s", "faiss/op", "torch/op"])
    memory = [run_isolated("bench_nearest_neighbours", "measure_memory", n=n) for n in ([20_000] if quick else MEMORY_N)]
    print_table(memory, ["N", "M", "D", "inputs_mib", "extra_mib"])
    return write_results("nearest_neighbours", rows, memory=memory, quick=quick, threads=1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(main(parser.parse_args().quick))
