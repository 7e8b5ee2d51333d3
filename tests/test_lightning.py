"""The Lightning callback: a selection round at the end of fit, the pool inside trainer checkpoints."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from torch_al import ActivePool, ActiveSampler
from torch_al.datasets import make_blobs
from torch_al.strategies import Entropy

pl = pytest.importorskip("pytorch_lightning")
from torch_al.integrations.lightning import ActiveLearningCallback  # noqa: E402


class Classifier(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_index):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(pool, callback, **trainer_options):
    trainer = pl.Trainer(
        max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, callbacks=[callback], **trainer_options,
    )  # fmt: skip
    trainer.fit(Classifier(), DataLoader(pool, sampler=ActiveSampler(pool), batch_size=8))
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
