"""The experiment's simulated annotators with a set fraction of wrong answers, the rare half of the
classes (5..9 or drawn per seed), and the setup hash of runs recorded before these options existed."""

import dataclasses
import json
import os

import pytest
import torch
from common_utils import REPO_ROOT

from torch_al.experiment import MINORITY, RunConfig, load_splits, noisy_oracle, rare_classes, setup_hash


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
        assert setup_hash(dataclasses.replace(config, rare_classes="drawn")) != run["setup_hash"]
    finally:
        torch.set_num_threads(threads)


def test_the_rare_half_is_classes_5_to_9_or_a_half_drawn_per_seed():
    assert rare_classes(RunConfig(seed=0)) == MINORITY
    drawn = {seed: rare_classes(RunConfig(seed=seed, rare_classes="drawn")) for seed in range(6)}
    assert all(len(half) == 5 and len(set(half)) == 5 and set(half) <= set(range(10)) for half in drawn.values())
    assert drawn[2] == rare_classes(RunConfig(seed=2, rare_classes="drawn"))  # fixed by the seed
    assert len(set(drawn.values())) > 1  # and differs between seeds
    with pytest.raises(ValueError, match="rare_classes must be one of"):
        RunConfig(rare_classes="odd")


def test_the_drawn_rare_half_is_what_the_pool_lacks_and_what_the_metrics_count():
    config = RunConfig(dataset="digits", imbalance=10.0, rare_classes="drawn", seed=1)
    splits = load_splits(config)
    rare = rare_classes(config)
    assert splits.rare == rare != MINORITY
    counts = torch.bincount(splits.pool.tensors[1], minlength=10)
    common = [k for k in range(10) if k not in rare]
    assert counts[list(common)].sum() >= 9 * counts[list(rare)].sum()
