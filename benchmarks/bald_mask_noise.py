"""BALD's picks with consistent masks against per-item masks, at the experiment's T = 16.

    python benchmarks/bald_mask_noise.py [--seeds 0 1 2] [--labels 250 750] [--reference 256]

Why: with consistent masks (pass t one weight sample for every item) the experiment's BALD line
ends lower than the single seed run before them with a mask per item. Both estimate the same
per-item score, but per-item masks add noise that is independent from item to item, and a top-P
rule turns such noise into spread. This measures how much of the picks that noise decides.

Per seed and labeled-set size, a LeNet trained on random labels of the r = 100 Fashion-MNIST pool
(the experiment's recipe) scores its unlabeled items with BALD at T = 16, with consistent masks
(torch_al) and with a mask per item (dropout in training mode, as before); the reference is the
consistent-mask ranking at T = ``--reference``, where both estimators agree. Reported per
estimator: how many of its top 125 are in the reference's top 125, the share of its most
frequent class among them, and its rare items (classes 5..9). JSON in
benchmarks/results/bald_mask_noise.json.
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_mc_dropout import per_item_scores  # noqa: E402
from common import print_table, write_results  # noqa: E402
from random_label_model import trained_on_random_labels  # noqa: E402

from torch_al.experiment import MINORITY, RunConfig  # noqa: E402
from torch_al.provenance import code_version  # noqa: E402
from torch_al.strategies import BALD  # noqa: E402

BUDGET = 125
PASSES = 16  # the experiment's T


def top_picks(scores: torch.Tensor, classes: torch.Tensor, reference: set[int]) -> dict:
    top = scores.topk(BUDGET).indices
    counts = classes[top].bincount(minlength=10)
    return {
        "in_reference_top": len(reference & set(top.tolist())), "top_class_share": round(counts.max().item() / BUDGET, 3),
        "rare": int(torch.isin(classes[top], torch.tensor(MINORITY)).sum()),
    }  # fmt: skip


def measure(seed: int, labels: int, reference_passes: int) -> list[dict]:
    config = RunConfig(dataset="fashion-mnist", imbalance=100, seed=seed, progress=False)
    model, splits, pool = trained_on_random_labels(config, labels)
    candidates = pool.unlabeled_indices
    classes = splits.pool.tensors[1][candidates]
    consistent = lambda passes: BALD(passes=passes, progress=False, seed=seed).item_scores(model, pool, candidates)  # noqa: E731
    reference = set(consistent(reference_passes).topk(BUDGET).indices.tolist())
    torch.manual_seed(seed)
    estimators = {"consistent": consistent(PASSES), "per_item": per_item_scores(model, splits.pool.tensors[0][candidates], PASSES)}
    rows = [{"seed": seed, "labels": labels, "masks": name, **top_picks(scores, classes, reference)} for name, scores in estimators.items()]
    print_table(rows, list(rows[0]))
    return rows


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--labels", type=int, nargs="+", default=[250, 750], help="random labels each model is trained on")
    parser.add_argument("--reference", type=int, default=256, help="T of the reference ranking")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [row for seed in args.seeds for labels in args.labels for row in measure(seed, labels, args.reference)]
    summary = [
        {"masks": name, **{key: round(sum(r[key] for r in rows if r["masks"] == name) / (len(rows) // 2), 3) for key in ("in_reference_top", "top_class_share", "rare")}}
        for name in ("consistent", "per_item")
    ]  # fmt: skip
    print_table(summary, list(summary[0]))
    return write_results("bald_mask_noise", rows, setup=vars(args), summary=summary, code=code_version())


if __name__ == "__main__":
    print(main())
