"""The analysis of benchmarks/al_fashion_mnist.py: mean curves over seeds, labels needed to reach
the best uncertainty baseline, compute ratios and the target verdict, on made-up records."""

import json
import os
import sys

import pytest
from common_utils import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, "benchmarks"))
import al_fashion_mnist as experiment  # noqa: E402


def records(accuracies, forward, backward=0, labels_per_round=125):
    runs = []
    for round_, accuracy in enumerate(accuracies):
        record = {"round": round_, "labeled": round_ * labels_per_round, "accuracy": accuracy, "minority_accuracy": accuracy / 2,
                  "labeled_minority": round_, "train_seconds": 1.0}  # fmt: skip
        if round_ < len(accuracies) - 1:
            record.update(select_forward=forward, select_backward=backward, select_seconds=forward / 1000)
        runs.append(record)
    return runs


def test_labels_to_reach_interpolates_the_crossing():
    labeled = [0, 125, 250, 375]
    assert experiment.labels_to_reach(labeled, [0.1, 0.5, 0.7, 0.8], 0.6) == pytest.approx(187.5)
    assert experiment.labels_to_reach(labeled, [0.1, 0.5, 0.7, 0.8], 0.8) == 375
    assert experiment.labels_to_reach(labeled, [0.9, 0.5, 0.7, 0.8], 0.6) == 0  # reached before any label
    assert experiment.labels_to_reach(labeled, [0.1, 0.5, 0.7, 0.8], 0.81) is None


def test_summary_means_over_seeds_and_compares_to_the_best_uncertainty_baseline():
    strategies = {
        "random": experiment.summarise_strategy([records([0.1, 0.4, 0.5], 0), records([0.1, 0.5, 0.6], 0)]),
        "entropy": experiment.summarise_strategy([records([0.1, 0.5, 0.6], 1000)]),
        "variation-ratio": experiment.summarise_strategy([records([0.1, 0.5, 0.7], 16000)]),
        "pfk": experiment.summarise_strategy([records([0.1, 0.7, 0.8], 1000, 1000), records([0.1, 0.7, 0.8], 1000, 1000)]),
    }
    assert strategies["random"]["accuracy"] == [0.1, 0.45, 0.55] and strategies["random"]["accuracy_std"][1] == pytest.approx(0.0707, abs=1e-4)
    assert strategies["pfk"]["passes_per_round"] == 2000 and strategies["pfk"]["seeds"] == 2
    assert strategies["pfk"]["mean_accuracy"] == 0.75  # rounds 1..B: the model with labels
    comparison = experiment.compare_to_baseline(strategies, experiment.UNCERTAINTY, passes=128)
    assert {k: comparison[k] for k in ("baseline", "target_accuracy", "baseline_labels")} == {"baseline": "variation-ratio", "target_accuracy": 0.7, "baseline_labels": 250}
    pfk, lines = comparison["lines"]["pfk"], comparison["lines"]
    assert pfk["labels_to_reach"] == 125 and pfk["label_savings"] == 0.5 and pfk["compute_ratio_passes"] == 0.125
    assert "compute_ratio_passes_paper" not in pfk
    assert lines["random"]["labels_to_reach"] is None and lines["entropy"]["label_savings"] is None
    assert experiment.check_target(comparison)["pfk"] == {"label_savings": 0.5, "compute_ratio_passes": 0.125, "met": False}  # 1/8 > 1/10
    at_paper_cost = experiment.compare_to_baseline(strategies, experiment.MC_DROPOUT, passes=16)
    assert at_paper_cost["lines"]["pfk"]["compute_ratio_passes_paper"] == 0.0156  # the baseline at T = 8 x 16
    assert experiment.check_target(at_paper_cost)["pfk"]["met"] is True
    assert experiment.compare_to_baseline({"pfk": strategies["pfk"]}, experiment.UNCERTAINTY) is None
    without_mc_dropout = {name: strategies[name] for name in ("entropy", "pfk")}  # entropy has no T to scale
    assert "compute_ratio_passes_paper" not in experiment.compare_to_baseline(without_mc_dropout, experiment.UNCERTAINTY, passes=16)["lines"]["pfk"]


def test_non_matching_baselines_are_split_by_setting():
    names = ["random", "badge", "pfk", "pfk-sum-match", "pcc", "eba", "pfk-L20", "badge+rotation", "pfk+rotation", "ensemble-bald"]
    strategies = dict.fromkeys(names, {})
    assert experiment.non_matching(strategies, pretrained=False) == ("random", "badge", "ensemble-bald")
    assert experiment.non_matching(strategies, pretrained=True) == ("badge+rotation",)


def test_quick_mode_defaults_and_output_places():
    quick = experiment.parse_args(["--quick"])
    assert (quick.imbalance, quick.seeds, quick.rounds, quick.strategies) == ([100.0], [0], 5, ["random", "entropy", "pfk"])
    assert quick.results == quick.work  # a quick run never overwrites the recorded full results
    full = experiment.parse_args([])
    assert full.imbalance == [1.0, 10.0, 100.0] and len(full.seeds) >= 3 and full.results == experiment.RESULTS_DIR
    assert {"random", "entropy", "bald", "variation-ratio", "coreset", "pcc", "eba", "pfk+rotation", "pfk-product-true"} <= set(full.strategies)


def test_variant_lines_are_read_from_their_own_run_folders(tmp_path):
    args = experiment.parse_args(["--work", str(tmp_path), "--rounds", "2", "--seeds", "0", "1", "--strategies", "pfk", "pfk-L20"])
    finished, unfinished = records([0.1, 0.5, 0.6], 10), records([0.1, 0.5], 10)
    for seed, name, run in [(0, "pfk", finished), (1, "pfk", unfinished), (0, "pfk-L20", finished), (1, "pfk-L20", finished)]:
        path = experiment.metrics_path(args, 100.0, seed, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(run, f)
    assert experiment.metrics_path(args, 100.0, 0, "pfk-L20") == str(tmp_path / "r100" / "seed0" / "pfk-L20" / "pfk" / "metrics.json")
    assert len(experiment.finished_runs(args, 100.0, "pfk")) == 1  # an interrupted seed is not averaged in
    assert len(experiment.finished_runs(args, 100.0, "pfk-L20")) == 2


def test_carried_lines_fill_in_only_what_the_work_folder_lacks(tmp_path):
    work, results = tmp_path / "work", tmp_path / "results"
    args = experiment.parse_args(["--work", str(work), "--results", str(results), "--rounds", "2", "--seeds", "0",
                                  "--imbalance", "100", "--strategies", "random", "pfk", "bald", "--summarise"])  # fmt: skip
    os.makedirs(results)
    path = experiment.metrics_path(args, 100.0, 0, "pfk")
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        json.dump(records([0.1, 0.5, 0.6], 10), f)
    earlier_lines = {name: experiment.summarise_strategy([records([0.1, 0.3, accuracy], 5)]) for name, accuracy in [("pfk", 0.9), ("bald", 0.55)]}
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({"time": "2026-11-25T20:09:07", "imbalance": {"100": {"strategies": earlier_lines}}}))
    args.carry = str(earlier)
    strategies = experiment.summarise(args)["imbalance"]["100"]["strategies"]
    assert list(strategies) == ["pfk", "bald"]  # random: neither run nor carried
    assert strategies["pfk"]["accuracy"][-1] == 0.6 and "carried_from" not in strategies["pfk"]  # the new run wins
    assert strategies["bald"] == {**earlier_lines["bald"], "carried_from": "2026-11-25T20:09:07"}
    assert json.loads((results / "al_fashion_mnist.json").read_text())["imbalance"]["100"]["strategies"]["bald"]["carried_from"] == "2026-11-25T20:09:07"


def test_a_pretrained_mc_dropout_baseline_is_also_scaled_to_the_papers_passes():
    strategies = {
        "variation-ratio+rotation": experiment.summarise_strategy([records([0.1, 0.5, 0.7], 16000)]),
        "pfk+rotation": experiment.summarise_strategy([records([0.1, 0.7, 0.8], 1000, 1000)]),
    }
    comparison = experiment.compare_to_baseline(strategies, experiment.non_matching(strategies, pretrained=True), passes=16)
    assert comparison["baseline"] == "variation-ratio+rotation"
    assert comparison["lines"]["pfk+rotation"]["compute_ratio_passes_paper"] == 0.0156  # 2000 / (16000 · 128/16)
