"""One pool state on every rank: the labeled set's hash compared over the ranks, saved from rank 0
only after every rank agrees (so a failed or partial selection never changes the saved state)."""

from typing import TYPE_CHECKING, List, Optional

import torch.distributed as dist

from torch_al.distributed.collectives import on_every_rank, rank_in, ranks_in
from torch_al.persistence import checksum

if TYPE_CHECKING:
    from torch_al.pool import ActivePool


def labeled_set_hash(pool: "ActivePool") -> str:
    """SHA-256 of the pool's labeled set: the ledger's indices and labels, and the round."""
    ledger = pool.ledger
    return checksum({"index": ledger.index, "label": ledger.label, "round": pool.round})


def check_same_pool(pool: "ActivePool", group: Optional[dist.ProcessGroup] = None) -> str:
    """Checks that every rank holds rank 0's labeled set and returns its hash; otherwise every
    rank raises a ValueError naming both hashes."""
    hashes: List[Optional[str]] = [None] * ranks_in(group)
    dist.all_gather_object(hashes, labeled_set_hash(pool), group=group)
    for rank, other in enumerate(hashes):
        if other != hashes[0]:
            raise ValueError(
                f"torch_al.distributed: rank {rank}'s labeled set (hash {other}) differs from rank 0's "
                f"(hash {hashes[0]}); load the same pool state on every rank"
            )
    return hashes[0]


def save_pool(pool: "ActivePool", path: str, group: Optional[dist.ProcessGroup] = None) -> None:
    """Saves the pool state from rank 0 only (atomically, as :meth:`ActivePool.save`), after
    checking every rank holds the same labeled set; returns on every rank once the file is
    complete, and a failed write raises on every rank."""
    check_same_pool(pool, group)
    on_every_rank(lambda: pool.save(path) if rank_in(group) == 0 else None, group)


def load_pool(pool: "ActivePool", path: str, group: Optional[dist.ProcessGroup] = None) -> "ActivePool":
    """Loads the state on every rank (:meth:`ActivePool.load`), then checks that the ranks agree
    (:func:`check_same_pool`); a rank that cannot load makes every rank raise."""
    on_every_rank(lambda: pool.load(path), group)
    check_same_pool(pool, group)
    return pool
