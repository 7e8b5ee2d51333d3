"""Reproducible runs: what each run folder records of the code and configuration that made it, and
a finished line re-run from scratch in another process gives every number again."""

import json
import subprocess
import sys

import pytest
from common_utils import REPO_ROOT

from torch_al import provenance
from torch_al.experiment import RunConfig, record_provenance, run_experiment, setup_hash

TINY = dict(dataset="digits", imbalance=10.0, rounds=2, budget=20, initial=10, epochs=2, passes=4, pool_size=400, progress=False)


def _numbers(records: list[dict]) -> list[dict]:
    """Every recorded number but the wall-clock times."""
    return [{key: value for key, value in record.items() if not key.endswith("seconds")} for record in records]


def test_a_finished_line_rerun_in_another_process_reproduces_every_number(tmp_path):
    # BALD: training with dropout, MC-dropout selection, a LeNet on images: every draw is seeded.
    first = run_experiment(RunConfig(strategy=("random", "bald"), out=str(tmp_path / "first"), **TINY))
    argv = [sys.executable, "-m", "torch_al", "run", "--dataset", "digits", "--strategy", "random", "bald", "--imbalance", "10",
            "--rounds", "2", "--budget", "20", "--initial", "10", "--epochs", "2", "--passes", "4", "--pool-size", "400",
            "--out", str(tmp_path / "again"), "--no-progress"]  # fmt: skip
    subprocess.run(argv, check=True, capture_output=True, cwd=REPO_ROOT)
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())["results"]
    for name in ("random", "bald"):
        assert _numbers(again[name]) == _numbers(first[name])
        assert len(first[name]) == 3 and first[name][1]["accuracy"] > 0


def test_each_line_records_its_code_setup_and_environment(tmp_path):
    run_experiment(RunConfig(strategy=("random", "entropy"), out=str(tmp_path / "seed0"), **TINY))
    run_experiment(RunConfig(strategy=("random",), seed=1, out=str(tmp_path / "seed1"), **TINY))
    records = {path: json.loads((tmp_path / path / "run.json").read_text()) for path in ("seed0/random", "seed0/entropy", "seed1/random")}
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT).stdout.strip()
    for record in records.values():
        assert record["code"][0]["commit"] == head and isinstance(record["code"][0]["dirty"], bool)
        assert record["code"][0]["version"] == provenance.__version__ and record["finished"] is not None
        assert record["environment"]["torch_threads"] >= 1
    assert len({record["setup_hash"] for record in records.values()}) == 1  # one experiment: lines and seeds share it
    assert [records[p]["strategy"] for p in records] == ["random", "entropy", "random"] and records["seed1/random"]["seed"] == 1
    assert setup_hash(RunConfig(**{**TINY, "epochs": 3})) != records["seed0/random"]["setup_hash"]
    summary = json.loads((tmp_path / "seed0" / "metrics.json").read_text())
    assert summary["setup_hash"] == records["seed0/random"]["setup_hash"] and summary["code"]["commit"] == head


def test_a_run_folder_of_another_setup_is_refused_and_other_code_is_listed(tmp_path, monkeypatch):
    config = RunConfig(strategy=("random",), out=str(tmp_path), **TINY)
    record_provenance(config, "random", str(tmp_path / "random"))
    with pytest.raises(ValueError, match=r"holds a run of .*'seed': 0.*not of .*'seed': 1.*use another --out"):
        record_provenance(RunConfig(strategy=("random",), out=str(tmp_path), seed=1, **TINY), "random", str(tmp_path / "random"))
    with pytest.raises(ValueError, match="holds a run of"):
        run_experiment(RunConfig(strategy=("random",), out=str(tmp_path), **{**TINY, "epochs": 5}))
    monkeypatch.setattr(provenance, "code_version", lambda: {"version": "0", "commit": "abc", "dirty": False, "sources": "s"})
    monkeypatch.setattr("torch_al.experiment.code_version", provenance.code_version)
    record = record_provenance(config, "random", str(tmp_path / "random"))
    assert [code["commit"] for code in record["code"]][1:] == ["abc"]  # resumed by other code: both listed


def test_outside_a_git_checkout_the_commit_is_unknown(monkeypatch):
    monkeypatch.setattr(provenance, "_git", lambda *args, **options: None)
    code = provenance.code_version()
    assert code == {"version": provenance.__version__, "commit": "unknown", "dirty": None, "sources": None}
    assert provenance.code_identity(code) == "unknown"
    assert provenance.code_identity({"commit": "abc", "dirty": True, "sources": "s"}) == "abc+changes"
    assert provenance.code_identity({"commit": "abc", "dirty": False, "sources": "s"}) == "s"
    assert provenance.config_hash({"a": 1, "b": [2]}) == provenance.config_hash({"b": [2], "a": 1}) != provenance.config_hash({"a": 2, "b": [2]})
