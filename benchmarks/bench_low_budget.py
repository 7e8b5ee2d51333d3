"""ProbCover, TypiClust and MaxHerding selections against scikit-activeml 1.0's, and
coverage_greedy's greedy alone, in one run.

Points: N rows of D = 128 float32 dimensions, L2-normalised (as self-supervised features are),
drawn around 50 centers; a cold start (nothing labeled), a budget of 100, 10 classes. Columns
(seconds, one thread for torch, numpy's BLAS and scikit-learn):
  probcover   the whole selection, δ by the purity rule over scikit-activeml's default grid
              (0.2, 0.4, ..., 2.0) from k-means with 10 clusters, then the greedy:
              torch_al.strategies.ProbCover(radii=grid, classes=10, features=X) against
              skactiveml.pool.ProbCover(deltas=grid, n_classes=10)
  greedy      the greedy alone at one δ (the purity rule's): torch_al.coverage_greedy against
              skactiveml's ProbCover(deltas=[δ]) (its N x N distances and edges included: that is
              how it computes them)
  typiclust   k-means into 100 clusters, typicality with K = 20 neighbours, one pick per cluster:
              TypiClust(neighbours=20, features=X) against skactiveml.pool.TypiClust(k=20)
  maxherding  the greedy generalised coverage with exp(-||x - x'||^2):
              MaxHerding(gamma=1, features=X) against skactiveml.pool.MaxHerding(metric_dict={"gamma": 1})
scikit-activeml holds the N x N float64 distance (or kernel) matrix (and a bool one per δ), so it runs up to
N = 20 000 (3.2 GB); at N = 100 000 it would need 80 GB and is not run. small-text 1.4.1 (the
release installable from PyPI) implements neither method (its 2.0 is unreleased). Each row with
the peer records whether its greedy, with its random tie-breaking made first-of-equals, picks
exactly ours (same_greedy_picks).
Install scikit-activeml for the peer columns; it is never a dependency.
"""

import argparse
import os

import numpy as np
import torch
from common import print_table, time_interleaved, write_results

import torch_al
from torch_al.strategies import MaxHerding, ProbCover, TypiClust

BUDGET = 100
CLASSES = 10
GRID = np.arange(0.2, 2.2, 0.2)
PEER_MAX_N = 20_000
SIZES = [2_000, 10_000, 20_000, 100_000]
QUICK = [2_000]


def points(n: int, d: int = 128) -> torch.Tensor:
    generator = torch.Generator().manual_seed(n + d)
    centers = torch.randn(50, d, generator=generator) * 3
    x = centers[torch.randint(0, 50, (n,), generator=generator)] + torch.randn(n, d, generator=generator)
    return torch.nn.functional.normalize(x, dim=1)


def cold_pool(n: int) -> torch_al.ActivePool:
    return torch_al.ActivePool(torch.utils.data.TensorDataset(torch.zeros(n, 1), torch.zeros(n, dtype=torch.int64)))


def peers():
    try:
        from skactiveml.pool import MaxHerding as TheirMaxHerding
        from skactiveml.pool import ProbCover as TheirProbCover
        from skactiveml.pool import TypiClust as TheirTypiClust
    except ImportError:
        return None
    return TheirProbCover, TheirTypiClust, TheirMaxHerding


def same_greedy_picks(x: torch.Tensor, features: np.ndarray, y: np.ndarray, radius: float) -> bool:
    """Whether scikit-activeml's greedy, its random ties made first-of-equals (ours), picks ours."""
    from skactiveml.pool import _prob_cover

    random_ties = _prob_cover.rand_argmax
    _prob_cover.rand_argmax = lambda values, random_state=None: np.array([np.nanargmax(values)])
    try:
        theirs = _prob_cover.ProbCover(deltas=[radius], random_state=0).query(features, y, batch_size=BUDGET)
    finally:
        _prob_cover.rand_argmax = random_ties
    return theirs.tolist() == torch_al.coverage_greedy(x, radius, BUDGET)[0].tolist()


def run_size(n: int) -> dict:
    x = points(n)
    pool = cold_pool(n)
    ours = {
        "probcover": ProbCover(radii=torch.from_numpy(GRID), classes=CLASSES, features=x, normalise=False),
        "typiclust": TypiClust(neighbours=20, features=x),
        "maxherding": MaxHerding(gamma=1.0, features=x),
    }
    ours["probcover"].select(None, pool, BUDGET)
    radius = ours["probcover"].last_cost.details["radius"]
    calls = {f"{name}_op": (lambda s=strategy: s.select(None, pool, BUDGET)) for name, strategy in ours.items()}
    calls["greedy_op"] = lambda: torch_al.coverage_greedy(x, radius, BUDGET)
    classes = peers()
    agree = None
    if classes is not None and n <= PEER_MAX_N:
        their_probcover, their_typiclust, their_maxherding = classes
        features, y = x.double().numpy(), np.full(n, np.nan)
        calls["probcover_peer"] = lambda: their_probcover(deltas=GRID, n_classes=CLASSES, random_state=0).query(features, y, batch_size=BUDGET)
        calls["greedy_peer"] = lambda: their_probcover(deltas=[radius], random_state=0).query(features, y, batch_size=BUDGET)
        calls["typiclust_peer"] = lambda: their_typiclust(k=20, random_state=0).query(features, y, batch_size=BUDGET)
        calls["maxherding_peer"] = lambda: their_maxherding(metric_dict={"gamma": 1.0}, random_state=0).query(features, y, batch_size=BUDGET)
        agree = same_greedy_picks(x, features, y, radius)
    times = time_interleaved(calls, repeats=1 if n >= PEER_MAX_N else 3)
    row = {"N": n, "D": x.shape[1], "budget": BUDGET, "radius": round(radius, 3), "same_greedy_picks": agree}
    for name in ("probcover", "greedy", "typiclust", "maxherding"):
        row[f"{name}_op_s"] = round(times[f"{name}_op"], 3)
        peer = times.get(f"{name}_peer")
        row[f"{name}_peer_s"] = round(peer, 3) if peer is not None else None
        row[f"{name} peer/op"] = round(peer / times[f"{name}_op"], 1) if peer is not None else None
    return row


def main(quick: bool) -> str:
    if os.environ.get("DEVICE", "cpu") != "cpu":
        raise SystemExit("bench_low_budget measures the CPU (scikit-activeml is the peer)")
    torch.set_num_threads(1)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        rows = [run_size(n) for n in (QUICK if quick else SIZES)]
    columns = ["N", "radius", "same_greedy_picks"]
    for name in ("probcover", "greedy", "typiclust", "maxherding"):
        columns += [f"{name}_op_s", f"{name}_peer_s", f"{name} peer/op"]
    print_table(rows, columns)
    return write_results("low_budget", rows, quick=quick, threads=1, peer_max_n=PEER_MAX_N)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(main(parser.parse_args().quick))
