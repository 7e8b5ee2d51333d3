"""Selection over torch.distributed: world size 1 against 2 on this machine, and the bytes the ranks exchange.

Each workload runs on W gloo ranks spawned here, one torch thread each (W ranks use W cores),
W in {1, 2}; every rank builds the same data from one seed and keeps its shard.
Columns:
  seconds        the slowest rank's wall time for the whole call (scoring or its local op, merges, picks)
  speedup        seconds at world size 1 / seconds here (2 = perfect on 2 cores)
  bytes_measured payload bytes this rank handed to collectives during the call (all_gather,
                 all_reduce, broadcast: tensor bytes; all_gather_object: pickled bytes), rank 0
  bytes_formula  what the design says rank 0 sends (below); the object gathers of the failure
                 protocol (a few dozen bytes each) are not in it
  same_as_one    the picks equal one process's on the whole pool
Workloads and their per-rank formulas (P picks, L dims, M query rows, k per-row list):
  score    distributed_select(entropy, a LeNet, a pool of 28x28 images, P): 16 P bytes (one top-P merge)
  pfk      distributed_select_unique(product kernel, M = P rows, k = 32, L): 12 M k bytes per query
           (float32 value + int64 index), queries = 1 + re-queries
  kcenter  distributed_kcenter_greedy(L, 1000 initial centers, P picks): P (16 + 8 L): one
           all-gather per pick of each rank's candidate (value, index) with its row in float64, so
           the winner's row arrives with the decision
  kmeanspp distributed_kmeanspp_factored(C = 10, D = L, no initial centers, P picks): P (16 + 8 (C + D))
           + (P - 1) (8 + 8 [W > 1]) (the candidate gather with its float64 factors; after the first
           pick also the running sum passed on and the total broadcast)
  facility distributed_facility_location_greedy(K = c candidates, L, P picks; Suggestive
           annotation's second step): 8 K P (one all-reduce of K float64 gains per pick)
  batchbald distributed_batchbald_select(T = t passes, C = c classes, P picks): 8 P (3 + T C) (one
           all-gather per pick of each rank's best gain, index and E H with the item's probabilities)
The issue's scale (N = 1M, P = 1250, L = 768) is too slow to run on 2 cores (the pfk workload alone
is 4 TFLOP); its volume follows from the formulas, which do not depend on N, and is printed beside.
"""

import argparse
import os
import pickle
import tempfile
import time
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from common import print_table, write_results
from torch.utils.data import TensorDataset

import torch_al
from torch_al import ActivePool
from torch_al.distributed import (
    distributed_batchbald_select,
    distributed_facility_location_greedy,
    distributed_kcenter_greedy,
    distributed_kmeanspp_factored,
    distributed_select,
    distributed_select_unique,
    shard,
)
from torch_al.models import LeNet
from torch_al.strategies import batchbald_select, make_strategy

FULL = {
    "score": {"n": 50_000, "p": 1250},
    "pfk": {"n": 50_000, "p": 1250, "l": 768},
    "kcenter": {"n": 100_000, "p": 250, "l": 768},
    "kmeanspp": {"n": 100_000, "p": 250, "c": 10, "l": 512},
    "facility": {"n": 20_000, "p": 50, "c": 500, "l": 80},
    "batchbald": {"n": 10_000, "p": 10, "c": 10, "t": 16},
}
QUICK = {
    "score": {"n": 3_000, "p": 100},
    "pfk": {"n": 3_000, "p": 100, "l": 64},
    "kcenter": {"n": 3_000, "p": 50, "l": 64},
    "kmeanspp": {"n": 3_000, "p": 50, "c": 10, "l": 64},
    "facility": {"n": 3_000, "p": 20, "c": 80, "l": 32},
    "batchbald": {"n": 1_000, "p": 5, "c": 10, "t": 8},
}
INITIAL_CENTERS = 1000
ISSUE_SCALE = {"n": 1_000_000, "p": 1250, "l": 768, "k": 32, "c": 10, "t": 128}  # c: BADGE's and BatchBALD's classes (K = 4P for facility)


class CollectiveBytes:
    """Counts the payload bytes this process hands to torch.distributed collectives."""

    def __init__(self) -> None:
        self.total = 0
        self.originals = {name: getattr(dist, name) for name in ("all_gather", "all_reduce", "broadcast", "all_gather_object", "send")}

    def __enter__(self) -> "CollectiveBytes":
        def counted(name):
            original = self.originals[name]

            def call(*args, **kwargs):
                payload = args[1] if name in ("all_gather", "all_gather_object") else args[0]
                self.total += len(pickle.dumps(payload)) if name == "all_gather_object" else payload.numel() * payload.element_size()
                return original(*args, **kwargs)

            return call

        for name in self.originals:
            setattr(dist, name, counted(name))
        return self

    def __exit__(self, *exc) -> None:
        for name, original in self.originals.items():
            setattr(dist, name, original)


def score_problem(n: int, p: int):
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(n, 1, 28, 28, generator=generator)
    pool = ActivePool(TensorDataset(images, torch.zeros(n, dtype=torch.int64)))
    torch.manual_seed(0)
    return LeNet(), pool


def pfk_problem(n: int, p: int, width: int):
    generator = torch.Generator().manual_seed(1)
    query = [torch.randn(p, width, generator=generator)], [torch.randn(p, width, generator=generator)]
    pool = [torch.randn(n, width, generator=generator)], [torch.randn(n, width, generator=generator)]
    return query, pool


def kcenter_problem(n: int, width: int):
    generator = torch.Generator().manual_seed(2)
    return torch.randn(n, width, generator=generator), torch.randn(INITIAL_CENTERS, width, generator=generator)


def kmeanspp_problem(n: int, c: int, width: int):
    generator = torch.Generator().manual_seed(3)
    return torch.randn(n, c, generator=generator).softmax(1), torch.randn(n, width, generator=generator).relu()


def facility_problem(n: int, k: int, width: int):
    """Unit ReLU descriptors (as Suggestive annotation's), the candidates the first k points."""
    generator = torch.Generator().manual_seed(5)
    universe = torch.nn.functional.normalize(torch.randn(n, width, generator=generator).relu(), dim=1)
    return universe[:k].clone(), universe


def batchbald_problem(n: int, c: int, t: int):
    generator = torch.Generator().manual_seed(6)
    return torch.randn(n, t, c, generator=generator, dtype=torch.float64).mul(2).softmax(-1)


def run_workload(name: str, size: dict, rank: int, world_size: int) -> tuple[list[int], dict]:
    """This rank's part of one workload: (picks, {seconds, bytes})."""
    if name == "score":
        model, pool = score_problem(size["n"], size["p"])
        call = lambda: distributed_select(make_strategy("entropy", progress=False), model, pool, size["p"])  # noqa: E731
    elif name == "pfk":
        (query_z, query_g), (pool_z, pool_g) = pfk_problem(size["n"], size["p"], size["l"])
        owned = shard(torch.arange(size["n"]), rank, world_size)
        local_z, local_g = [pool_z[0][owned]], [pool_g[0][owned]]
        call = lambda: distributed_select_unique(query_z, local_z, size["p"], query_g, local_g, k=32, global_indices=owned)  # noqa: E731
    elif name == "kcenter":
        points, centers = kcenter_problem(size["n"], size["l"])
        owned = shard(torch.arange(size["n"]), rank, world_size)
        local = points[owned]
        call = lambda: distributed_kcenter_greedy(local, size["p"], centers, global_indices=owned)[0]  # noqa: E731
    elif name == "facility":
        candidates, universe = facility_problem(size["n"], size["c"], size["l"])
        local = universe[shard(torch.arange(size["n"]), rank, world_size)]
        call = lambda: distributed_facility_location_greedy(candidates, local, size["p"])[0]  # noqa: E731
    elif name == "batchbald":
        owned = shard(torch.arange(size["n"]), rank, world_size)
        local = batchbald_problem(size["n"], size["c"], size["t"])[owned]
        generator = torch.Generator().manual_seed(7)
        call = lambda: distributed_batchbald_select(local, size["p"], generator=generator, global_indices=owned)[0]  # noqa: E731
    else:
        a, b = kmeanspp_problem(size["n"], size["c"], size["l"])
        owned = shard(torch.arange(size["n"]), rank, world_size)
        local_a, local_b = a[owned], b[owned]
        generator = torch.Generator().manual_seed(4)
        call = lambda: distributed_kmeanspp_factored(local_a, local_b, size["p"], global_indices=owned, generator=generator)  # noqa: E731
    dist.barrier()
    with CollectiveBytes() as counter:
        start = time.perf_counter()
        picks = call()
        elapsed = time.perf_counter() - start
    slowest = torch.tensor([elapsed])
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    return picks.tolist(), {"seconds": float(slowest), "bytes": counter.total}


def single_process_picks(name: str, size: dict) -> list[int]:
    if name == "score":
        model, pool = score_problem(size["n"], size["p"])
        return make_strategy("entropy", progress=False).select(model, pool, size["p"]).tolist()
    if name == "pfk":
        (query_z, query_g), (pool_z, pool_g) = pfk_problem(size["n"], size["p"], size["l"])
        return torch_al.select_unique(query_z, pool_z, size["p"], query_g, pool_g, k=32).tolist()
    if name == "kcenter":
        points, centers = kcenter_problem(size["n"], size["l"])
        x = torch.cat([centers, points])
        return (torch_al.kcenter_greedy(x, size["p"], torch.arange(INITIAL_CENTERS))[0] - INITIAL_CENTERS).tolist()
    if name == "facility":
        return torch_al.facility_location_greedy(*facility_problem(size["n"], size["c"], size["l"]), size["p"])[0].tolist()
    if name == "batchbald":
        probabilities = batchbald_problem(size["n"], size["c"], size["t"])
        return batchbald_select(probabilities, size["p"], generator=torch.Generator().manual_seed(7))[0].tolist()
    a, b = kmeanspp_problem(size["n"], size["c"], size["l"])
    return torch_al.kmeanspp_factored(a, b, size["p"], generator=torch.Generator().manual_seed(4))[0].tolist()


def rank_main(rank: int, world_size: int, init_file: str, sizes: dict, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size, timeout=timedelta(minutes=30))
    try:
        results = {name: run_workload(name, size, rank, world_size) for name, size in sizes.items()}
        if rank == 0:
            torch.save(results, out)
    finally:
        dist.destroy_process_group()


def formula_bytes(name: str, size: dict, world_size: int) -> int:
    if name == "score":
        return 16 * size["p"]
    if name == "pfk":
        return 12 * size["p"] * ISSUE_SCALE["k"]
    if name == "kcenter":
        return size["p"] * (16 + 8 * size["l"])
    if name == "facility":
        return 8 * size["c"] * size["p"]
    if name == "batchbald":
        return 8 * size["p"] * (3 + size["t"] * size["c"])
    return size["p"] * (16 + 8 * (size["c"] + size["l"])) + (size["p"] - 1) * (8 + 8 * (world_size > 1))


def main(quick: bool = False) -> str:
    sizes = QUICK if quick else FULL
    torch.set_num_threads(1)
    expected = {name: single_process_picks(name, size) for name, size in sizes.items()}
    rows, baseline = [], {}
    with tempfile.TemporaryDirectory() as folder:
        for world_size in (1, 2):
            out = os.path.join(folder, f"world{world_size}.pt")
            init_file = os.path.join(folder, f"init{world_size}")
            mp.spawn(rank_main, args=(world_size, init_file, sizes, out), nprocs=world_size, join=True)
            for name, (picks, measured) in torch.load(out).items():
                baseline.setdefault(name, measured["seconds"])
                rows.append(
                    {
                        "workload": name,
                        **{key: size for key, size in sizes[name].items()},
                        "world": world_size,
                        "seconds": measured["seconds"],
                        "speedup": baseline[name] / measured["seconds"],
                        "bytes_measured": measured["bytes"],
                        "bytes_formula": formula_bytes(name, sizes[name], world_size),
                        "same_as_one": picks == expected[name],
                    }
                )
    print_table(rows, ["workload", "n", "p", "c", "l", "t", "world", "seconds", "speedup", "bytes_measured", "bytes_formula", "same_as_one"])
    issue_scale = {name: formula_bytes(name, {**ISSUE_SCALE, "c": 4 * ISSUE_SCALE["p"]} if name == "facility" else ISSUE_SCALE, 2) for name in sizes}
    print(f"per-rank volume at N = 1M, P = 1250, L = 768 (formulas): {issue_scale}")
    return write_results("distributed", rows, threads_per_rank=1, initial_centers=INITIAL_CENTERS, issue_scale_bytes_per_rank=issue_scale)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(main(parser.parse_args().quick))
