"""The experiment's simulated annotators with a set fraction of wrong answers, and the setup hash
of runs recorded before the option existed."""

import dataclasses
import json
import os

import torch
from common_utils import REPO_ROOT

from torch_al.experiment import RunConfig, noisy_oracle, setup_hash


def test_a_fixed_seeded_fraction_of_items_gets_another_class():
    labels = torch.arange(20_000) % 10
    oracle = noisy_oracle(labels, 0.1, seed=3)
    everything = torch.arange(labels.numel())
    answers = oracle(everything)
    wrong = answers != labels
    assert 0.09 < wrong.float().mean() < 0.11
    assert ((answers >= 0) & (answers < 10)).all()
    assert torch.equal(oracle(everything.flip(0)), answers.flip(0))  # asked again, in any order: the same answers
    assert torch.equal(noisy_oracle(labels, 0.1, seed=3)(everything), answers)
    assert not torch.equal(noisy_oracle(labels, 0.1, seed=4)(everything), answers)
    assert torch.equal(noisy_oracle(labels, 0.0, seed=3)(everything), labels)
    # Wrong answers spread over the other classes alike (about 1/9 each).
    shares = torch.bincount((answers[wrong] - labels[wrong]) % 10, minlength=10)[1:].float() / wrong.sum()
    assert (shares - 1 / 9).abs().max() < 0.03


def test_options_added_later_change_the_setup_only_when_set():
    """A run recorded before ``annotators`` and ``label_noise`` existed keeps its setup hash, so
    new seeds of its line still summarise with it."""
    recorded = os.path.join(REPO_ROOT, "benchmarks", "results", "al_fashion_mnist_runs", "r100", "seed8", "badge", "badge", "run.json")
    with open(recorded) as f:
        run = json.load(f)
    config = RunConfig(**{key: tuple(value) if isinstance(value, list) else value for key, value in run["config"].items()})
    threads = torch.get_num_threads()
    torch.set_num_threads(run["environment"]["torch_threads"])
    try:
        assert setup_hash(config) == run["setup_hash"]
        assert setup_hash(dataclasses.replace(config, label_noise=0.1)) != run["setup_hash"]
        assert setup_hash(dataclasses.replace(config, annotators=5)) != run["setup_hash"]
    finally:
        torch.set_num_threads(threads)
