"""The PFK paper's experiment on Fashion-MNIST: every strategy, class imbalance r ∈ {1, 10, 100}.

    python benchmarks/al_fashion_mnist.py --quick                    # < 10 min: r = 100, one seed, 5 rounds
    python benchmarks/al_fashion_mnist.py --imbalance 100 --jobs 2   # the grid, two processes (hours)
    python benchmarks/al_fashion_mnist.py --summarise                # tables, plots and JSON of what is done

Setup (the paper's): Debian's Fashion-MNIST, 60k train → balanced 10k validation + 50k pool,
classes 5..9 of the pool decimated so classes 0..4 : 5..9 = r; the 10k test set only evaluates.
LeNet (conv 10, conv 20, fc 50; descriptors L = 80 after the non-linearities), SGD lr 0.05,
momentum 0.5, batch 25, lr × 0.1 every 15 epochs, fine-tuned across rounds, no initial labels;
P = 125 per round, B = 10 rounds. Each (r, seed, line) is one ``torch_al.experiment`` run in its
own folder, so lines and seeds run as parallel processes (``--jobs``) and an interrupted grid
resumes where it stopped; every line of a seed sees the same pool, validation set and initial
model. A finished run's ``metrics.json`` and ``run.json`` (the code and configuration that made
it) are copied to ``--records``; a run already there is not run again.

Reported per imbalance, over seeds: accuracy per round (mean and 95% bootstrap interval), the
labels each line needs to reach the final accuracy of the best baseline (intervals from a paired
bootstrap over the seeds both lines ran), the PFK lines against each baseline seed by seed (wins
and the paired-bootstrap interval of the difference), and compute per round. Lines made by other
code or another setup are refused unless ``--mixed`` (each line then names its code).
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context

import numpy as np
import torch
from tqdm.auto import tqdm

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import RESULTS_DIR, machine_info, print_table  # noqa: E402
from seed_statistics import bootstrap, mean_interval, paired_difference  # noqa: E402

from torch_al.experiment import RARE_CLASSES, TRAINED_PARTS, RunConfig, base_strategy, pretraining_of, run_experiment, setup_hash  # noqa: E402
from torch_al.persistence import atomic_write_bytes  # noqa: E402
from torch_al.plots import learning_curve  # noqa: E402
from torch_al.provenance import code_identity, code_version  # noqa: E402

# Cheapest and most telling first, so a grid stopped early has the lines the headline needs.
STRATEGIES = (
    "random", "entropy", "pfk", "variation-ratio", "pfk+rotation", "pfk-product-true", "pfk-L20", "bald", "pcc", "coreset",
    "pfk-product-argmax", "pfk-fisher-match", "pfk-fisher-argmax", "pfk-sum-match", "pfk-sum-argmax", "eba",
    "ceal", "suggestive", "badge", "emoc", "batchbald",
    "ensemble-entropy", "ensemble-bald", "ensemble-variation-ratio", "qbc-vote-entropy",
    "learning-loss", "dal", "vaal", "m2-vaal", "m2-anchor-distance", "m2-confidence-distance", "bgadl",
    # The PFK paper's own setting: every method starts from the rotation-pretrained model.
    "random+rotation", "entropy+rotation", "variation-ratio+rotation", "badge+rotation",
    # Issue 28: the methods for imbalanced pools and the class-balanced controls.
    "direct", "galaxy", "balanced-entropy", "balanced-margin", "direct+rotation", "galaxy+rotation", "pfk-direct", "pfk-direct+rotation",
)  # fmt: skip
QUICK_STRATEGIES = ("random", "entropy", "pfk")
# Issue 29's low-budget protocol (--low-budget): 10 labels a round from none, the cold-start
# methods on self-supervised embeddings beside the uncertainty, diversity and PFK lines.
LOW_BUDGET_STRATEGIES = (
    "random", "typiclust+simclr", "probcover+simclr", "maxherding+simclr", "pfk+simclr", "entropy", "coreset", "badge",
    "pfk", "pfk+rotation", "typiclust", "probcover", "maxherding", "coreset+simclr", "badge+simclr", "random+simclr",
    "uherding+simclr", "uherding",
)  # fmt: skip
LOW_BUDGET = 10
# Lines run with options of their own: name → (strategy, RunConfig options).
LINES = {
    "pfk-L20": ("pfk", {"layers": ("act2",)}),  # the paper's L = 20: conv2 alone
    # BatchBALD sized to its budget (docs/methods.md): T = 64 passes, the greedy over the 16·P
    # items of highest BALD score.
    "batchbald": ("batchbald", {"passes": 64, "shortlist": 2000}),
}
UNCERTAINTY = ("entropy", "margin", "least-confidence", "max-entropy", "bald", "variation-ratio")
MC_DROPOUT = ("max-entropy", "bald", "variation-ratio")  # the paper's uncertainty baselines
MATCHING = ("pcc", "pfk", "eba")  # the distribution-matching family, against everything else
HEADLINE = ("pfk", "pfk+rotation", "pfk-direct", "pfk-direct+rotation")  # compared seed by seed with every baseline
PAPER_PASSES = 128  # the paper's T
TARGET = {"imbalance": 100.0, "label_savings": 0.40, "compute_ratio": 0.10}
# Issue 29's goal: the whole pool's accuracy (one round of every label, the summary below) reached
# with at most 0.5% of the r = 100 pool labeled.
LOW_BUDGET_GOAL = {"labels": 126, "reference": "al_fashion_mnist_budget25250.json"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="r = 100, one seed, 5 rounds, random/entropy/pfk, 20 epochs")
    parser.add_argument("--imbalance", type=float, nargs="+", help="r values (default 1 10 100; quick: 100)")
    parser.add_argument("--seeds", type=int, nargs="+", help="default 0 … 9 (quick: 0)")
    parser.add_argument("--strategies", nargs="+", help="default: the whole list (quick: random entropy pfk)")
    parser.add_argument("--rounds", type=int, help="B (default 10, quick 5)")
    parser.add_argument("--budget", type=int, help="P, labels per round (default 125; --low-budget: 10)")
    parser.add_argument("--low-budget", action="store_true", help=f"issue 29's protocol: P = {LOW_BUDGET} from none, the low-budget lines (runs in r<R>-budget{LOW_BUDGET}/)")
    parser.add_argument("--epochs", type=int, help="training epochs per round (default 50, quick 20)")
    parser.add_argument("--min-steps", type=int, default=0, help="at least this many SGD steps per round (runs in r<R>-...-steps<S>/)")
    parser.add_argument("--train", choices=TRAINED_PARTS, default="all", help="head: the last layer alone trains, the backbone frozen (runs in r<R>-...-head/)")
    parser.add_argument("--evaluate-on", choices=("test", "validation"), default="test", help="validation: accuracy on the held-out labeled set, to choose settings (runs in r<R>-...-validation/)")
    parser.add_argument("--passes", type=int, default=16, help="T of MC dropout (the paper: 128; see the README for the cost)")
    parser.add_argument("--steps", type=int, default=8, help="integrated-gradient steps of EBA (the paper: 128)")
    parser.add_argument("--work", help="run folders with their checkpoints (default build/al_fashion_mnist[_quick])")
    parser.add_argument("--records", help="finished runs' metrics.json and run.json (default benchmarks/results/al_fashion_mnist_runs; quick: the work folder)")
    parser.add_argument("--results", help="where the JSON and PNGs go (default benchmarks/results; quick: the work folder)")
    parser.add_argument("--label-noise", type=float, default=0.0, help="fraction of wrong simulated answers (runs in r<R>-noise<F>/)")
    parser.add_argument("--rare-classes", choices=RARE_CLASSES, default="5-9", help="the rare half: 5-9, or drawn per seed (runs in r<R>-drawn/)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time, each its own process")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per process")
    parser.add_argument("--summarise", action="store_true", help="only summarise the runs already recorded")
    parser.add_argument("--mixed", action="store_true", help="summarise lines made by other code or another setup too, each marked")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=sys.stderr.isatty(), help="a bar per run (default: on a terminal)")
    args = parser.parse_args(argv)
    lines = QUICK_STRATEGIES if args.quick else LOW_BUDGET_STRATEGIES if args.low_budget else STRATEGIES
    defaults = {"imbalance": [100.0] if args.quick else [1.0, 10.0, 100.0], "seeds": [0] if args.quick else list(range(10)),
                "strategies": list(lines), "rounds": 5 if args.quick else 10, "epochs": 20 if args.quick else 50,
                "budget": LOW_BUDGET if args.low_budget else 125}  # fmt: skip
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    name = ("al_fashion_mnist_quick" if args.quick else "al_fashion_mnist") + variant_suffix(args, "_")
    args.work = args.work or os.path.join("build", name)
    args.records = args.records or (args.work if args.quick else os.path.join(RESULTS_DIR, "al_fashion_mnist_runs"))
    args.results = args.results or (args.work if args.quick else RESULTS_DIR)
    args.name = name
    return args


def variant_suffix(args: argparse.Namespace, separator: str = "-") -> str:
    """What sets these runs apart from the paper's setting (no noise, classes 5..9 rare, 125 labels a
    round, the whole model trained, accuracy on the test set), for folder and file names: "",
    "-noise0.1", "-drawn", "-budget10", "-noise0.1-drawn", "-budget10-head-steps500-validation"."""
    parts = ([f"noise{args.label_noise:g}"] if args.label_noise else []) + (["drawn"] if args.rare_classes != "5-9" else [])
    parts += [f"budget{args.budget}"] if args.budget != 125 else []
    parts += (["head"] if args.train != "all" else []) + ([f"steps{args.min_steps}"] if args.min_steps else [])
    parts += ["validation"] if args.evaluate_on != "test" else []
    return "".join(separator + part for part in parts)


def line_strategy(line: str) -> tuple[str, dict]:
    """The strategy a line runs and its own RunConfig options."""
    return LINES.get(line, (line, {}))


def line_config(args: argparse.Namespace, imbalance: float, seed: int, line: str, folder: str) -> RunConfig:
    strategy, options = line_strategy(line)
    settings = {"passes": args.passes, "steps": args.steps, **options}
    return RunConfig(
        dataset="fashion-mnist", strategy=(strategy,), imbalance=imbalance, rounds=args.rounds, budget=args.budget, initial=0,
        epochs=args.epochs, seed=seed, out=os.path.join(folder, f"r{imbalance:g}{variant_suffix(args)}", f"seed{seed}", line), progress=False,
        label_noise=args.label_noise, rare_classes=args.rare_classes, min_steps=args.min_steps, train=args.train, evaluate_on=args.evaluate_on,
        pretrained_cache=os.path.join(args.work, "pretrained"), **settings,
    )  # fmt: skip


def run_path(args: argparse.Namespace, imbalance: float, seed: int, line: str, folder: str | None = None) -> str:
    """The folder of one run's strategy: its checkpoint, metrics.json and run.json."""
    return os.path.join(line_config(args, imbalance, seed, line, folder or args.records).out, line_strategy(line)[0])


def metrics_path(args: argparse.Namespace, imbalance: float, seed: int, line: str) -> str:
    return os.path.join(run_path(args, imbalance, seed, line), "metrics.json")


def finished(path: str, rounds: int) -> list[dict] | None:
    """A run's records when all its rounds are done, else None."""
    metrics = os.path.join(path, "metrics.json")
    if not os.path.exists(metrics) or not os.path.exists(os.path.join(path, "run.json")):
        return None
    with open(metrics) as f:
        records = json.load(f)
    return records if len(records) == rounds + 1 else None


def _run_line(config: RunConfig, threads: int, record_to: str) -> str:
    """One run in a process of its own; its two record files are copied to ``record_to``."""
    torch.set_num_threads(threads)
    run_experiment(config)
    done = os.path.join(config.out, config.strategy[0])
    if os.path.abspath(done) != os.path.abspath(record_to):  # quick mode records in the work folder
        os.makedirs(record_to, exist_ok=True)
        for name in ("run.json", "metrics.json"):
            shutil.copyfile(os.path.join(done, name), os.path.join(record_to, name))
    return record_to


def run_grid(args: argparse.Namespace) -> None:
    """Every (imbalance, seed, line) not yet recorded, ``args.jobs`` at a time, seed by seed."""
    tasks = [
        (imbalance, seed, line) for imbalance in args.imbalance for seed in args.seeds for line in args.strategies
        if finished(run_path(args, imbalance, seed, line), args.rounds) is None
    ]  # fmt: skip
    print(f"{len(tasks)} runs to do, {args.jobs} at a time; records in {args.records}", flush=True)
    if not tasks:
        return
    bars: dict[tuple, tqdm] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(args, bars, stop), daemon=True)
    watcher.start()
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        futures = {}
        for task in tasks:
            config = line_config(args, *task, args.work)
            futures[pool.submit(_run_line, config, args.threads, run_path(args, *task))] = task
            if args.progress:
                bars[task] = tqdm(total=args.rounds + 1, desc=f"r={task[0]:g} seed {task[1]} {task[2]}", position=len(bars), leave=True, disable=False)
        failures = []
        for future in as_completed(futures):
            task = futures[future]
            try:
                future.result()
                print(f"done: r={task[0]:g} seed {task[1]} {task[2]}", flush=True)
            except Exception as error:  # the others go on; the summary says what is missing
                failures.append((task, repr(error)))
                print(f"FAILED: r={task[0]:g} seed {task[1]} {task[2]}: {error!r}", flush=True)
    stop.set()
    watcher.join()
    if failures:
        raise SystemExit(f"{len(failures)} runs failed: {failures}")


def _watch(args: argparse.Namespace, bars: dict, stop: threading.Event) -> None:
    """Moves each run's bar to the rounds its checkpoint has evaluated."""
    while not stop.wait(5):
        for (imbalance, seed, line), bar in list(bars.items()):
            path = os.path.join(run_path(args, imbalance, seed, line, args.work), "metrics.json")
            try:
                with open(path) as f:
                    done = len(json.load(f))
            except (OSError, ValueError):
                continue
            bar.update(done - bar.n)


def seed_runs(args: argparse.Namespace, imbalance: float, line: str) -> dict[int, tuple[list[dict], dict]]:
    """seed → (records, run.json) of the line's finished runs."""
    runs = {}
    for seed in args.seeds:
        path = run_path(args, imbalance, seed, line)
        records = finished(path, args.rounds)
        if records is not None:
            with open(os.path.join(path, "run.json")) as f:
                runs[seed] = (records, json.load(f))
    return runs


def summarise_line(runs: dict[int, list[dict]]) -> dict:
    """Mean and 95% bootstrap interval over seeds of the accuracy per round, per-seed curves for
    the paired comparisons, and the mean cost per selection round."""
    seeds = sorted(runs)
    accuracy = np.array([[record["accuracy"] for record in runs[seed]] for seed in seeds])  # [seeds, rounds + 1]
    low, high = mean_interval(accuracy)
    area = accuracy[:, 1:].mean(1)  # area under the curve, rounds 1..B: the model with labels
    area_low, area_high = mean_interval(area)
    selections = [record for seed in seeds for record in runs[seed][:-1]]
    first = runs[seeds[0]]
    return {
        "seeds": len(seeds), "seed_list": seeds, "labeled": [record["labeled"] for record in first],
        "accuracy": _rounded(accuracy.mean(0)), "accuracy_low": _rounded(low), "accuracy_high": _rounded(high),
        "accuracy_std": _rounded(accuracy.std(0, ddof=1) if len(seeds) > 1 else 0 * accuracy[0]),
        "minority_accuracy": _rounded(np.mean([[r["minority_accuracy"] for r in runs[s]] for s in seeds], 0)),
        "mean_accuracy": round(float(area.mean()), 4), "mean_accuracy_low": round(float(area_low), 4), "mean_accuracy_high": round(float(area_high), 4),
        "labeled_minority": _rounded(np.mean([[r["labeled_minority"] for r in runs[s]] for s in seeds], 0), 1),
        "passes_per_round": round(statistics.fmean(r["select_forward"] + r["select_backward"] for r in selections)),
        "select_seconds_per_round": round(statistics.fmean(r["select_seconds"] for r in selections), 2),
        "train_seconds_per_round": round(statistics.fmean(r["train_seconds"] for seed in seeds for r in runs[seed]), 2),
        "per_seed": {str(seed): [record["accuracy"] for record in runs[seed]] for seed in seeds},
    }  # fmt: skip


def _rounded(values, digits: int = 4) -> list[float]:
    return [round(float(value), digits) for value in values]


def labels_to_reach(labeled: list[int], accuracy: list[float], target: float) -> float | None:
    """Labels at which the mean curve first reaches ``target``, linearly interpolated between the
    two rounds around the crossing; None when it never does."""
    for index, value in enumerate(accuracy):
        if value >= target:
            if index == 0:
                return float(labeled[0])
            low, high = accuracy[index - 1], value
            fraction = (target - low) / (high - low)
            return labeled[index - 1] + fraction * (labeled[index] - labeled[index - 1])
    return None


def _curves(line: dict, seeds: list[int]) -> np.ndarray:
    return np.array([line["per_seed"][str(seed)] for seed in seeds])


def labels_interval(line: dict, baseline: dict) -> dict | None:
    """The 95% interval of the labels ``line`` needs to reach ``baseline``'s final accuracy, and
    of the label savings, from a paired bootstrap over the seeds both ran (the target is
    resampled with the same seeds); None without per-seed curves. A bound that is never
    reached is None ('more than the labels of the run')."""
    if "per_seed" not in line or "per_seed" not in baseline:
        return None
    seeds = sorted(set(line["seed_list"]) & set(baseline["seed_list"]))
    ours, theirs = _curves(line, seeds), _curves(baseline, seeds)
    budget = baseline["labeled"][-1]

    def needed(rows: np.ndarray) -> float:
        reached = labels_to_reach(line["labeled"], list(ours[rows].mean(0)), float(theirs[rows, -1].mean()))
        return np.inf if reached is None else reached

    low, high = bootstrap(needed, len(seeds))
    finite = lambda value: None if np.isinf(value) else round(value, 1)  # noqa: E731
    return {
        "seeds": len(seeds), "labels_low": finite(low), "labels_high": finite(high),
        "savings_low": None if np.isinf(high) else round(1 - high / budget, 3), "savings_high": None if np.isinf(low) else round(1 - low / budget, 3),
    }  # fmt: skip


def compare_to_baseline(strategies: dict[str, dict], candidates: tuple[str, ...], passes: int = PAPER_PASSES) -> dict | None:
    """The best of the ``candidates`` present (highest final mean accuracy) and, for every
    strategy, the labels it needs to reach that accuracy (with the interval of
    :func:`labels_interval`) and its compute per round relative to the baseline's. When the
    baseline is MC dropout run with ``passes`` = T < 128, the passes ratio against it at the
    paper's T = 128 is given too (its passes are linear in T)."""
    present = [name for name in strategies if name in candidates]
    if not present:
        return None
    best = max(present, key=lambda name: strategies[name]["accuracy"][-1])
    paper_passes_scale = PAPER_PASSES / passes if base_strategy(best) in MC_DROPOUT else 1.0  # pretrained lines too
    baseline = strategies[best]
    target, baseline_labels = baseline["accuracy"][-1], baseline["labeled"][-1]
    lines = {}
    for name, summary in strategies.items():
        needed = labels_to_reach(summary["labeled"], summary["accuracy"], target)
        line = {
            "labels_to_reach": None if needed is None else round(needed, 1),
            "label_savings": None if needed is None else round(1 - needed / baseline_labels, 3),
            "interval": labels_interval(summary, baseline),
            "compute_ratio_passes": round(summary["passes_per_round"] / baseline["passes_per_round"], 4) if baseline["passes_per_round"] else None,
            "compute_ratio_seconds": round(summary["select_seconds_per_round"] / baseline["select_seconds_per_round"], 4) if baseline["select_seconds_per_round"] else None,
        }  # fmt: skip
        if paper_passes_scale != 1.0 and line["compute_ratio_passes"] is not None:
            line["compute_ratio_passes_paper"] = round(line["compute_ratio_passes"] / paper_passes_scale, 4)
        lines[name] = line
    return {"baseline": best, "target_accuracy": target, "baseline_labels": baseline_labels, "lines": lines}


def paired_comparisons(strategies: dict[str, dict]) -> dict:
    """Each headline line (PFK) against every other line, seed by seed over the seeds both ran:
    the final accuracy and the mean accuracy over rounds 1..B (:func:`paired_difference`)."""
    comparisons = {}
    for ours in HEADLINE:
        if ours not in strategies:
            continue
        for name, theirs in strategies.items():
            seeds = sorted(set(strategies[ours]["seed_list"]) & set(theirs["seed_list"]))
            if name == ours or len(seeds) < 2:
                continue
            a, b = _curves(strategies[ours], seeds), _curves(theirs, seeds)
            comparisons[f"{ours} vs {name}"] = {"final": paired_difference(a[:, -1], b[:, -1]), "mean": paired_difference(a[:, 1:].mean(1), b[:, 1:].mean(1))}
    return comparisons


def non_matching(strategies: dict[str, dict], pretrained: bool) -> tuple[str, ...]:
    """The lines outside the distribution-matching family, from random weights or, with
    ``pretrained``, from a self-supervised model (rotation: the PFK paper's setting; SimCLR)."""
    return tuple(
        name for name in strategies
        if not base_strategy(name).startswith(MATCHING) and name not in ("pfk-L20",) and (pretraining_of(name) is not None) == pretrained
    )  # fmt: skip


def check_target(comparison: dict | None) -> dict:
    """The paper's headline, for every PFK line of a comparison: at least 40% fewer labels than
    the baseline at no more than 1/10 of its passes per round (at the paper's cost where given)."""
    outcome = {}
    for name, line in (comparison or {}).get("lines", {}).items():
        if not name.startswith("pfk"):
            continue
        ratio = line.get("compute_ratio_passes_paper", line["compute_ratio_passes"])
        savings = line["label_savings"]
        met = savings is not None and ratio is not None and savings >= TARGET["label_savings"] and ratio <= TARGET["compute_ratio"]
        outcome[name] = {"label_savings": savings, "compute_ratio_passes": ratio, "met": met}
    return outcome


def provenance_of(args: argparse.Namespace, imbalance: float, line: str, runs: dict[int, tuple[list[dict], dict]]) -> dict:
    """The code identities and commits of a line's runs, and whether every run has the setup
    this summary expects (the same options, thread count and software)."""
    expected = {seed: setup_hash(line_config(args, imbalance, seed, line, args.records)) for seed in runs}
    codes = [code for seed in sorted(runs) for code in runs[seed][1]["code"]]
    return {
        "code": sorted({code_identity(code) for code in codes}), "commits": sorted({code["commit"] for code in codes}),
        "setup_ok": all(runs[seed][1]["setup_hash"] == expected[seed] for seed in runs),
    }


def check_provenance(lines: dict[str, dict], mixed: bool) -> None:
    """Refuses (SystemExit) lines of more than one code identity, or of another setup, unless ``mixed``."""
    identities = sorted({identity for line in lines.values() for identity in line["code"]})
    other_setup = [name for name, line in lines.items() if not line["setup_ok"]]
    if (len(identities) > 1 or other_setup) and not mixed:
        by_line = {name: line["code"] for name, line in lines.items()}
        raise SystemExit(
            f"the runs come from {len(identities)} code versions {by_line} and {len(other_setup)} lines of another setup "
            f"{other_setup}: rerun them, or pass --mixed to summarise them anyway, each line marked with its code"
        )


def summarise(args: argparse.Namespace) -> dict:
    report = {"setup": {k: getattr(args, k) for k in ("imbalance", "seeds", "rounds", "epochs", "passes", "steps", "label_noise", "rare_classes", "min_steps", "train", "evaluate_on")},
              "lines": {name: {"strategy": strategy, **options} for name, (strategy, options) in LINES.items()},
              "machine": machine_info(), "code": code_version(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "mixed": args.mixed, "imbalance": {}}  # fmt: skip
    for imbalance in args.imbalance:
        strategies, provenance = {}, {}
        for name in args.strategies:
            runs = seed_runs(args, imbalance, name)
            if runs:
                provenance[name] = provenance_of(args, imbalance, name, runs)
                strategies[name] = {**summarise_line({seed: records for seed, (records, _) in runs.items()}), **provenance[name]}
        check_provenance(provenance, args.mixed)
        comparisons = {
            "uncertainty": compare_to_baseline(strategies, UNCERTAINTY, args.passes),
            "mc_dropout": compare_to_baseline(strategies, MC_DROPOUT, args.passes),
            "non_matching": compare_to_baseline(strategies, non_matching(strategies, pretrained=False), args.passes),
            "pretrained_non_matching": compare_to_baseline(strategies, non_matching(strategies, pretrained=True), args.passes),
        }
        summary = {"strategies": strategies, "comparisons": comparisons, "paired": paired_comparisons(strategies)}
        if imbalance == TARGET["imbalance"]:
            summary["target"] = {"goal": TARGET, **{key: check_target(value) for key, value in comparisons.items()}}
        if args.low_budget:
            summary["low_budget_goal"] = low_budget_goal(args, imbalance, strategies)
        report["imbalance"][f"{imbalance:g}"] = summary
        print_summary(imbalance, summary)
        if strategies:
            path = os.path.join(args.results, f"{args.name}_r{imbalance:g}.png")
            title = f"Fashion-MNIST, imbalance {imbalance:g}{variant_suffix(args, ', ')}, P = {args.budget}, mean and 95% interval over seeds"
            learning_curve(strategies, title=title, band=("accuracy_low", "accuracy_high")).savefig(path, dpi=120)
            print(f"learning curve: {path}")
    path = os.path.join(args.results, f"{args.name}.json")
    atomic_write_bytes(path, json.dumps(report, indent=1).encode())
    print(f"results: {path}")
    return report


def low_budget_goal(args: argparse.Namespace, imbalance: float, strategies: dict) -> dict | None:
    """Each line's accuracy at its last round within LOW_BUDGET_GOAL's labels against the whole
    pool's final accuracy (its recorded summary; None when it has not been run)."""
    path = os.path.join(args.results, LOW_BUDGET_GOAL["reference"])
    whole = None
    if os.path.exists(path):
        with open(path) as f:
            whole = json.load(f)["imbalance"].get(f"{imbalance:g}", {}).get("strategies", {}).get("random")
    if whole is None:
        return None
    reference = {"labels": whole["labeled"][-1], "accuracy": whole["accuracy"][-1], "low": whole["accuracy_low"][-1], "high": whole["accuracy_high"][-1], "seeds": whole["seeds"]}
    lines = {}
    for name, line in strategies.items():
        within = [i for i, labels in enumerate(line["labeled"]) if labels <= LOW_BUDGET_GOAL["labels"]]
        i = within[-1]
        accuracy = line["accuracy"][i]
        lines[name] = {"labels": line["labeled"][i], "accuracy": accuracy, "low": line["accuracy_low"][i], "high": line["accuracy_high"][i],
                       "share_of_reference": round(accuracy / reference["accuracy"], 4), "reached": accuracy >= reference["accuracy"]}  # fmt: skip
    return {"goal": LOW_BUDGET_GOAL, "reference": reference, "lines": lines}


def print_summary(imbalance: float, summary: dict) -> None:
    strategies = summary["strategies"]
    print(f"\n== imbalance r = {imbalance:g}: test accuracy per round (mean [95% interval] over seeds)")
    if not strategies:
        print("(no finished runs)")
        return
    rows = []
    for name, line in strategies.items():
        row = {"strategy": name, "seeds": line["seeds"], "code": ",".join(code[:8] for code in line["code"])}
        row.update({str(labels): f"{m:.3f} [{lo:.3f},{hi:.3f}]" for labels, m, lo, hi in zip(line["labeled"], line["accuracy"], line["accuracy_low"], line["accuracy_high"])})
        rows.append(row)
    labeled = next(iter(strategies.values()))["labeled"]
    print_table(rows, ["strategy", "seeds", "code", *map(str, labeled[1::3]), str(labeled[-1])])
    costs = ["mean_accuracy", "mean_accuracy_low", "mean_accuracy_high", "passes_per_round", "select_seconds_per_round", "train_seconds_per_round"]
    print_table([{"strategy": name, **{c: line[c] for c in costs}} for name, line in strategies.items()], ["strategy", *costs])
    for kind, comparison in summary["comparisons"].items():
        if comparison is None:
            continue
        print(f"\nvs. the best {kind} baseline: {comparison['baseline']}, final accuracy {comparison['target_accuracy']:.4f} "
              f"at {comparison['baseline_labels']} labels")  # fmt: skip
        columns = ["strategy", "labels_to_reach", "labels_interval", "label_savings", "compute_ratio_passes", "compute_ratio_passes_paper"]
        cells = []
        for name, line in comparison["lines"].items():
            interval = line["interval"] or {}
            span = f"[{interval.get('labels_low') or '-'}, {interval.get('labels_high') or '>' + str(comparison['baseline_labels'])}]" if interval else "-"
            cells.append({"strategy": name, "labels_interval": span, **{c: "-" if line.get(c) is None else line[c] for c in columns if c not in ("strategy", "labels_interval")}})
        print_table(cells, columns)
        for name, outcome in summary.get("target", {}).get(kind, {}).items():
            verdict = "met" if outcome["met"] else "NOT met"
            print(f"target at r=100 vs. {kind} ({name}): >= 40% fewer labels at <= 1/10 passes: {verdict} {outcome}")
    goal = summary.get("low_budget_goal")
    if goal:
        reference = goal["reference"]
        print(f"\nthe whole pool ({reference['labels']} labels, {reference['seeds']} seeds): {reference['accuracy']:.3f} [{reference['low']:.3f}, {reference['high']:.3f}]; "
              f"each line within {goal['goal']['labels']} labels:")  # fmt: skip
        cells = [{"strategy": name, "labels": line["labels"], "accuracy": f"{line['accuracy']:.3f} [{line['low']:.3f},{line['high']:.3f}]",
                  "share_of_whole_pool": line["share_of_reference"], "reached": line["reached"]} for name, line in goal["lines"].items()]  # fmt: skip
        print_table(cells, ["strategy", "labels", "accuracy", "share_of_whole_pool", "reached"])
    if summary["paired"]:
        print("\nseed by seed (paired over the seeds both ran): wins/ties/losses and the mean difference [95% interval]")
        cells = [{"comparison": key, **{f"{part}": f"{d['wins']}/{d['ties']}/{d['losses']} {d['mean']:+.4f} [{d['low']:+.4f},{d['high']:+.4f}]" for part, d in value.items()}}
                 for key, value in summary["paired"].items()]  # fmt: skip
        print_table(cells, ["comparison", "final", "mean"])


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.results, exist_ok=True)
    if not args.summarise:
        run_grid(args)
    return summarise(args)


if __name__ == "__main__":
    main()
