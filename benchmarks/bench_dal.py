"""Discriminative active learning: the default discriminator against the paper's width, in one run.

One selection (P = 125, n = 10 sub-queries) from a pool of 25 000 items whose representation is
50-d (the width of LeNet's fc1, the penultimate layer of the Fashion-MNIST experiment): ten
Gaussian blobs, the labeled set (250 items) drawn from blobs 0..4 only, one thread. Columns (time
in seconds for one whole selection, median of interleaved runs):
  ours    DiscriminativeAL defaults: three hidden layers of 128, each sub-query's discriminator
          trained on the labeled items and 10 × as many sampled unlabeled ones until its balanced
          training accuracy reaches 0.98 (at most 3000 Adam steps of 1024 rows)
  paper   the same with the paper's 500-unit hidden layers (hidden=500)
Ratio: paper/ours (>1: ours is faster). Before timing, both selections are checked to come from
the blobs the labeled set misses, and the overlap of their picks, the lowest training accuracy
their discriminators reached and their Adam steps are reported.
"""

import argparse

import torch
from common import print_table, time_interleaved, write_results
from torch import nn
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.strategies import DiscriminativeAL

POOL, DIM, BLOBS, LABELED, BUDGET = 25_000, 50, 10, 250, 125


def blob_pool() -> tuple[ActivePool, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    means = 3 * torch.randn(BLOBS, DIM, generator=generator)
    blob = torch.arange(POOL) % BLOBS
    pool = ActivePool(TensorDataset(means[blob] + torch.randn(POOL, DIM, generator=generator), blob))
    covered = torch.nonzero(blob < BLOBS // 2).squeeze(1)[:LABELED]
    pool.label(covered, blob[covered])
    return pool, blob


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pool, blob = blob_pool()
    model = nn.Sequential(nn.Flatten(), nn.Linear(DIM, BLOBS))  # ψ = the 50-d input of the last layer
    strategies = {"ours": DiscriminativeAL(seed=0), "paper": DiscriminativeAL(hidden=500, seed=0)}
    picks = {name: strategy.select(model, pool, BUDGET) for name, strategy in strategies.items()}
    missed = {name: float((blob[chosen] >= BLOBS // 2).float().mean()) for name, chosen in picks.items()}
    assert min(missed.values()) >= 0.9, f"picks outside the blobs the labeled set misses: {missed}"
    overlap = len(set(picks["ours"].tolist()) & set(picks["paper"].tolist())) / BUDGET
    trained = {name: strategy.last_cost.details for name, strategy in strategies.items()}
    times = time_interleaved({name: (lambda s=strategy: s.select(model, pool, BUDGET)) for name, strategy in strategies.items()}, repeats=args.repeats)
    rows = [{"pool": POOL, "dim": DIM, "budget": BUDGET, "ours_s": times["ours"], "paper_s": times["paper"],
             "paper/ours": times["paper"] / times["ours"], "missed_ours": missed["ours"], "missed_paper": missed["paper"],
             "overlap": overlap, **{f"{key}_{name}": value for name, details in trained.items() for key, value in details.items()}}]  # fmt: skip
    print_table(rows, list(rows[0]))
    print("wrote", write_results("dal", rows, threads=1, sub_queries=10))


if __name__ == "__main__":
    main()
