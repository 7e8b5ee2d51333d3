"""ActiveSampler and its distributed variant: determinism, sharding, and end-to-end training."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from torch_al import ActivePool, ActiveSampler, DistributedActiveSampler, unlabeled_loader
from torch_al.datasets import make_blobs


def labeled_pool(n=40, labeled=range(0, 40, 3)) -> ActivePool:
    pool = ActivePool(TensorDataset(torch.randn(n, 2), torch.arange(n) % 2))
    pool.label(list(labeled), [i % 2 for i in labeled])
    return pool


def test_order_is_deterministic_from_seed_epoch_and_round():
    pool = labeled_pool()
    first, again = ActiveSampler(pool, seed=3), ActiveSampler(pool, seed=3)
    assert list(first) == list(again) and sorted(first) == pool.labeled_indices.tolist()
    assert len(first) == 14
    epoch0 = list(ActiveSampler(pool, seed=3))
    sampler = ActiveSampler(pool, seed=3)
    sampler.set_epoch(1)
    assert list(sampler) != epoch0 and sampler.epoch == 2  # a pass advances the epoch
    assert list(ActiveSampler(pool, seed=4)) != epoch0
    pool.propose([1])
    pool.label([1], [1])  # round 1 reshuffles and includes the new item
    assert 1 in list(ActiveSampler(pool, seed=3)) and len(ActiveSampler(pool)) == 15
    assert list(ActiveSampler(pool, shuffle=False)) == pool.labeled_indices.tolist()


def test_state_dict_restores_the_next_pass():
    pool = labeled_pool()
    sampler = ActiveSampler(pool, seed=5)
    list(sampler)
    state = sampler.state_dict()
    expected = list(sampler)
    restored = ActiveSampler(pool)
    restored.load_state_dict(state)
    assert list(restored) == expected


@pytest.mark.parametrize("replicas, drop_last", [(1, False), (3, False), (3, True), (4, False)])
def test_distributed_shards_like_distributed_sampler(replicas, drop_last):
    pool = labeled_pool()  # 14 labeled
    shards = [list(DistributedActiveSampler(pool, replicas, rank, seed=1, drop_last=drop_last)) for rank in range(replicas)]
    assert len({len(shard) for shard in shards}) == 1
    assert all(len(shard) == len(DistributedActiveSampler(pool, replicas, 0, drop_last=drop_last)) for shard in shards)
    merged = [i for shard in shards for i in shard]
    labeled = set(pool.labeled_indices.tolist())
    assert set(merged) <= labeled
    if drop_last:
        assert len(merged) == 14 - 14 % replicas and len(set(merged)) == len(merged)
    else:
        assert set(merged) == labeled and len(merged) == -(-14 // replicas) * replicas
    with pytest.raises(ValueError, match="rank must be in"):
        DistributedActiveSampler(pool, 2, 2)
    with pytest.raises(RuntimeError, match="no process group"):
        DistributedActiveSampler(pool)


def test_unlabeled_loader_yields_inputs_in_global_index_order():
    pool = labeled_pool(n=10, labeled=[0, 4])
    batches = list(unlabeled_loader(pool, batch_size=3))
    assert torch.equal(torch.cat(batches), pool.dataset.tensors[0][pool.unlabeled_indices])


def train_once(seed: int) -> tuple[float, list[float]]:
    x, y = make_blobs(300, num_classes=3, dim=4, seed=0)
    pool = ActivePool(TensorDataset(x, y))
    pool.label(torch.arange(0, 300, 5), y[::5])
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sampler = ActiveSampler(pool, seed=seed)
    losses = []
    for epoch in range(5):
        sampler.set_epoch(epoch)
        for xb, yb in DataLoader(pool, sampler=sampler, batch_size=8):
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    return accuracy, losses


def test_dataloader_with_active_sampler_trains_end_to_end_and_deterministically():
    accuracy, losses = train_once(seed=0)
    assert len(losses) == 5 * 8  # 60 labeled items, batches of 8
    assert accuracy > 0.9
    assert train_once(seed=0) == (accuracy, losses)
