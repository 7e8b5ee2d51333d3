"""The Lightning callback: a selection round at the end of fit, the pool inside trainer checkpoints."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from torch_al import ActivePool, ActiveSampler
from torch_al.datasets import make_blobs
from torch_al.strategies import DIRECT, Entropy, LearningLoss

pl = pytest.importorskip("pytorch_lightning")
from torch_al.integrations.lightning import ActiveLearningCallback  # noqa: E402


class Classifier(pl.LightningModule):
    """Trains through the strategy's objective: the cross entropy, or learning loss's joint one."""

    def __init__(self, strategy) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
        self.strategy = strategy

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_index):
        x, y = batch
        return self.strategy.training_loss(self, x, y, self.current_epoch, self.trainer.max_epochs)

    def configure_optimizers(self):
        return torch.optim.SGD([*self.parameters(), *self.strategy.extra_parameters(self, torch.zeros(1, 4))], lr=0.1)


def fit(pool, callback, **trainer_options):
    trainer = pl.Trainer(
        max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, callbacks=[callback], **trainer_options,
    )  # fmt: skip
    trainer.fit(Classifier(callback.strategy), DataLoader(pool, sampler=ActiveSampler(pool), batch_size=8))
    return trainer


def blob_pool() -> ActivePool:
    x, y = make_blobs(120, num_classes=3, dim=4, seed=0)
    pool = ActivePool(TensorDataset(x, y))
    pool.label(torch.arange(0, 120, 6), y[::6])
    return pool


def test_fit_ends_with_a_labeled_round_and_checkpoints_carry_the_pool(tmp_path):
    pool = blob_pool()
    callback = ActiveLearningCallback(pool, Entropy(progress=False), budget=10, oracle=pool.dataset_labels, state_path=tmp_path / "pool.pt")
    trainer = fit(pool, callback)
    assert pool.round == 1 and pool.labeled_indices.numel() == 30
    trainer.save_checkpoint(tmp_path / "trainer.ckpt")
    checkpoint = torch.load(tmp_path / "trainer.ckpt", weights_only=False)
    restored = blob_pool()
    ActiveLearningCallback(restored, Entropy(), 10).load_state_dict(checkpoint["callbacks"][callback.state_key])
    assert torch.equal(restored.ledger.index, pool.ledger.index) and restored.round == 1
    assert torch.equal(blob_pool().load(tmp_path / "pool.pt").labeled_indices, pool.labeled_indices)


def test_without_an_oracle_the_query_stays_pending_and_is_reissued(tmp_path):
    pool = blob_pool()
    callback = ActiveLearningCallback(pool, Entropy(progress=False), budget=5, state_path=tmp_path / "pool.pt")
    fit(pool, callback)
    query = pool.pending_query
    assert query.numel() == 5 and pool.round == 0 and pool.pending_strategy == "Entropy"
    fit(pool, callback)  # another fit before the annotators answered: the same query
    assert torch.equal(pool.pending_query, query)
    saved = blob_pool().load(tmp_path / "pool.pt")
    assert torch.equal(saved.pending_query, query) and saved.pending_strategy == "Entropy"


def test_a_learning_strategy_trains_in_the_module_and_its_state_travels_with_the_pool():
    pool = blob_pool()
    callback = ActiveLearningCallback(pool, LearningLoss(layers=["net.1"], width=8, progress=False), budget=6, oracle=lambda i: torch.zeros(len(i), dtype=torch.int64))
    fit(pool, callback)
    assert callback.strategy.trained_batches == 2 * 3 and pool.labeled_indices.numel() == 26  # 20 labeled / batch 8: 3 batches per epoch
    state = callback.state_dict()
    restored = ActiveLearningCallback(blob_pool(), LearningLoss(layers=["net.1"], width=8, progress=False), budget=6)
    restored.load_state_dict(state)
    probe = torch.randn(5, 4)
    model = Classifier(restored.strategy).eval()
    callback.strategy.module.eval(), restored.strategy.module.eval()
    torch.testing.assert_close(restored.strategy.predicted_losses(model, probe), callback.strategy.predicted_losses(model, probe))
    assert torch.equal(restored.pool.labeled_indices, pool.labeled_indices)


def test_a_strategy_that_asks_within_its_round_gets_each_sub_batch_answered_and_needs_an_oracle(tmp_path):
    pool = blob_pool()
    asked = []
    oracle = lambda indices: asked.append(indices.numel()) or pool.dataset_labels(indices)  # noqa: E731
    callback = ActiveLearningCallback(pool, DIRECT(annotators=2, progress=False), budget=12, oracle=oracle, state_path=tmp_path / "pool.pt")
    fit(pool, callback)
    assert pool.round == 1 and pool.labeled_indices.numel() == 20 + 12 and sum(asked) == 12 and len(asked) > 2
    assert blob_pool().load(tmp_path / "pool.pt").round == 1
    with pytest.raises(ValueError, match="DIRECT asks for labels inside its round, with the model fixed; the callback serves it only with an oracle"):
        ActiveLearningCallback(blob_pool(), DIRECT(progress=False), budget=12)
