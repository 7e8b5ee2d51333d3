"""Experiment datasets and splits, the learning-curve plot, and the torch-al command."""

import json
import os
import subprocess
import sys

import pytest
import torch
from common_utils import REPO_ROOT
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.utils.data import TensorDataset

from torch_al.cli import main
from torch_al.datasets import balanced_split, imbalance, load_digits, make_blobs
from torch_al.experiment import RunConfig, make_trainer, run_experiment, setup_hash
from torch_al.models import LeNet
from torch_al.persistence import save_state, to_json
from torch_al.plots import learning_curve
from torch_al.pool import STATE_KIND, ActivePool
from torch_al.strategies import PFK, Random


def test_imbalance_keeps_classes_0_to_4_and_draws_the_rest_in_ratio():
    labels = torch.arange(1000) % 10
    pool = torch.arange(0, 1000)
    kept = imbalance(labels, pool, ratio=10, seed=0)
    counts = torch.bincount(labels[kept], minlength=10)
    assert counts[:5].tolist() == [100] * 5 and counts[5:].sum() == 50
    assert torch.equal(kept, imbalance(labels, pool, ratio=10, seed=0))
    assert not torch.equal(kept, imbalance(labels, pool, ratio=10, seed=1))
    assert torch.equal(imbalance(labels, pool, ratio=1), pool)
    with pytest.raises(ValueError, match="ratio must be >= 1"):
        imbalance(labels, pool, 0.5)


def test_balanced_split_and_small_datasets():
    labels = torch.arange(100) % 4
    balanced, rest = balanced_split(labels, 20, seed=0)
    assert torch.bincount(labels[balanced]).tolist() == [5] * 4
    assert sorted(balanced.tolist() + rest.tolist()) == list(range(100))
    with pytest.raises(ValueError, match="not a multiple of the 4 classes"):
        balanced_split(labels, 10)
    images, digits = load_digits()
    assert images.shape == (1797, 1, 28, 28) and digits.max() == 9 and 0 <= images.min() and images.max() <= 1
    x, y = make_blobs(30, num_classes=3, dim=5, seed=2)
    assert x.shape == (30, 5) and torch.bincount(y).tolist() == [10] * 3 and torch.equal(x, make_blobs(30, 3, 5, seed=2)[0])


def test_config_is_validated():
    with pytest.raises(ValueError, match="strategy must be among"):
        RunConfig(strategy=("nope",))
    with pytest.raises(ValueError, match="imbalance must be >= 1"):
        RunConfig(imbalance=0.1)
    with pytest.raises(SystemExit):
        main(["run", "--budget", "0"])


def test_learning_curve_returns_a_figure():
    figure = learning_curve({"random": [{"labeled": 10, "accuracy": 0.5}, {"labeled": 20, "accuracy": 0.6}]}, title="t")
    assert figure.axes[0].get_xlabel() == "labeled items" and len(figure.axes[0].lines) == 1


def test_learning_curve_gives_every_line_of_twenty_its_own_colour():
    curves = {f"line {i}": {"labeled": [0, 10], "accuracy": [0.1, 0.1 * i]} for i in range(20)}
    lines = learning_curve(curves).axes[0].lines
    assert len({line.get_color() for line in lines}) == 20
    assert [line.get_linestyle() for line in lines] == ["-"] * 10 + ["--"] * 10


def test_run_writes_metrics_and_plot(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "--dataset", "synthetic", "--strategy", "random", "margin", "--imbalance", "10", "--rounds", "2",
            "--budget", "20", "--initial", "20", "--epochs", "3", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "round  2  labels    60  random" in printed
    results = json.loads((out / "metrics.json").read_text())["results"]
    assert [r["labeled"] for r in results["margin"]] == [20, 40, 60]
    assert (out / "metrics.csv").read_text().startswith("strategy,round,labeled,accuracy")
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_select_label_status_on_user_data(tmp_path, capsys):
    torch.save(torch.randn(40, 3), tmp_path / "inputs.pt")
    batch = {"input": {0: torch.export.Dim("batch")}}
    torch.export.save(torch.export.export(nn.Linear(3, 4), (torch.randn(2, 3),), dynamic_shapes=batch), tmp_path / "model.pt2")
    state, data = str(tmp_path / "pool.pt"), str(tmp_path / "inputs.pt")
    select = ["select", "--state", state, "--data", data, "--model", str(tmp_path / "model.pt2"), "--budget", "5"]
    command = [sys.executable, "-m", "torch_al"]
    first = subprocess.run(command + select, capture_output=True, text=True, cwd=REPO_ROOT, check=True).stdout
    query = json.loads(first)["query"]
    assert len(query) == 5
    assert main(select + ["--strategy", "random"]) == 0  # pending: the same query comes back
    (tmp_path / "answers.json").write_text(json.dumps({str(i): i % 4 for i in query}))
    assert main(["label", "--state", state, "--data", data, "--labels", str(tmp_path / "answers.json")]) == 0
    (tmp_path / "bad.json").write_text(json.dumps({"99": 1}))
    assert main(["label", "--state", state, "--data", data, "--labels", str(tmp_path / "bad.json")]) == 1
    capsys.readouterr()
    assert main(["status", "--state", state]) == 0
    status = capsys.readouterr().out
    assert "round 1: 5 labeled, 35 unlabeled" in status and "no pending query" in status


def user_pool(tmp_path) -> tuple[str, str, list[str]]:
    """Files for the CLI: 40 inputs of dimension 3, an exported linear model; (state, data, select argv)."""
    torch.save(torch.randn(40, 3, generator=torch.Generator().manual_seed(0)), tmp_path / "inputs.pt")
    batch = {"input": {0: torch.export.Dim("batch")}}
    torch.export.save(torch.export.export(nn.Linear(3, 4), (torch.randn(2, 3),), dynamic_shapes=batch), tmp_path / "model.pt2")
    state, data = str(tmp_path / "pool.pt"), str(tmp_path / "inputs.pt")
    return state, data, ["select", "--state", state, "--data", data, "--model", str(tmp_path / "model.pt2")]


def user_labels(tmp_path, state: str, data: str, answers: dict[int, int]) -> None:
    (tmp_path / "answers.json").write_text(json.dumps({str(i): label for i, label in answers.items()}))
    assert main(["label", "--state", state, "--data", data, "--labels", str(tmp_path / "answers.json")]) == 0


def saved_pool(state: str, data: str) -> ActivePool:
    return ActivePool(TensorDataset(torch.load(data)), target_key=None).load(state)


def test_select_with_a_pending_query_says_it_reissues_it_and_ignores_another_request(tmp_path, capsys):
    state, data, select = user_pool(tmp_path)
    assert main(select + ["--strategy", "entropy", "--budget", "5"]) == 0
    first = capsys.readouterr()
    query = json.loads(first.out)["query"]
    assert len(query) == 5 and first.err == ""  # a fresh selection: no notice
    assert saved_pool(state, data).pending_strategy == "entropy"

    assert main(select + ["--strategy", "random", "--budget", "3"]) == 0
    again = capsys.readouterr()
    assert again.out == first.out  # stdout: exactly the same JSON line, for scripts
    assert "re-issuing the pending query for round 1: 5 items (0 already labeled), chosen by entropy with budget 5" in again.err
    assert "your request (--strategy random --budget 3) was NOT applied" in again.err
    assert f"`torch-al discard --state {state} --data {data}` drops it" in again.err

    user_labels(tmp_path, state, data, {query[0]: 1, query[1]: 2})
    capsys.readouterr()
    assert main(select + ["--strategy", "entropy", "--budget", "4"]) == 0  # only the budget differs
    partly = capsys.readouterr()
    assert partly.out == first.out
    assert "round 1: 5 items (2 already labeled), chosen by entropy with budget 5" in partly.err
    assert "your request (--budget 4) was NOT applied" in partly.err
    assert main(select + ["--strategy", "entropy", "--budget", "5"]) == 0  # the same request: re-issued, nothing refused
    same = capsys.readouterr()
    assert same.out == first.out and "re-issuing the pending query for round 1" in same.err and "NOT applied" not in same.err
    assert "torch-al discard" in same.err


def test_discard_then_select_chooses_with_the_new_request_and_keeps_every_label(tmp_path, capsys):
    state, data, select = user_pool(tmp_path)
    assert main(select + ["--strategy", "entropy", "--budget", "5"]) == 0
    query = json.loads(capsys.readouterr().out)["query"]
    user_labels(tmp_path, state, data, {query[0]: 1, query[3]: 0})  # part of the query answered
    before = saved_pool(state, data).ledger
    capsys.readouterr()

    assert main(["discard", "--state", state, "--data", data]) == 0
    out = capsys.readouterr().out
    assert "discarded the pending query for round 1: 5 items (2 already labeled), chosen by entropy with budget 5" in out
    assert "labels already given stay in the ledger" in out
    pool = saved_pool(state, data)
    assert pool.pending_query is None and pool.round == 0
    assert all(torch.equal(a, b) for a, b in zip(pool.ledger, before))  # no label lost, no row added
    assert pool.labeled_indices.tolist() == sorted([query[0], query[3]]) and pool.labels_of([query[0], query[3]]).tolist() == [1, 0]

    assert main(select + ["--strategy", "random", "--budget", "3", "--seed", "7"]) == 0
    fresh = capsys.readouterr()
    assert fresh.err == ""  # a new selection: no re-issue notice
    new_query = json.loads(fresh.out)
    assert new_query["round"] == 1 and new_query["query"] == Random(seed=7).select(None, pool, 3).tolist()
    assert not set(new_query["query"]) & {query[0], query[3]}
    after = saved_pool(state, data)
    assert after.pending_strategy == "random" and after.pending_query.tolist() == new_query["query"]
    assert all(torch.equal(a, b) for a, b in zip(after.ledger, before))
    assert main(["status", "--state", state]) == 0
    assert "pending query for round 1: 3 items (0 already labeled), chosen by random" in capsys.readouterr().out


def test_discard_without_a_pending_query_says_so_and_leaves_the_file(tmp_path, capsys):
    state, data, select = user_pool(tmp_path)
    assert main(select + ["--budget", "2"]) == 0
    query = json.loads(capsys.readouterr().out)["query"]
    user_labels(tmp_path, state, data, {query[0]: 0, query[1]: 3})  # round 1 complete
    content, stamp = (tmp_path / "pool.pt").read_bytes(), os.stat(state).st_mtime_ns
    capsys.readouterr()
    assert main(["discard", "--state", state, "--data", data]) == 0
    assert capsys.readouterr().out == f"no pending query in {state}: nothing to discard (file not modified)\n"
    assert (tmp_path / "pool.pt").read_bytes() == content and os.stat(state).st_mtime_ns == stamp
    assert main(["discard", "--state", str(tmp_path / "missing.pt"), "--data", data]) == 1  # the usual error path
    assert "torch-al discard: error: no torch_al state file at" in capsys.readouterr().err


def test_status_and_select_with_a_state_saved_before_the_strategy_was_recorded(tmp_path, capsys):
    state, data, select = user_pool(tmp_path)
    pool = ActivePool(TensorDataset(torch.load(data)), target_key=None)
    meta = {"fingerprint": pool.fingerprint, "round": 0, "pending_round": 1, "has_scores": False}  # schema 1: no pending_strategy
    old = {"schema_version": 1, "meta": to_json(meta), "pending_indices": torch.tensor([7, 2, 30]), "pending_scores": torch.empty(0, dtype=torch.float64),
           "ledger_index": torch.tensor([2]), "ledger_label": torch.tensor([1]), "ledger_round": torch.tensor([1]),
           "ledger_time": torch.tensor([1.7e9], dtype=torch.float64)}  # fmt: skip
    save_state(state, old, STATE_KIND)
    assert main(["status", "--state", state]) == 0
    assert "pending query for round 1: 3 items (1 already labeled), chosen by a strategy that was not recorded" in capsys.readouterr().out
    assert main(select + ["--strategy", "entropy", "--budget", "3"]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out) == {"round": 1, "query": [7, 2, 30], "final": True}
    assert "round 1: 3 items (1 already labeled), chosen by a strategy that was not recorded with budget 3" in printed.err
    assert "your request (--strategy entropy) was NOT applied" in printed.err
    assert main(["discard", "--state", state, "--data", data]) == 0
    assert "discarded the pending query for round 1: 3 items (1 already labeled)" in capsys.readouterr().out
    assert saved_pool(state, data).labeled_indices.tolist() == [2]


def test_a_query_recorded_by_the_loop_or_lightning_matches_its_cli_strategy_name(tmp_path, capsys):
    state, data, select = user_pool(tmp_path)
    pool = ActivePool(TensorDataset(torch.load(data)), target_key=None)
    pool.propose([4, 11], strategy="Entropy")  # the loop and the Lightning callback record class names
    pool.save(state)
    assert main(select + ["--strategy", "entropy", "--budget", "2"]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["query"] == [4, 11]
    assert "chosen by Entropy with budget 2" in printed.err and "NOT applied" not in printed.err
    assert main(select + ["--strategy", "margin", "--budget", "2"]) == 0
    assert "your request (--strategy margin) was NOT applied" in capsys.readouterr().err


def test_select_with_a_matching_strategy_hooks_the_exported_model(tmp_path, capsys):
    torch.manual_seed(0)
    model = LeNet().eval()
    inputs, labels = torch.rand(90, 1, 28, 28), torch.randint(0, 10, (90,))
    torch.save(inputs[30:], tmp_path / "inputs.pt")
    torch.save((inputs[:30], labels[:30]), tmp_path / "validation.pt")
    batch = {"x": {0: torch.export.Dim("batch")}}
    torch.export.save(torch.export.export(model, (inputs[:2],), dynamic_shapes=batch), tmp_path / "model.pt2")
    select = ["select", "--state", str(tmp_path / "pool.pt"), "--data", str(tmp_path / "inputs.pt"), "--model",
              str(tmp_path / "model.pt2"), "--budget", "6", "--strategy", "pfk"]  # fmt: skip
    with pytest.raises(SystemExit):
        main(select)  # no validation set: a usage error naming what to pass
    assert "--validation FILE and --layers" in capsys.readouterr().err
    assert main(select + ["--validation", str(tmp_path / "validation.pt"), "--layers", "act1", "act2", "act3"]) == 0
    query = json.loads(capsys.readouterr().out)["query"]
    expected = PFK((inputs[:30], labels[:30]), progress=False).select(model, ActivePool(TensorDataset(inputs[30:])), 6)
    assert query == expected.tolist()  # the unflattened export keeps the layer names the hooks need


def test_descriptor_layers_reach_the_matching_strategies(tmp_path):
    config = dict(dataset="digits", strategy=("pcc",), rounds=1, budget=10, initial=20, epochs=1, pool_size=200, progress=False)
    results = run_experiment(RunConfig(layers=("act2",), out=str(tmp_path / "l20"), **config))
    assert [r["labeled"] for r in results["pcc"]] == [20, 30]
    with pytest.raises(ValueError, match="nope"):
        run_experiment(RunConfig(layers=("nope",), out=str(tmp_path / "bad"), **config))


class _TwoLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body, self.head = nn.Linear(4, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


def _counting_trainer(config: RunConfig):
    """make_trainer's train on a 10-item labeled pool of 4-d points, and the optimiser steps it makes."""
    torch.manual_seed(0)
    pool = ActivePool(TensorDataset(torch.randn(40, 4), torch.randint(3, (40,))))
    pool.label(list(range(10)), pool.dataset.tensors[1][:10])
    steps = []
    hook = register_optimizer_step_post_hook(lambda optimizer, args, kwargs: steps.append(1))
    try:
        model = _TwoLayers()
        before = {name: value.clone() for name, value in model.state_dict().items()}
        make_trainer(config, Random())(model, pool, 1)
    finally:
        hook.remove()
    changed = {name for name, value in model.state_dict().items() if not torch.equal(value, before[name])}
    return len(steps), changed


def test_min_steps_raises_the_epochs_and_head_training_freezes_the_backbone():
    steps, changed = _counting_trainer(RunConfig(dataset="synthetic", epochs=3, batch_size=4))
    assert steps == 3 * 3 and changed == {"body.weight", "body.bias", "head.weight", "head.bias"}  # 10 items: 3 batches an epoch
    steps, _ = _counting_trainer(RunConfig(dataset="synthetic", epochs=3, batch_size=4, min_steps=20))
    assert steps == 7 * 3  # ceil(20 / 3) = 7 epochs
    steps, changed = _counting_trainer(RunConfig(dataset="synthetic", epochs=3, batch_size=4, train="head"))
    assert steps == 9 and changed == {"head.weight", "head.bias"}


def test_recipe_options_are_validated_and_hashed_only_when_set():
    for options, message in (({"train": "body"}, "train must be one of"), ({"min_steps": -1}, "min_steps must be an int >= 0"),
                             ({"evaluate_on": "pool"}, "evaluate_on must be test or validation"),
                             ({"train": "head", "strategy": ("ensemble-entropy",)}, "train='head' trains one model's last nn.Linear")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            RunConfig(**options)
    default = setup_hash(RunConfig())
    assert setup_hash(RunConfig(train="all", min_steps=0, evaluate_on="test")) == default
    assert len({default, setup_hash(RunConfig(train="head")), setup_hash(RunConfig(min_steps=5)), setup_hash(RunConfig(evaluate_on="validation"))}) == 4


def test_evaluate_on_validation_scores_the_held_out_set(tmp_path, monkeypatch):
    import torch_al.experiment as experiment

    scored = []
    real = experiment.make_evaluator
    monkeypatch.setattr(experiment, "make_evaluator", lambda config, data, pool, rare: scored.append(data) or real(config, data, pool, rare))
    splits = experiment.load_splits(RunConfig(dataset="synthetic", seed=3))
    for where, expected in (("test", splits.test), ("validation", splits.validation)):
        run_experiment(RunConfig(dataset="synthetic", strategy=("random",), rounds=1, budget=10, epochs=1, seed=3, evaluate_on=where, out=str(tmp_path / where), progress=False))
        assert torch.equal(scored[-1][0], expected[0]) and torch.equal(scored[-1][1], expected[1])
