"""ActiveLearningLoop: rounds, determinism, resumption, and runs killed with SIGKILL mid-save or
mid-round that resume to exactly what an uninterrupted run gives."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from al_scenario import BUDGET, INITIAL, ROUNDS, direct, learning_loss, make_loop, outcome, without_passes
from common_utils import REPO_ROOT

from torch_al.loop import CHECKPOINT_KIND
from torch_al.persistence import StateFileError, load_state
from torch_al.provenance import code_version
from torch_al.strategies import Margin, Random

TESTS = os.path.join(REPO_ROOT, "tests")

# Runs the scenario in a fresh interpreter and SIGKILLs itself at one chosen point.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from al_scenario import direct, learning_loss, make_loop
    from torch_al.strategies import Random
    folder, mode, at, log, name = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)
    hook = None
    if mode == "fsync":  # the n-th fsync: a temp file written but not yet renamed into place
        real, calls = os.fsync, []
        def fsync(fd):
            calls.append(fd)
            if len(calls) == at:
                die()
            real(fd)
        os.fsync = fsync
    elif mode == "train":
        hook = lambda round_, epoch: die() if (round_, epoch) == (at, 1) else None
    strategy = Random(seed=None) if mode == "oracle" else {"learning-loss": learning_loss, "direct": direct}.get(name, lambda: None)()
    loop = make_loop(folder, strategy=strategy, oracle_log=log, train_hook=hook)
    if mode == "oracle":
        oracle = loop.oracle
        def dying_oracle(indices):
            labels = oracle(indices)  # logs the query it was asked
            if loop.pool.round + 1 == at:
                die()
            return labels
        loop.oracle = dying_oracle
    loop.run()
    """
)


def run_killed(folder, mode: str, at: int, log, strategy: str = "entropy") -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO_ROOT, TESTS])}
    command = [sys.executable, "-c", CHILD, str(folder), mode, str(at), str(log), strategy]
    result = subprocess.run(command, env=env, cwd=TESTS, capture_output=True, text=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    loop = make_loop(tmp_path_factory.mktemp("reference"))
    return outcome(loop, loop.run())


def test_a_run_labels_budget_per_round_and_checkpoints(tmp_path, uninterrupted):
    index, label, rounds, metrics = uninterrupted
    assert len(index) == len(set(index)) == INITIAL + ROUNDS * BUDGET
    assert rounds == [0] * INITIAL + [r for r in range(1, ROUNDS + 1) for _ in range(BUDGET)]
    assert [m["labeled"] for m in metrics] == [INITIAL + r * BUDGET for r in range(ROUNDS + 1)]
    assert metrics[-1]["accuracy"] > metrics[0]["accuracy"]
    unlabeled_when_selecting = [200 - INITIAL - r * BUDGET for r in range(ROUNDS)]
    assert [m["select_forward"] for m in metrics[:-1]] == unlabeled_when_selecting  # entropy: one forward each
    assert all(m["select_backward"] == 0 for m in metrics[:-1]) and "select_forward" not in metrics[-1]
    assert {m["commit"] for m in metrics} == {code_version()["commit"]}  # every record names the code that made it
    loop = make_loop(tmp_path)
    assert outcome(loop, loop.run()) == uninterrupted  # determinism across runs with one seed
    saved = load_state(tmp_path / "state.pt", CHECKPOINT_KIND)
    assert json.loads(saved["metrics"]) == loop.metrics
    assert json.loads((tmp_path / "metrics.json").read_text()) == loop.metrics
    again = make_loop(tmp_path)  # a finished run resumes as finished: no training, no new labels
    assert outcome(again, again.run()) == uninterrupted


def test_extending_a_finished_run_adds_rounds(tmp_path, uninterrupted):
    loop = make_loop(tmp_path, rounds=2)
    loop.run()
    longer = make_loop(tmp_path, rounds=ROUNDS)
    assert outcome(longer, longer.run()) == uninterrupted


@pytest.mark.parametrize("mode, at", [("fsync", 9), ("fsync", 13), ("train", 2)], ids=["save-of-a-query", "save-of-labels", "training"])
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, uninterrupted, mode, at):
    run_killed(tmp_path / "run", mode, at, tmp_path / "oracle.log")
    assert load_state(tmp_path / "run" / "state.pt", CHECKPOINT_KIND)  # the last good state is intact
    if mode == "fsync":  # killed inside a save: its temp file is there, never renamed over the state
        assert any(name.startswith(".state.pt.") for name in os.listdir(tmp_path / "run"))
    loop = make_loop(tmp_path / "run")
    assert outcome(loop, loop.run()) == uninterrupted


@pytest.fixture(scope="module")
def uninterrupted_learning_loss(tmp_path_factory):
    loop = make_loop(tmp_path_factory.mktemp("learning_loss"), strategy=learning_loss())
    return outcome(loop, loop.run())


@pytest.mark.parametrize("mode, at", [("fsync", 9), ("train", 2)], ids=["save-of-a-query", "training"])
def test_a_killed_run_of_a_learning_strategy_resumes_with_its_module(tmp_path, uninterrupted_learning_loss, mode, at):
    run_killed(tmp_path / "run", mode, at, tmp_path / "oracle.log", strategy="learning-loss")
    assert any(key.startswith("strategy/module.") for key in load_state(tmp_path / "run" / "state.pt", CHECKPOINT_KIND))
    loop = make_loop(tmp_path / "run", strategy=learning_loss())
    assert outcome(loop, loop.run()) == uninterrupted_learning_loss


@pytest.fixture(scope="module")
def uninterrupted_direct(tmp_path_factory):
    loop = make_loop(tmp_path_factory.mktemp("direct"), strategy=direct())
    return outcome(loop, loop.run())


@pytest.mark.parametrize("at", [9, 12, 21], ids=["save-of-a-sub-batch", "save-of-its-answers", "a-later-sub-batch"])
def test_a_run_killed_inside_a_round_asked_in_sub_batches_resumes_it(tmp_path, uninterrupted_direct, at):
    run_killed(tmp_path / "run", "fsync", at, tmp_path / "oracle.log", strategy="direct")
    loop = make_loop(tmp_path / "run", strategy=direct())
    index, label, rounds, metrics = outcome(loop, loop.run())
    assert (index, label, rounds) == uninterrupted_direct[:3]
    assert without_passes(metrics) == without_passes(uninterrupted_direct[3])


def test_killed_during_labelling_reissues_the_saved_query(tmp_path):
    log = tmp_path / "oracle.log"
    run_killed(tmp_path / "run", "oracle", 2, log)
    asked_before_kill = [json.loads(line) for line in log.read_text().splitlines()]
    saved = load_state(tmp_path / "run" / "state.pt", CHECKPOINT_KIND)
    assert json.loads(saved["pool/meta"])["pending_strategy"] == "Random"  # the loop names the strategy of its query
    loop = make_loop(tmp_path / "run", strategy=Random(seed=None), oracle_log=log)  # unseeded: a new pick would differ
    loop.run()
    asked = [json.loads(line) for line in log.read_text().splitlines()]
    assert asked[len(asked_before_kill)] == asked_before_kill[-1]  # the same query, not a new one
    index = loop.pool.ledger.index.tolist()
    assert len(index) == len(set(index)) == INITIAL + ROUNDS * BUDGET  # nothing lost or duplicated


def test_resume_refuses_another_configuration_or_a_corrupt_checkpoint(tmp_path):
    make_loop(tmp_path, rounds=1).run()
    with pytest.raises(ValueError, match="another run configuration"):
        make_loop(tmp_path, strategy=Margin(progress=False)).run()
    path = tmp_path / "state.pt"
    good = path.read_bytes()
    path.write_bytes(good[:-100])
    with pytest.raises(StateFileError, match="truncated or corrupt"):
        make_loop(tmp_path).run()


def test_bad_loop_arguments():
    with pytest.raises(ValueError, match="budget must be an int >= 1"):
        make_loop(None).__class__(*[None] * 4, budget=0, rounds=1)
    loop = make_loop(None, rounds=30)
    with pytest.raises(ValueError, match=r"30 rounds × budget 10 need 300 more labels but only 190"):
        loop.run()
    assert loop.pool.labeled_indices.numel() == INITIAL and torch.is_tensor(loop.pool.labeled_indices)
