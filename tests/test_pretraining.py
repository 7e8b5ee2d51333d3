"""Rotation self-supervised pretraining: the rotated batches, learning the rotation task, the head
re-initialised afterwards, errors, and the ``NAME+rotation`` strategies of ``torch-al run``."""

import json

import pytest
import torch
from torch import nn

import torch_al.experiment
from torch_al.experiment import RunConfig, run_experiment
from torch_al.loop import CHECKPOINT_KIND
from torch_al.models import LeNet, SmallResNet
from torch_al.persistence import load_state
from torch_al.pretraining import head_slot, rotated_batch, rotation_pretrain


def test_rotated_batch_holds_each_image_at_four_quarter_turns():
    images = torch.arange(2 * 3 * 3, dtype=torch.float32).reshape(2, 1, 3, 3)
    rotated, targets = rotated_batch(images)
    assert rotated.shape == (8, 1, 3, 3) and targets.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    quarter = images.transpose(-2, -1).flip(-2)  # counter-clockwise by 90°, written out
    assert torch.equal(rotated[:2], images) and torch.equal(rotated[2:4], quarter)
    assert torch.equal(rotated[4:6], images.flip(-2, -1)) and torch.equal(rotated[6:], quarter.flip(-2, -1))


def test_head_slot_is_the_classifier_head():
    lenet, resnet = LeNet(), SmallResNet(widths=(4, 8))
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    assert head_slot(lenet)[1:] == ("fc2", lenet.fc2)
    assert head_slot(resnet)[1:] == ("head", resnet.head)
    assert head_slot(mlp)[1:] == ("3", mlp[3])
    with pytest.raises(ValueError, match="has none"):
        head_slot(nn.Conv2d(1, 1, 1))


def test_pretraining_learns_rotations_then_restores_a_fresh_head():
    generator = torch.Generator().manual_seed(0)
    images = torch.zeros(256, 1, 28, 28)
    images[:, :, 4:12, 4:20] = 1  # an upright bar near the top: its rotation is learnable
    images += 0.1 * torch.rand(images.shape, generator=generator)
    torch.manual_seed(0)
    model = LeNet()
    head, conv1 = model.fc2, model.conv1.weight.detach().clone()
    accuracies = []  # of the rotation head, on each training batch, as the model saw it
    targets = torch.arange(4).repeat_interleave(32)

    def record(module, args, logits):
        accuracies.append((logits.argmax(1) == targets).float().mean().item())

    model.register_forward_hook(record)
    rotation_pretrain(model, images, epochs=5, batch_size=32, progress=False)
    assert len(accuracies) == 5 * 8 and max(accuracies[:4]) < 0.4 and min(accuracies[-8:]) > 0.9  # chance is 0.25
    assert model.fc2 is head and head.out_features == 10  # the task head is back, re-initialised
    assert not torch.equal(model.conv1.weight, conv1)


def test_pretraining_is_deterministic_for_a_seed():
    images = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        model = rotation_pretrain(LeNet(), images, epochs=1, batch_size=16, seed=3, progress=False)
        weights.append(model.state_dict())
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


@pytest.mark.parametrize(
    "images, options, error, match",
    [
        (torch.rand(4, 1, 28, 20), {}, ValueError, "square images"),
        (torch.rand(4, 28, 28), {}, ValueError, r"Tensor\[N, C, H, W\], got \(4, 28, 28\)"),
        (torch.rand(0, 1, 28, 28), {}, ValueError, "non-empty"),
        (torch.zeros(4, 1, 28, 28, dtype=torch.uint8), {}, TypeError, "floating-point images, got torch.uint8"),
        (torch.rand(4, 1, 28, 28), {"epochs": 0}, ValueError, "epochs must be an int >= 1, got 0"),
        (torch.rand(4, 1, 28, 28), {"batch_size": 2.5}, ValueError, "batch_size must be an int >= 1"),
    ],
)
def test_bad_input_is_named(images, options, error, match):
    model = LeNet()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    with pytest.raises(error, match=match):
        rotation_pretrain(model, images, progress=False, **options)
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())


def test_rotation_strategies_pretrain_once_and_not_again_on_resume(tmp_path, monkeypatch):
    calls = []
    real = torch_al.experiment.pretrain
    monkeypatch.setattr(torch_al.experiment, "pretrain", lambda *args: calls.append(1) or real(*args))
    config = RunConfig(dataset="digits", strategy=("random", "random+rotation", "entropy+rotation"), rounds=1, budget=20,
                       initial=20, epochs=1, pretrain_epochs=1, pool_size=300, out=str(tmp_path), progress=False)  # fmt: skip
    results = run_experiment(config)
    assert len(calls) == 1 and set(results) == {"random", "random+rotation", "entropy+rotation"}
    saved = json.loads((tmp_path / "metrics.json").read_text())["results"]
    checkpoints = {name: load_state(str(tmp_path / name / "state.pt"), CHECKPOINT_KIND) for name in ("random", "random+rotation")}
    assert torch.equal(checkpoints["random"]["pool/ledger_index"], checkpoints["random+rotation"]["pool/ledger_index"])  # same labels drawn
    assert not torch.equal(checkpoints["random"]["model/conv1.weight"], checkpoints["random+rotation"]["model/conv1.weight"])  # another initial model
    assert [r["labeled"] for r in saved["entropy+rotation"]] == [20, 40]
    run_experiment(config)  # resumes from the checkpoints: nothing to pretrain
    assert len(calls) == 1
    with pytest.raises(ValueError, match="optionally with '\\+rotation' or '\\+simclr'"):
        RunConfig(strategy=("random+rotations",))


def test_simclr_and_rotation_strategies_each_pretrain_once(tmp_path, monkeypatch):
    calls = []
    real = torch_al.experiment.pretrain
    monkeypatch.setattr(torch_al.experiment, "pretrain", lambda *args: calls.append(args[-1]) or real(*args))
    config = RunConfig(dataset="digits", strategy=("typiclust+simclr", "probcover+simclr", "random+rotation"), rounds=1, budget=20,
                       epochs=1, pretrain_epochs=1, simclr_epochs=1, pool_size=300, out=str(tmp_path), progress=False)  # fmt: skip
    results = run_experiment(config)
    assert sorted(calls) == ["rotation", "simclr"] and set(results) == set(config.strategy)
    checkpoints = {name: load_state(str(tmp_path / name / "state.pt"), CHECKPOINT_KIND) for name in config.strategy}
    assert [r["labeled"] for r in results["probcover+simclr"]] == [0, 20]  # a cold first round
    assert not torch.equal(checkpoints["typiclust+simclr"]["model/conv1.weight"], checkpoints["random+rotation"]["model/conv1.weight"])
    with pytest.raises(ValueError, match="simclr_epochs must be an int >= 1"):
        RunConfig(simclr_epochs=0)


def test_a_pretrained_cache_serves_the_next_run_of_the_same_setup_and_seed(tmp_path, monkeypatch):
    calls = []
    real = torch_al.experiment.pretrain
    monkeypatch.setattr(torch_al.experiment, "pretrain", lambda *args: calls.append(args[-1]) or real(*args))
    options = dict(dataset="digits", rounds=1, budget=10, epochs=1, simclr_epochs=1, pool_size=200, progress=False, pretrained_cache=str(tmp_path / "cache"))
    first = run_experiment(RunConfig(strategy=("random+simclr",), out=str(tmp_path / "a"), **options))
    second = run_experiment(RunConfig(strategy=("random+simclr",), out=str(tmp_path / "b"), **options))
    accuracy = lambda results: [record["accuracy"] for record in results["random+simclr"]]  # noqa: E731
    assert calls == ["simclr"] and accuracy(first) == accuracy(second)  # the second run read the weights, and ran alike
    run_experiment(RunConfig(strategy=("random+simclr",), out=str(tmp_path / "c"), seed=1, **options))
    assert calls == ["simclr", "simclr"]  # another seed pretrains its own model
    # What follows pretraining (the budget, the recipe, where accuracy is measured) shares the weights;
    # what pretraining depends on does not.
    run_experiment(RunConfig(strategy=("random+simclr",), out=str(tmp_path / "d"), **{**options, "budget": 5}, train="head", min_steps=3, evaluate_on="validation"))
    assert calls == ["simclr", "simclr"]
    run_experiment(RunConfig(strategy=("random+simclr",), out=str(tmp_path / "e"), **{**options, "simclr_epochs": 2}))
    assert calls == ["simclr", "simclr", "simclr"]
