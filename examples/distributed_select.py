"""Select over torch.distributed, and check it against one process on the whole pool.

Every rank builds the same pool (Gaussian blobs, some of them labeled) and the same small model,
scores and selects its shard with the strategy named on the command line, and the ranks merge
into one selection (torch_al.distributed.distributed_select). Rank 0 prints the selected global
indices, then runs the same selection on the whole pool in one process and exits non-zero if the
two differ.

    torchrun --nproc-per-node=2 examples/distributed_select.py --strategy entropy
    torchrun --nproc-per-node=3 examples/distributed_select.py --strategy coreset --pool 5000 --budget 100

Without torchrun it runs as a group of one. On CPUs the ranks talk over gloo; with --device
cuda over NCCL, one GPU per rank.
"""

import argparse
import os
import sys
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.distributed import distributed_select, shard
from torch_al.strategies import make_strategy

CLASSES = 4


def build(pool_size: int, seed: int) -> tuple[ActivePool, torch.nn.Module]:
    """The same pool and model on every rank: seeded, float64 (scores do not depend on batching)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(CLASSES, (pool_size,), generator=generator)
    inputs = torch.randn(CLASSES, 16, generator=generator, dtype=torch.float64)[labels] * 2
    inputs += torch.randn(pool_size, 16, generator=generator, dtype=torch.float64)
    pool = ActivePool(TensorDataset(inputs, labels))
    first = torch.randperm(pool_size, generator=generator)[: max(1, pool_size // 50)]
    pool.label(first, labels[first])
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, CLASSES)).double()
    return pool, model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", default="entropy", help="any built-in strategy (its CLI name) that runs on this small MLP: entropy, badge, coreset, dal, suggestive, ...")
    parser.add_argument("--pool", type=int, default=3001, help="pool size")
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--layout", choices=["contiguous", "strided"], default="contiguous")
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL, one GPU per rank)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    cuda = args.device == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    if "RANK" not in os.environ:  # not under torchrun: a group of one
        os.environ.update(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT="29531")
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(minutes=5))
    try:
        rank, world_size = dist.get_rank(), dist.get_world_size()
        pool, model = build(args.pool, args.seed)
        model.to("cuda" if cuda else "cpu")
        strategy = make_strategy(args.strategy, seed=args.seed, progress=False)
        owned = shard(pool.unlabeled_indices, rank, world_size, args.layout)
        picked = distributed_select(strategy, model, pool, args.budget, layout=args.layout)
        print(f"rank {rank}: scored {owned.numel()} of {pool.unlabeled_indices.numel()} unlabeled items, {strategy.last_cost.forward} forward passes")
        dist.barrier()  # no rank closes its connections while another still uses them
        if rank != 0:
            return 0
        print(f"selected ({world_size} ranks): {picked.tolist()}")
        alone = make_strategy(args.strategy, seed=args.seed, progress=False).select(model, pool, args.budget)
        if not torch.equal(picked, alone):
            print(f"MISMATCH with one process on the whole pool: {alone.tolist()}", file=sys.stderr)
            return 1
        print("identical to one process on the whole pool")
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
