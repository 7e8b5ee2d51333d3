"""BALD through the experiment's whole loop with a mask per item, against the recorded BALD runs
with consistent masks: does the per-item noise account for the accuracy BALD lost?

    python benchmarks/bald_per_item_loop.py [--seeds 0 … 9] [--work build/bald_per_item_loop]

Why: the experiment's BALD line (consistent masks, T = 16) ends below the single per-item-mask seed
run before (0.676 over 10 seeds against 0.757). `bald_mask_noise.py` shows that per-item masks let
independent noise pick part of the batch and spread it over classes; this runs the counterfactual
end to end. Each seed is one run of the experiment's r = 100 setup (the same pool, initial model,
training and T as the recorded line: the run's setup hash must equal the recorded run's) in which
BALD's T passes draw a dropout mask per element from torch's global generator (dropout modules in
training mode, seeded per round), as MC dropout did before consistent masks. Nothing else
differs. Reported: per seed and paired over seeds (per-item − consistent) the final accuracy, the
mean over rounds 1–10 and the rare items labeled; records in benchmarks/results/bald_per_item_runs/,
the summary in benchmarks/results/bald_per_item_loop.json.
"""

import argparse
import json
import os
import shutil
import sys
from contextlib import contextmanager

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import al_fashion_mnist  # noqa: E402
from common import RESULTS_DIR, print_table, write_results  # noqa: E402
from seed_statistics import paired_difference  # noqa: E402

from torch_al.experiment import run_experiment  # noqa: E402
from torch_al.provenance import code_version  # noqa: E402
from torch_al.strategies.bayesian import mc_dropout  # noqa: E402
from torch_al.strategies.registry import REGISTRY  # noqa: E402

LINE = "bald-per-item-masks"
IMBALANCE = 100.0


class PerItemMasks:
    """The interface of ``ConsistentMasks`` without masks of its own: inside :meth:`applied` the
    dropout modules run in training mode, so each element of each pass draws its own mask from
    torch's global generator, seeded from (seed, round) and restored afterwards."""

    def __init__(self, dropouts: list, passes: int, seed: int) -> None:
        self.modules = [module for _, module in dropouts]
        self.seed = seed  # MonteCarloDropout derives it from (seed, round)

    def passes(self, first: int, count: int, items: int) -> None:
        """Nothing to prepare: the masks are drawn as the modules run."""

    @contextmanager
    def applied(self):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            for module in self.modules:
                module.train()
            try:
                yield self
            finally:
                for module in self.modules:
                    module.eval()


def recorded(seed: int, line: str, records: str) -> tuple[list[dict], dict]:
    folder = os.path.join(records, f"r{IMBALANCE:g}", f"seed{seed}", line, al_fashion_mnist.line_strategy(line)[0])
    with open(os.path.join(folder, "metrics.json")) as metrics, open(os.path.join(folder, "run.json")) as run:
        return json.load(metrics), json.load(run)


def run_seed(args: argparse.Namespace, grid: argparse.Namespace, seed: int) -> str:
    """One per-item-mask run, its records copied to ``args.records``; a recorded run is kept."""
    target = os.path.join(args.records, f"seed{seed}")
    if al_fashion_mnist.finished(target, grid.rounds) is None:
        config = al_fashion_mnist.line_config(grid, IMBALANCE, seed, LINE, args.work)
        run_experiment(config)
        os.makedirs(target, exist_ok=True)
        for name in ("metrics.json", "run.json"):
            shutil.copyfile(os.path.join(config.out, LINE, name), os.path.join(target, name))
    return target


def summary_of(records: list[dict]) -> dict:
    return {"final": records[-1]["accuracy"], "mean": float(np.mean([r["accuracy"] for r in records[1:]])), "rare": records[-1]["labeled_minority"]}


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--work", default=os.path.join("build", "bald_per_item_loop"))
    parser.add_argument("--records", default=os.path.join(RESULTS_DIR, "bald_per_item_runs"))
    parser.add_argument("--consistent", default=os.path.join(RESULTS_DIR, "al_fashion_mnist_runs"), help="the experiment's records")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    mc_dropout.ConsistentMasks = PerItemMasks  # this process runs the per-item line alone
    REGISTRY[LINE] = REGISTRY["bald"]
    grid = al_fashion_mnist.parse_args(["--imbalance", f"{IMBALANCE:g}", "--seeds", *map(str, args.seeds)])
    rows, per_item, consistent = [], [], []
    for seed in args.seeds:
        with open(os.path.join(run_seed(args, grid, seed), "metrics.json")) as f:
            ours = summary_of(json.load(f))
        with open(os.path.join(args.records, f"seed{seed}", "run.json")) as f:
            setup = json.load(f)["setup_hash"]
        records, run = recorded(seed, "bald", args.consistent)
        if run["setup_hash"] != setup:
            raise SystemExit(f"seed {seed}: the recorded BALD run has another setup ({run['setup_hash']} vs {setup})")
        theirs = summary_of(records)
        per_item.append(ours)
        consistent.append(theirs)
        rows.append({"seed": seed, **{f"per_item_{k}": round(v, 4) for k, v in ours.items()}, **{f"consistent_{k}": round(v, 4) for k, v in theirs.items()}})
    print_table(rows, list(rows[0]))
    paired = {key: paired_difference(np.array([r[key] for r in per_item]), np.array([r[key] for r in consistent])) for key in ("final", "mean", "rare")}
    for key, value in paired.items():
        print(f"per-item − consistent, {key}: {value}")
    means = {name: {key: round(float(np.mean([r[key] for r in runs])), 4) for key in ("final", "mean", "rare")} for name, runs in (("per_item", per_item), ("consistent", consistent))}
    return write_results("bald_per_item_loop", rows, seeds=args.seeds, means=means, paired=paired, code=code_version())


if __name__ == "__main__":
    print(main())
