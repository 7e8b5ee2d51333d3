"""Samplers over a pool's labeled items, and a loader over its unlabeled items for scoring."""

import math
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from torch_al.generated_items_pool import TrainingSet
from torch_al.pool import ActivePool
from torch_al.seeding import derived_seed


class ActiveSampler(Sampler[int]):
    """Yields the pool's labeled global indices, shuffled deterministically from (seed, epoch, round).

    The labeled set is read when iteration starts, so one sampler serves every round. Each pass
    starts from ``epoch`` and then advances it by one; ``set_epoch`` sets it (as with
    ``DistributedSampler``). Use with ``DataLoader(pool, sampler=...)`` for the ledger's labels, or
    ``DataLoader(dataset, sampler=...)`` when the dataset's own labels are the truth (simulations).

    Args:
        pool: the :class:`ActivePool`, or a :class:`~torch_al.PseudoLabeledPool` to train on the
            ledger's labels plus pseudo-labels, or a :class:`~torch_al.GeneratedItemsPool` to add
            generated items (it reads only ``labeled_indices`` and ``round``).
        shuffle: shuffle each pass; otherwise ascending global index order.
        seed: the base seed; the same seed gives the same order on every run and machine.
    """

    def __init__(self, pool: TrainingSet, shuffle: bool = True, seed: int = 0) -> None:
        self.pool = pool
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _ordered(self) -> Tensor:
        indices = self.pool.labeled_indices
        if self.shuffle:
            generator = torch.Generator().manual_seed(derived_seed(self.seed, self.epoch, self.pool.round))
            indices = indices[torch.randperm(indices.numel(), generator=generator)]
        return indices

    def __iter__(self) -> Iterator[int]:
        order = self._ordered().tolist()
        self.epoch += 1
        return iter(order)

    def __len__(self) -> int:
        return int(self.pool.labeled_indices.numel())

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "shuffle": int(self.shuffle)}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.epoch, self.shuffle = int(state["seed"]), int(state["epoch"]), bool(state["shuffle"])


class DistributedActiveSampler(ActiveSampler):
    """:class:`ActiveSampler` sharded across DDP ranks like ``DistributedSampler``.

    Every rank computes the same order (the seed must be equal on all ranks) and takes
    ``order[rank::num_replicas]``. Without ``drop_last`` the order is padded by repeating its
    head so every rank runs the same number of batches (DDP hangs otherwise); with it, the tail
    is dropped. Build the pool's labels identically on every rank (load the same saved state).

    Args:
        num_replicas, rank: default to the process group's world size and rank.
    """

    def __init__(
        self,
        pool: TrainingSet,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        super().__init__(pool, shuffle, seed)
        if num_replicas is None or rank is None:
            if not dist.is_available() or not dist.is_initialized():
                raise RuntimeError("DistributedActiveSampler: no process group; pass num_replicas and rank")
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedActiveSampler: rank must be in [0, {num_replicas}), got rank={rank}")
        self.num_replicas, self.rank, self.drop_last = num_replicas, rank, drop_last

    def __len__(self) -> int:
        total = super().__len__()
        return total // self.num_replicas if self.drop_last else math.ceil(total / self.num_replicas)

    def __iter__(self) -> Iterator[int]:
        order = self._ordered().tolist()
        self.epoch += 1
        shard_total = len(order) - len(order) % self.num_replicas if self.drop_last else len(self) * self.num_replicas
        if shard_total > len(order) and order:
            order = (order * math.ceil(shard_total / len(order)))[:shard_total]
        return iter(order[self.rank : shard_total : self.num_replicas])


class _Inputs(Dataset):
    """The inputs of a pool's items, by global index (no labels needed)."""

    def __init__(self, pool: ActivePool) -> None:
        self.pool = pool

    def __len__(self) -> int:
        return len(self.pool)

    def __getitem__(self, index: int):
        return self.pool.inputs_of(self.pool.dataset[index])


def inputs_loader(pool: ActivePool, indices: Tensor, batch_size: int = 256, **loader_kwargs) -> DataLoader:
    """Batches of the inputs of ``indices``, in that order (for scoring or embeddings)."""
    return DataLoader(_Inputs(pool), batch_size=batch_size, sampler=indices.tolist(), **loader_kwargs)


def unlabeled_loader(pool: ActivePool, batch_size: int = 256, **loader_kwargs) -> DataLoader:
    """Batches of the inputs of ``pool.unlabeled_indices``, in that (ascending) order."""
    return inputs_loader(pool, pool.unlabeled_indices, batch_size, **loader_kwargs)
