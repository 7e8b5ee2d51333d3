"""The Hugging Face Trainer callback: a round when training ends, on a tiny random-init ViT and a
``datasets.Dataset`` pool; the pool inside the Trainer's checkpoints, so resuming equals an
uninterrupted run."""

import pytest
import torch

from torch_al import ActivePool
from torch_al.models import tiny_vit
from torch_al.strategies import DIRECT, EnsembleEntropy, Entropy

transformers = pytest.importorskip("transformers")
datasets = pytest.importorskip("datasets")
pytest.importorskip("accelerate")
from torch_al.integrations.transformers import POOL_FILE, ActiveLearningCallback, LabeledItems  # noqa: E402

ITEMS = 60


def image_pool() -> ActivePool:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(ITEMS, 1, 28, 28, generator=generator)
    labels = torch.arange(ITEMS) % 10
    images[:, 0, :, :] += labels.view(-1, 1, 1) / 10  # something to learn
    table = datasets.Dataset.from_dict({"pixel_values": images.numpy(), "label": labels.tolist()}).with_format("torch")
    pool = ActivePool(table, input_key="pixel_values", target_key="label")
    pool.label(torch.arange(0, ITEMS, 3), labels[::3])
    return pool


def tiny_resnet():
    # transformers 5.25 saves a ViT's Trainer checkpoints under its legacy key names and resumes without
    # them (random layers, with a warning): resuming is tested on a model whose names round-trip.
    config = transformers.ResNetConfig(num_channels=1, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=10)
    return transformers.ResNetForImageClassification(config)


def make_trainer(pool: ActivePool, callback, output_dir, *more_callbacks, max_steps: int = 6, model=tiny_resnet) -> "transformers.Trainer":
    torch.manual_seed(0)
    arguments = transformers.TrainingArguments(
        output_dir=str(output_dir), max_steps=max_steps, per_device_train_batch_size=4, learning_rate=1e-3, save_strategy="steps",
        save_steps=3, report_to=[], use_cpu=True, seed=0, data_seed=0, logging_strategy="no", disable_tqdm=True,
    )  # fmt: skip
    return transformers.Trainer(model=model(), args=arguments, train_dataset=LabeledItems(pool), callbacks=[callback, *more_callbacks])


def test_training_ends_with_a_labeled_round_on_the_trained_model(tmp_path):
    pool = image_pool()
    callback = ActiveLearningCallback(pool, Entropy(progress=False), budget=5, oracle=pool.dataset_labels, state_path=tmp_path / "pool.pt")
    trainer = make_trainer(pool, callback, tmp_path / "run", model=lambda: tiny_vit(width=32, heads=2))
    trainer.train()
    assert pool.round == 1 and pool.labeled_indices.numel() == 25 and pool.pending_query is None
    # The trained model's most uncertain unlabeled items, as Entropy picks them directly.
    before = image_pool()
    expected = Entropy(progress=False).select(trainer.model.eval(), before, 5)
    assert torch.equal(pool.ledger.index[-5:].sort().values, expected.sort().values)
    assert torch.equal(ActivePool(pool.dataset, "pixel_values", "label").load(tmp_path / "pool.pt").ledger.index, pool.ledger.index)
    assert (tmp_path / "run" / "checkpoint-6" / POOL_FILE).exists()
    assert len(LabeledItems(pool)) == 25 and set(LabeledItems(pool)[0]) == {"pixel_values", "labels"}


class Interrupt(transformers.TrainerCallback):
    """Stops a run by an exception after ``step`` (what a crash does: no train-end hook runs)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


def test_a_resumed_run_selects_what_an_uninterrupted_one_does(tmp_path):
    uninterrupted = image_pool()
    make_trainer(uninterrupted, ActiveLearningCallback(uninterrupted, Entropy(progress=False), 5), tmp_path / "a").train()

    crashed = image_pool()
    with pytest.raises(KeyboardInterrupt):
        make_trainer(crashed, ActiveLearningCallback(crashed, Entropy(progress=False), 5), tmp_path / "b", Interrupt(4)).train()
    assert crashed.pending_query is None  # it crashed before the round
    resumed = image_pool()
    resumed.label([1], [1])  # what the new process holds differs: the checkpoint's pool replaces it
    callback = ActiveLearningCallback(resumed, Entropy(progress=False), 5)
    trainer = make_trainer(resumed, callback, tmp_path / "b")
    checkpoint = str(tmp_path / "b" / "checkpoint-3")
    callback.restore(checkpoint)
    trainer.train(resume_from_checkpoint=checkpoint)
    assert torch.equal(resumed.pending_query, uninterrupted.pending_query)
    assert torch.equal(resumed.labeled_indices, uninterrupted.labeled_indices)


def test_resuming_without_the_checkpoint_s_pool_is_an_error(tmp_path):
    pool = image_pool()
    make_trainer(pool, ActiveLearningCallback(pool, Entropy(progress=False), 5), tmp_path / "run").train()
    checkpoint = tmp_path / "run" / "checkpoint-3"
    fresh = image_pool()
    fresh.label([1], [1])
    with pytest.raises(ValueError, match=r"resumes at step 3 with a pool that is not the one saved in .*checkpoint-3 \(ActivePool\(size=60, labeled=21"):
        make_trainer(fresh, ActiveLearningCallback(fresh, Entropy(progress=False), 5), tmp_path / "run").train(resume_from_checkpoint=str(checkpoint))
    (checkpoint / POOL_FILE).unlink()
    callback = ActiveLearningCallback(image_pool(), Entropy(progress=False), 5)
    with pytest.raises(ValueError, match=r"checkpoint-3/torch_al_pool.pt does not exist; resume from a checkpoint saved with this callback"):
        callback.restore(checkpoint)


def test_ensembles_and_within_round_strategies_without_an_oracle_are_refused():
    pool = image_pool()
    with pytest.raises(ValueError, match="scores a Committee"):
        ActiveLearningCallback(pool, EnsembleEntropy(), 5)
    with pytest.raises(ValueError, match="asks for labels inside its round"):
        ActiveLearningCallback(pool, DIRECT(), 5)
