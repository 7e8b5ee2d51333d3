"""k-center greedy: torch_al.kcenter_greedy against the usual ways of running it, in one run.

Columns (times in seconds for the whole selection of k picks, initial set included):
  ours         torch_al.kcenter_greedy
  naive        the vectorised torch loop: min_d = torch.minimum(min_d, ((x - x[u])**2).sum(1)); u = argmax
               (an initial set first goes through chunked torch.cdist, as careful users do)
  sklearn      scikit-learn pairwise_distances(X, X[[u]]) per pick, as in google/active-learning's
               kcenter_greedy.py; an initial set through pairwise_distances_chunked. The per-pick part
               is timed on SKLEARN_PICKS picks and extrapolated to k (the initial part is timed in full).
  fpsample     fpsample's exact farthest point sampling (C++ fps_sampling), checked to pick as ours;
               it has no initial set, so it runs on the rows without one. At D <= 8 also its
               bucket_fps_kdline_sampling (a k-d line of buckets that prunes far points, made for
               3-D point clouds): its time, and whether its picks are ours (its float32 distances
               are summed in another order, so near-ties may go the other way)
  bound        k passes over the N x D float32 points at the copy bandwidth measured in this run
               (bytes read + written per second by a 256 MiB tensor copy)
Ratios: naive/ours, sklearn/ours and fpsample/ours (>1: we are faster), ours/bound (1 = at the
bandwidth bound; below 1 when x fits in cache).

The default grid is the subset of the issue's workloads (N in {50k, 200k, 1M}, D in {64, 512},
k in {125, 1000}, initial set of 0 or 1% of N) that a 2-core machine runs in a few minutes:
N in {50k, 200k} x D in {64, 512} x initial in {0, 1%} at k = 125, plus 1M x 64 without an initial
set, and N = 50k at D in {3, 16, 128} for fpsample's low dimensions. Time per pick is independent of k, so k = 1000 scales the k = 125 times by 8; `--full` runs
the whole grid. Before timing, each workload's first picks are checked against a float64 reference.
"""

import argparse
import os

import numpy as np
import torch
from common import print_table, time_call, write_results
from sklearn.metrics import pairwise_distances, pairwise_distances_chunked

import torch_al

SKLEARN_PICKS = 3
CHECK_PICKS = 8
CHUNK_ROWS = 8192


def copy_bandwidth(megabytes: int = 256) -> float:
    """Bytes moved (read + written) per second by a large tensor copy, best of 5."""
    src = torch.ones(megabytes * 2**20 // 4)
    dst = torch.empty_like(src)
    best = min(time_call(lambda: dst.copy_(src), repeats=1, warmup=1 if i == 0 else 0) for i in range(5))
    return 2 * src.numel() * 4 / best


def chunked_min_sq_dist(x: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.cdist(x[i : i + CHUNK_ROWS], centers).amin(1) ** 2 for i in range(0, len(x), CHUNK_ROWS)])


def naive_torch(x: torch.Tensor, k: int, initial: torch.Tensor | None) -> list[int]:
    if initial is None:
        picks, min_d = [0], ((x - x[0]) ** 2).sum(1)
    else:
        picks, min_d = [], chunked_min_sq_dist(x, x[initial])
    while len(picks) < k:
        u = int(torch.argmax(min_d))
        picks.append(u)
        min_d = torch.minimum(min_d, ((x - x[u]) ** 2).sum(1))
    return picks


def sklearn_loop(x: np.ndarray, picks: int, initial: np.ndarray | None) -> None:
    if initial is None:
        min_d = pairwise_distances(x, x[[0]]).ravel()
    else:
        min_d = np.concatenate(list(pairwise_distances_chunked(x, x[initial], reduce_func=lambda d, _: d.min(1))))
    for _ in range(picks):
        u = int(np.argmax(min_d))
        min_d = np.minimum(min_d, pairwise_distances(x, x[[u]]).ravel())


def reference_picks(x: torch.Tensor, k: int, initial: torch.Tensor | None) -> list[int]:
    """float64, distances from differences; the initial set through float64 cdist on centred data."""
    x64 = x.double()
    x64 -= x64.mean(0)
    if initial is None:
        picks, min_d = [0], ((x64 - x64[0]) ** 2).sum(1)
    else:
        picks, min_d = [], chunked_min_sq_dist(x64, x64[initial])
        min_d[initial] = 0
    while len(picks) < k:
        u = int(torch.argmax(min_d))
        picks.append(u)
        min_d = torch.minimum(min_d, ((x64 - x64[u]) ** 2).sum(1))
    return picks


def run_workload(n: int, d: int, k: int, with_initial: bool, bandwidth: float) -> dict:
    generator = torch.Generator().manual_seed(n + d)
    x = torch.randn(n, d, generator=generator)
    initial = torch.randperm(n, generator=generator)[: n // 100] if with_initial else None
    check = torch_al.kcenter_greedy(x, CHECK_PICKS, initial)[0].tolist()
    assert check == reference_picks(x, CHECK_PICKS, initial), f"disagreement with the reference at N={n} D={d}"

    # The check above warmed the op up; big workloads get one timed run (the box is shared and slow).
    repeats = 3 if n * d <= 4_000_000 else 1
    ours = time_call(lambda: torch_al.kcenter_greedy(x, k, initial), repeats=repeats, warmup=0)
    naive = time_call(lambda: naive_torch(x, k, initial), repeats=1, warmup=0)
    # Each sklearn_loop(x, p, None) call makes p + 1 pairwise_distances calls, one per pick.
    x_np = x.numpy()
    per_pick = time_call(lambda: sklearn_loop(x_np, SKLEARN_PICKS - 1, None), repeats=1, warmup=0) / SKLEARN_PICKS
    setup = 0.0 if initial is None else time_call(lambda: sklearn_loop(x_np, 0, initial.numpy()), repeats=1, warmup=0)
    sklearn = setup + per_pick * k
    fps = None if initial is not None else fpsample_seconds(x_np, k)
    bucket, bucket_same = (None, None) if initial is not None else fpsample_bucket(x_np, k)
    bound = k * n * d * 4 / bandwidth
    print(f"N={n} D={d} k={k} initial={with_initial}: ours {ours:.3g} s, naive {naive:.3g} s, "
          f"sklearn {sklearn:.3g} s, fpsample {fps if fps is None else f'{fps:.3g}'} s, bound {bound:.3g} s", flush=True)
    return {
        "N": n, "D": d, "k": k, "initial": len(initial) if initial is not None else 0,
        "ours_s": ours, "naive_s": naive, "sklearn_s": sklearn, "fpsample_s": fps, "fpsample_kdline_s": bucket, "kdline_same_picks": bucket_same, "bound_s": bound,
        "naive/ours": naive / ours, "sklearn/ours": sklearn / ours, "fpsample/ours": None if fps is None else fps / ours, "ours/bound": ours / bound,
    }  # fmt: skip


def fpsample_seconds(x: np.ndarray, k: int) -> float:
    """fpsample's exact sampler (fps_sampling), checked to pick what ours picks from row 0."""
    import fpsample

    ours = torch_al.kcenter_greedy(torch.from_numpy(x), CHECK_PICKS, first=0)[0].tolist()
    assert fpsample.fps_sampling(x, CHECK_PICKS, start_idx=0).tolist() == ours, "fpsample's fps_sampling picks otherwise"
    return time_call(lambda: fpsample.fps_sampling(x, k, start_idx=0), repeats=1, warmup=0)


def fpsample_bucket(x: np.ndarray, k: int) -> tuple[float | None, bool | None]:
    """fpsample's k-d line sampler (D <= 8 only): its seconds, and whether it picks all of ours."""
    import fpsample

    if x.shape[1] > 8:
        return None, None
    picks = fpsample.bucket_fps_kdline_sampling(x, k, h=7, start_idx=0)
    same = picks.tolist() == torch_al.kcenter_greedy(torch.from_numpy(x), k, first=0)[0].tolist()
    return time_call(lambda: fpsample.bucket_fps_kdline_sampling(x, k, h=7, start_idx=0), repeats=1, warmup=0), same


def workloads(quick: bool, full: bool) -> list[tuple[int, int, int, bool]]:
    if quick:
        return [(20_000, 64, 50, False), (20_000, 64, 50, True)]
    if full:
        return [(n, d, k, i) for n in (50_000, 200_000, 1_000_000) for d in (64, 512) for k in (125, 1000) for i in (False, True)]
    grid = [(n, d, 125, i) for n in (50_000, 200_000) for d in (64, 512) for i in (False, True)]
    return grid + [(1_000_000, 64, 125, False)] + [(50_000, d, 125, False) for d in (3, 16, 128)]


def main(quick: bool, full: bool = False) -> str:
    bandwidth = copy_bandwidth()
    print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s, {torch.get_num_threads()} threads, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}")
    rows = [run_workload(*w, bandwidth) for w in workloads(quick, full)]
    columns = ["N", "D", "k", "initial", "ours_s", "naive_s", "sklearn_s", "fpsample_s", "fpsample_kdline_s", "kdline_same_picks", "bound_s",
               "naive/ours", "sklearn/ours", "fpsample/ours", "ours/bound"]  # fmt: skip
    print_table(rows, columns)
    return write_results(
        "kcenter_greedy", rows, quick=quick, full=full, copy_bandwidth_bytes_per_s=bandwidth,
        sklearn_extrapolated_from_picks=SKLEARN_PICKS, openblas_coretype=os.environ.get("OPENBLAS_CORETYPE"),
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="two small workloads, under a minute")
    group.add_argument("--full", action="store_true", help="the issue's whole grid (hours on 2 cores)")
    args = parser.parse_args()
    print(main(quick=args.quick, full=args.full))
