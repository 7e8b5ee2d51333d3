"""The PFK paper's experiment on Fashion-MNIST: every strategy, class imbalance r ∈ {1, 10, 100}.

    python benchmarks/al_fashion_mnist.py --quick          # < 10 min: r = 100, one seed, 5 rounds
    python benchmarks/al_fashion_mnist.py                  # the full grid (hours on 2 cores)
    python benchmarks/al_fashion_mnist.py --seeds 1 &      # grid runs resume, so seeds can run
    python benchmarks/al_fashion_mnist.py --seeds 2 &      # in parallel processes, then
    python benchmarks/al_fashion_mnist.py --summarise      # tables, plots and JSON of what is done

Setup (the paper's): Debian's Fashion-MNIST, 60k train → balanced 10k validation + 50k pool,
classes 5..9 of the pool decimated so classes 0..4 : 5..9 = r; the 10k test set only evaluates.
LeNet (conv 10, conv 20, fc 50; descriptors L = 80 after the non-linearities), SGD lr 0.05,
momentum 0.5, batch 25, lr × 0.1 every 15 epochs, fine-tuned across rounds, no initial labels;
P = 125 per round, B = 10 rounds. Each (r, seed) is one ``torch_al.experiment`` run, so every
strategy of a seed sees the same pool, validation set and initial model; its checkpoints make an
interrupted grid resume.

Reported per imbalance: accuracy per round (mean ± std over seeds), the labels each strategy needs
to reach the final accuracy of the best uncertainty baseline and of the best non-matching line (every
method outside PCC / PFK / EBA; from random weights, and apart, from the rotation-pretrained model:
the ``+rotation`` lines), and compute per round (images through forward + backward passes, and
seconds).
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import RESULTS_DIR, machine_info, print_table  # noqa: E402

from torch_al.experiment import PRETRAINED, RunConfig, base_strategy, run_experiment  # noqa: E402
from torch_al.persistence import atomic_write_bytes  # noqa: E402
from torch_al.plots import learning_curve  # noqa: E402

# Cheapest and most telling first, so a grid stopped early has the lines the headline needs.
STRATEGIES = (
    "random", "entropy", "pfk", "variation-ratio", "pfk+rotation", "pfk-product-true", "pfk-L20", "bald", "pcc", "coreset",
    "pfk-product-argmax", "pfk-fisher-match", "pfk-fisher-argmax", "pfk-sum-match", "pfk-sum-argmax", "eba",
    "ceal", "suggestive", "badge", "emoc", "batchbald",
    "ensemble-entropy", "ensemble-bald", "ensemble-variation-ratio", "qbc-vote-entropy",
    "learning-loss", "dal", "vaal", "m2-vaal", "m2-anchor-distance", "m2-confidence-distance", "bgadl",
    # The PFK paper's own setting: every method starts from the rotation-pretrained model.
    "random+rotation", "entropy+rotation", "variation-ratio+rotation", "badge+rotation",
)  # fmt: skip
QUICK_STRATEGIES = ("random", "entropy", "pfk")
# Lines that are a strategy run with other options: name → (strategy, RunConfig options).
VARIANTS = {"pfk-L20": ("pfk", {"layers": ("act2",)})}  # the paper's L = 20: conv2 alone
UNCERTAINTY = ("entropy", "margin", "least-confidence", "max-entropy", "bald", "variation-ratio")
MC_DROPOUT = ("max-entropy", "bald", "variation-ratio")  # the paper's uncertainty baselines
MATCHING = ("pcc", "pfk", "eba")  # the distribution-matching family, against everything else
PAPER_PASSES = 128  # the paper's T
TARGET = {"imbalance": 100.0, "label_savings": 0.40, "compute_ratio": 0.10}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="r = 100, one seed, 5 rounds, random/entropy/pfk, 20 epochs")
    parser.add_argument("--imbalance", type=float, nargs="+", help="r values (default 1 10 100; quick: 100)")
    parser.add_argument("--seeds", type=int, nargs="+", help="default 0 1 2 (quick: 0)")
    parser.add_argument("--strategies", nargs="+", help="default: the whole list (quick: random entropy pfk)")
    parser.add_argument("--rounds", type=int, help="B (default 10, quick 5)")
    parser.add_argument("--epochs", type=int, help="training epochs per round (default 50, quick 20)")
    parser.add_argument("--passes", type=int, default=16, help="T of MC dropout (the paper: 128; see the README for the cost)")
    parser.add_argument("--steps", type=int, default=8, help="integrated-gradient steps of EBA (the paper: 128)")
    parser.add_argument("--work", help="run folders (default build/al_fashion_mnist[_quick])")
    parser.add_argument("--results", help="where the JSON and PNGs go (default benchmarks/results; quick: the work folder)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per process")
    parser.add_argument("--summarise", action="store_true", help="only summarise the runs already in the work folder")
    parser.add_argument("--carry", help="an earlier results JSON: its lines with no finished run in the work folder are kept, marked with its time")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=False)
    args = parser.parse_args(argv)
    defaults = {"imbalance": [100.0] if args.quick else [1.0, 10.0, 100.0], "seeds": [0] if args.quick else [0, 1, 2],
                "strategies": list(QUICK_STRATEGIES if args.quick else STRATEGIES), "rounds": 5 if args.quick else 10,
                "epochs": 20 if args.quick else 50}  # fmt: skip
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    name = "al_fashion_mnist_quick" if args.quick else "al_fashion_mnist"
    args.work = args.work or os.path.join("build", name)
    args.results = args.results or (args.work if args.quick else RESULTS_DIR)
    args.name = name
    return args


def run_folder(args: argparse.Namespace, imbalance: float, seed: int) -> str:
    return os.path.join(args.work, f"r{imbalance:g}", f"seed{seed}")


def run_grid(args: argparse.Namespace) -> None:
    plain = tuple(name for name in args.strategies if name not in VARIANTS)
    for imbalance in args.imbalance:
        for seed in args.seeds:
            start = time.perf_counter()
            folder = run_folder(args, imbalance, seed)
            runs = [(plain, folder, {})] if plain else []
            runs += [((VARIANTS[name][0],), os.path.join(folder, name), VARIANTS[name][1]) for name in args.strategies if name in VARIANTS]
            for strategies, out, options in runs:
                config = RunConfig(
                    dataset="fashion-mnist", strategy=strategies, imbalance=imbalance, rounds=args.rounds, budget=125,
                    initial=0, epochs=args.epochs, passes=args.passes, steps=args.steps, seed=seed, out=out,
                    progress=args.progress, **options,
                )  # fmt: skip
                run_experiment(config)
            print(f"r={imbalance:g} seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)


def metrics_path(args: argparse.Namespace, imbalance: float, seed: int, name: str) -> str:
    folder = run_folder(args, imbalance, seed)
    if name in VARIANTS:
        return os.path.join(folder, name, VARIANTS[name][0], "metrics.json")
    return os.path.join(folder, name, "metrics.json")


def finished_runs(args: argparse.Namespace, imbalance: float, name: str) -> list[list[dict]]:
    """Per seed, the strategy's records, when all rounds are done."""
    runs = []
    for seed in args.seeds:
        path = metrics_path(args, imbalance, seed, name)
        if os.path.exists(path):
            with open(path) as f:
                records = json.load(f)
            if len(records) == args.rounds + 1:
                runs.append(records)
    return runs


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise_strategy(runs: list[list[dict]]) -> dict:
    """Mean ± std over seeds of the accuracy per round, and mean cost per selection round."""
    rounds = range(len(runs[0]))
    curve = [mean_std([run[r]["accuracy"] for run in runs]) for r in rounds]
    minority = [mean_std([run[r]["minority_accuracy"] for run in runs])[0] for r in rounds]
    selections = [record for run in runs for record in run[:-1]]
    return {
        "seeds": len(runs),
        "labeled": [runs[0][r]["labeled"] for r in rounds],
        "accuracy": [round(m, 4) for m, _ in curve],
        "accuracy_std": [round(s, 4) for _, s in curve],
        "minority_accuracy": [round(m, 4) for m in minority],
        "mean_accuracy": round(statistics.fmean(m for m, _ in curve[1:]), 4),  # area under the curve, rounds 1..B
        "labeled_minority": [statistics.fmean(run[r]["labeled_minority"] for run in runs) for r in rounds],
        "passes_per_round": round(statistics.fmean(r["select_forward"] + r["select_backward"] for r in selections)),
        "select_seconds_per_round": round(statistics.fmean(r["select_seconds"] for r in selections), 2),
        "train_seconds_per_round": round(statistics.fmean(r["train_seconds"] for run in runs for r in run), 2),
    }


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


def compare_to_baseline(strategies: dict[str, dict], candidates: tuple[str, ...], passes: int = PAPER_PASSES) -> dict | None:
    """The best of the ``candidates`` present (highest final mean accuracy) and, for every
    strategy, the labels it needs to reach that accuracy and its compute per round relative to the
    baseline's. When the baseline is MC dropout run with ``passes`` = T < 128, the passes ratio
    against it at the paper's T = 128 is given too (its passes are linear in T)."""
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
            "compute_ratio_passes": round(summary["passes_per_round"] / baseline["passes_per_round"], 4) if baseline["passes_per_round"] else None,
            "compute_ratio_seconds": round(summary["select_seconds_per_round"] / baseline["select_seconds_per_round"], 4) if baseline["select_seconds_per_round"] else None,
        }  # fmt: skip
        if paper_passes_scale != 1.0 and line["compute_ratio_passes"] is not None:
            line["compute_ratio_passes_paper"] = round(line["compute_ratio_passes"] / paper_passes_scale, 4)
        lines[name] = line
    return {"baseline": best, "target_accuracy": target, "baseline_labels": baseline_labels, "lines": lines}


def non_matching(strategies: dict[str, dict], pretrained: bool) -> tuple[str, ...]:
    """The lines outside the distribution-matching family, from random weights or, with
    ``pretrained``, from the rotation-pretrained model (the PFK paper's setting)."""
    return tuple(
        name for name in strategies
        if not base_strategy(name).startswith(MATCHING) and name not in VARIANTS and name.endswith(PRETRAINED) == pretrained
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


def carried_lines(path: str | None) -> dict[str, dict[str, dict]]:
    """imbalance → strategy → summary of an earlier report, each marked ``carried_from`` its time."""
    if path is None:
        return {}
    with open(path) as f:
        earlier = json.load(f)
    return {
        imbalance: {name: {**line, "carried_from": line.get("carried_from", earlier["time"])} for name, line in summary["strategies"].items()}
        for imbalance, summary in earlier["imbalance"].items()
    }


def summarise(args: argparse.Namespace) -> dict:
    carried = carried_lines(args.carry)
    report = {"setup": {k: getattr(args, k) for k in ("imbalance", "seeds", "rounds", "epochs", "passes", "steps")},
              "machine": machine_info(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "imbalance": {}}  # fmt: skip
    for imbalance in args.imbalance:
        strategies = {}
        for name in args.strategies:
            runs = finished_runs(args, imbalance, name)
            if runs:
                strategies[name] = summarise_strategy(runs)
            elif name in carried.get(f"{imbalance:g}", {}):
                strategies[name] = carried[f"{imbalance:g}"][name]
        comparisons = {
            "uncertainty": compare_to_baseline(strategies, UNCERTAINTY, args.passes),
            "mc_dropout": compare_to_baseline(strategies, MC_DROPOUT, args.passes),
            "non_matching": compare_to_baseline(strategies, non_matching(strategies, pretrained=False), args.passes),
            "pretrained_non_matching": compare_to_baseline(strategies, non_matching(strategies, pretrained=True), args.passes),
        }
        summary = {"strategies": strategies, "comparisons": comparisons}
        if imbalance == TARGET["imbalance"]:
            summary["target"] = {"goal": TARGET, **{key: check_target(value) for key, value in comparisons.items()}}
        report["imbalance"][f"{imbalance:g}"] = summary
        print_summary(imbalance, summary)
        if strategies:
            path = os.path.join(args.results, f"{args.name}_r{imbalance:g}.png")
            title = f"Fashion-MNIST, imbalance {imbalance:g}, P = 125, mean ± std over seeds"
            learning_curve(strategies, title=title, band="accuracy_std").savefig(path, dpi=120)
            print(f"learning curve: {path}")
    path = os.path.join(args.results, f"{args.name}.json")
    atomic_write_bytes(path, json.dumps(report, indent=1).encode())
    print(f"results: {path}")
    return report


def print_summary(imbalance: float, summary: dict) -> None:
    strategies = summary["strategies"]
    print(f"\n== imbalance r = {imbalance:g}: test accuracy per round (mean ± std over seeds)")
    if not strategies:
        print("(no finished runs)")
        return
    rows = []
    for name, line in strategies.items():
        row = {"strategy": name, "seeds": f"{line['seeds']} (of {line['carried_from'][:10]})" if "carried_from" in line else line["seeds"]}
        row.update({f"{labels}": f"{m:.3f}±{s:.3f}" for labels, m, s in zip(line["labeled"], line["accuracy"], line["accuracy_std"])})
        rows.append(row)
    print_table(rows, ["strategy", "seeds", *map(str, next(iter(strategies.values()))["labeled"])])
    costs = ["mean_accuracy", "passes_per_round", "select_seconds_per_round", "train_seconds_per_round"]
    print_table([{"strategy": name, **{c: line[c] for c in costs}} for name, line in strategies.items()], ["strategy", *costs])
    for kind, comparison in summary["comparisons"].items():
        if comparison is None:
            continue
        print(f"\nvs. the best {kind} baseline: {comparison['baseline']}, final accuracy {comparison['target_accuracy']:.4f} "
              f"at {comparison['baseline_labels']} labels")  # fmt: skip
        columns = ["strategy", "labels_to_reach", "label_savings", "compute_ratio_passes", "compute_ratio_passes_paper", "compute_ratio_seconds"]
        cells = [{"strategy": name, **{c: "-" if line.get(c) is None else line[c] for c in columns[1:]}} for name, line in comparison["lines"].items()]
        print_table(cells, columns)
        for name, outcome in summary.get("target", {}).get(kind, {}).items():
            verdict = "met" if outcome["met"] else "NOT met"
            print(f"target at r=100 vs. {kind} ({name}): >= 40% fewer labels at <= 1/10 passes: {verdict} {outcome}")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.results, exist_ok=True)
    if not args.summarise:
        run_grid(args)
    return summarise(args)


if __name__ == "__main__":
    main()
