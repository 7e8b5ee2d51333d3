"""The analysis of benchmarks/al_fashion_mnist.py: mean curves over seeds, labels needed to reach
the best uncertainty baseline, compute ratios and the target verdict, on made-up records."""

import json
import os
import sys

import numpy as np
import pytest
from common_utils import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, "benchmarks"))
import al_fashion_mnist as experiment  # noqa: E402
import seed_statistics  # noqa: E402


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


def line(*runs):
    return experiment.summarise_line(dict(enumerate(runs)))


def test_summary_means_over_seeds_and_compares_to_the_best_uncertainty_baseline():
    strategies = {
        "random": line(records([0.1, 0.4, 0.5], 0), records([0.1, 0.5, 0.6], 0)),
        "entropy": line(records([0.1, 0.5, 0.6], 1000)),
        "variation-ratio": line(records([0.1, 0.5, 0.7], 16000)),
        "pfk": line(records([0.1, 0.7, 0.8], 1000, 1000), records([0.1, 0.7, 0.8], 1000, 1000)),
    }
    assert strategies["random"]["accuracy"] == [0.1, 0.45, 0.55] and strategies["random"]["accuracy_std"][1] == pytest.approx(0.0707, abs=1e-4)
    assert strategies["random"]["accuracy_low"][1] == 0.4 and strategies["random"]["accuracy_high"][1] == 0.5  # two seeds: the bootstrap spans both
    assert strategies["pfk"]["passes_per_round"] == 2000 and strategies["pfk"]["seeds"] == 2
    assert strategies["pfk"]["mean_accuracy"] == 0.75  # rounds 1..B: the model with labels
    comparison = experiment.compare_to_baseline(strategies, experiment.UNCERTAINTY, passes=128)
    assert {k: comparison[k] for k in ("baseline", "target_accuracy", "baseline_labels")} == {"baseline": "variation-ratio", "target_accuracy": 0.7, "baseline_labels": 250}
    pfk, lines = comparison["lines"]["pfk"], comparison["lines"]
    assert pfk["labels_to_reach"] == 125 and pfk["label_savings"] == 0.5 and pfk["compute_ratio_passes"] == 0.125
    assert pfk["interval"] == {"seeds": 1, "labels_low": 125.0, "labels_high": 125.0, "savings_low": 0.5, "savings_high": 0.5}  # seed 0 alone is shared
    assert "compute_ratio_passes_paper" not in pfk
    assert lines["random"]["labels_to_reach"] is None and lines["entropy"]["label_savings"] is None
    assert lines["random"]["interval"]["labels_high"] is None  # never reached in the resamples
    assert experiment.check_target(comparison)["pfk"] == {"label_savings": 0.5, "compute_ratio_passes": 0.125, "met": False}  # 1/8 > 1/10
    at_paper_cost = experiment.compare_to_baseline(strategies, experiment.MC_DROPOUT, passes=16)
    assert at_paper_cost["lines"]["pfk"]["compute_ratio_passes_paper"] == 0.0156  # the baseline at T = 8 x 16
    assert experiment.check_target(at_paper_cost)["pfk"]["met"] is True
    assert experiment.compare_to_baseline({"pfk": strategies["pfk"]}, experiment.UNCERTAINTY) is None
    without_mc_dropout = {name: strategies[name] for name in ("entropy", "pfk")}  # entropy has no T to scale
    assert "compute_ratio_passes_paper" not in experiment.compare_to_baseline(without_mc_dropout, experiment.UNCERTAINTY, passes=16)["lines"]["pfk"]


def test_bootstrap_intervals_and_the_paired_comparison_seed_by_seed():
    per_seed = np.array([0.50, 0.52, 0.55, 0.49, 0.51, 0.53, 0.50, 0.54, 0.52, 0.50])
    low, high = seed_statistics.mean_interval(per_seed)
    assert low < per_seed.mean() < high and high - low < 0.03
    assert seed_statistics.mean_interval(per_seed[:1]) == (0.5, 0.5)
    ours = per_seed + np.array([0.02, 0.01, 0.03, -0.01, 0.02, 0.02, 0.0, 0.01, 0.02, 0.03])
    paired = seed_statistics.paired_difference(ours, per_seed)
    assert (paired["wins"], paired["ties"], paired["losses"], paired["seeds"]) == (8, 1, 1, 10)
    assert paired["low"] > 0 and paired["mean"] == 0.015  # the shared part of the noise cancels
    runs = {seed: records([0.1, 0.5 + d, 0.6 + d], 10) for seed, d in enumerate([0.0, 0.01, -0.01, 0.02])}
    better = {seed: records([0.1, 0.6 + d, 0.7 + d], 10) for seed, d in enumerate([0.0, 0.01, -0.01, 0.02])}
    strategies = {"random": experiment.summarise_line(runs), "pfk": experiment.summarise_line(better)}
    comparison = experiment.paired_comparisons(strategies)["pfk vs random"]
    assert comparison["final"]["wins"] == 4 and comparison["final"]["mean"] == comparison["final"]["low"] == comparison["final"]["high"] == 0.1


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
    assert full.imbalance == [1.0, 10.0, 100.0] and full.seeds == list(range(10)) and full.results == experiment.RESULTS_DIR
    assert full.records == os.path.join(experiment.RESULTS_DIR, "al_fashion_mnist_runs") and quick.records == quick.work
    assert {"random", "entropy", "bald", "variation-ratio", "coreset", "pcc", "eba", "pfk+rotation", "pfk-product-true"} <= set(full.strategies)


def write_run(args, seed, name, run, code="aaa", setup=None):
    path = experiment.run_path(args, 100.0, seed, name)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "metrics.json"), "w") as f:
        json.dump(run, f)
    setup = setup or experiment.setup_hash(experiment.line_config(args, 100.0, seed, name, args.records))
    with open(os.path.join(path, "run.json"), "w") as f:
        json.dump({"setup_hash": setup, "code": [{"commit": code, "dirty": False, "sources": code}]}, f)


def test_lines_are_read_from_their_own_run_folders(tmp_path):
    args = experiment.parse_args(["--records", str(tmp_path), "--rounds", "2", "--seeds", "0", "1", "--strategies", "pfk", "pfk-L20", "batchbald"])
    finished, unfinished = records([0.1, 0.5, 0.6], 10), records([0.1, 0.5], 10)
    for seed, name, run in [(0, "pfk", finished), (1, "pfk", unfinished), (0, "pfk-L20", finished), (1, "pfk-L20", finished)]:
        write_run(args, seed, name, run)
    assert experiment.metrics_path(args, 100.0, 0, "pfk-L20") == str(tmp_path / "r100" / "seed0" / "pfk-L20" / "pfk" / "metrics.json")
    assert len(experiment.seed_runs(args, 100.0, "pfk")) == 1  # an interrupted seed is not averaged in
    assert len(experiment.seed_runs(args, 100.0, "pfk-L20")) == 2
    config = experiment.line_config(args, 100.0, 3, "batchbald", "w")
    assert (config.strategy, config.passes, config.shortlist, config.out) == (("batchbald",), 64, 2000, os.path.join("w", "r100", "seed3", "batchbald"))
    assert experiment.line_config(args, 100.0, 3, "bald", "w").passes == 16


def test_noise_and_the_drawn_rare_half_run_in_folders_and_files_of_their_own(tmp_path):
    paper = experiment.parse_args(["--records", str(tmp_path)])
    noisy = experiment.parse_args(["--records", str(tmp_path), "--label-noise", "0.1", "--rare-classes", "drawn"])
    assert (paper.name, noisy.name) == ("al_fashion_mnist", "al_fashion_mnist_noise0.1_drawn")
    config = experiment.line_config(noisy, 100.0, 3, "direct", "w")
    assert (config.label_noise, config.rare_classes, config.out) == (0.1, "drawn", os.path.join("w", "r100-noise0.1-drawn", "seed3", "direct"))
    assert experiment.line_config(paper, 100.0, 3, "direct", "w").out == os.path.join("w", "r100", "seed3", "direct")
    assert experiment.setup_hash(config) != experiment.setup_hash(experiment.line_config(paper, 100.0, 3, "direct", "w"))


def test_lines_of_other_code_or_another_setup_are_refused_unless_mixed(tmp_path):
    argv = ["--records", str(tmp_path / "runs"), "--results", str(tmp_path), "--rounds", "2", "--seeds", "0", "1",
            "--imbalance", "100", "--strategies", "random", "pfk", "--summarise"]  # fmt: skip
    args = experiment.parse_args(argv)
    for seed in (0, 1):
        write_run(args, seed, "random", records([0.1, 0.4, 0.5], 0))
        write_run(args, seed, "pfk", records([0.1, 0.6, 0.7], 10), code="aaa" if seed == 0 else "bbb")
    with pytest.raises(SystemExit, match="2 code versions"):
        experiment.summarise(args)
    mixed = experiment.summarise(experiment.parse_args([*argv, "--mixed"]))["imbalance"]["100"]["strategies"]
    assert mixed["pfk"]["code"] == ["aaa", "bbb"] and mixed["random"]["code"] == ["aaa"] and mixed["pfk"]["commits"] == ["aaa", "bbb"]
    write_run(args, 1, "pfk", records([0.1, 0.6, 0.7], 10), code="aaa", setup="another")
    with pytest.raises(SystemExit, match=r"1 lines of another setup \['pfk'\]"):
        experiment.summarise(args)
    write_run(args, 1, "pfk", records([0.1, 0.6, 0.7], 10), code="aaa")
    report = experiment.summarise(args)
    assert report["imbalance"]["100"]["strategies"]["pfk"]["code"] == ["aaa"] and (tmp_path / "al_fashion_mnist_r100.png").exists()
    assert report["imbalance"]["100"]["paired"]["pfk vs random"]["final"]["wins"] == 2


def test_a_pretrained_mc_dropout_baseline_is_also_scaled_to_the_papers_passes():
    strategies = {
        "variation-ratio+rotation": line(records([0.1, 0.5, 0.7], 16000)),
        "pfk+rotation": line(records([0.1, 0.7, 0.8], 1000, 1000)),
    }
    comparison = experiment.compare_to_baseline(strategies, experiment.non_matching(strategies, pretrained=True), passes=16)
    assert comparison["baseline"] == "variation-ratio+rotation"
    assert comparison["lines"]["pfk+rotation"]["compute_ratio_passes_paper"] == 0.0156  # 2000 / (16000 · 128/16)


def test_the_grid_runs_lines_in_processes_records_them_and_skips_what_is_recorded(tmp_path, capsys):
    argv = ["--work", str(tmp_path / "work"), "--records", str(tmp_path / "runs"), "--results", str(tmp_path), "--imbalance", "100",
            "--seeds", "0", "1", "--strategies", "random", "--rounds", "1", "--epochs", "1", "--jobs", "2", "--progress"]  # fmt: skip
    report = experiment.main(argv)
    line = report["imbalance"]["100"]["strategies"]["random"]
    assert line["seeds"] == 2 and line["labeled"] == [0, 125] and len(line["code"]) == 1
    for seed in (0, 1):
        recorded = tmp_path / "runs" / "r100" / f"seed{seed}" / "random" / "random"
        assert json.loads((recorded / "run.json").read_text())["seed"] == seed and (recorded / "metrics.json").exists()
    assert "2 runs to do, 2 at a time" in capsys.readouterr().out
    experiment.main(argv)  # everything recorded: nothing runs again
    assert "0 runs to do" in capsys.readouterr().out


def test_the_per_item_mask_counterfactual_gives_copies_their_own_masks_and_restores_the_generator(monkeypatch):
    import bald_per_item_loop
    import torch
    from torch.utils.data import TensorDataset

    from torch_al import ActivePool
    from torch_al.strategies import BALD
    from torch_al.strategies.bayesian import mc_dropout

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(16, 3)).eval()
    copies = torch.randn(1, 4).repeat(8, 1)
    pool = ActivePool(TensorDataset(copies, torch.zeros(8, dtype=torch.long)))
    scores = lambda: BALD(passes=16, progress=False, seed=3).item_scores(model, pool, pool.unlabeled_indices)  # noqa: E731
    consistent = scores()
    monkeypatch.setattr(mc_dropout, "ConsistentMasks", bald_per_item_loop.PerItemMasks)
    state = torch.get_rng_state()
    per_item = scores()
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(consistent, consistent[:1].expand(8))  # one weight sample per pass: copies agree
    assert per_item.unique().numel() == 8  # a mask per row: every copy scores differently
    assert torch.equal(per_item, scores())  # ... from (seed, round), the same each time
    assert not model.training and not model[2].training  # modes restored
