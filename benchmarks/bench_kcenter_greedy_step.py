"""kcenter_greedy_step: what a loop of steps costs against kcenter_greedy, in one run.

A distributed k-center (torch_al.distributed.distributed_kcenter_greedy) picks by one
kcenter_greedy_step call per pick, with the pick's row passed in; kcenter_greedy runs the same
passes inside one call. Columns (seconds for k picks after an initial set of 1% of N):
  op        torch_al.kcenter_greedy(x, k, initial)
  steps     a Python loop of torch_al.kcenter_greedy_step calls giving the same picks (checked)
  naive     the vectorised torch loop: min_d = torch.minimum(min_d, ((x - c) ** 2).sum(1)); u = argmax
Ratios: steps/op (the price of one call per pick, 1 = none) and naive/steps (>1: the step is faster).
One torch thread.
"""

import argparse

import torch
from common import print_table, time_call, write_results

import torch_al

GRID = [(50_000, 64, 125), (50_000, 512, 125), (200_000, 64, 125)]
QUICK = [(5_000, 32, 20)]


def loop_of_steps(x: torch.Tensor, k: int, initial: torch.Tensor) -> list[int]:
    min_sq = torch.full((x.shape[0],), float("inf"))
    selectable = torch.ones(x.shape[0], dtype=torch.bool)
    selectable[initial] = False
    _, index = torch_al.kcenter_greedy_step(x, x[initial], min_sq, selectable)
    picks = []
    for _ in range(k):
        pick = int(index)
        picks.append(pick)
        selectable[pick] = False
        _, index = torch_al.kcenter_greedy_step(x, x[pick : pick + 1], min_sq, selectable)
    return picks


def naive_torch(x: torch.Tensor, k: int, initial: torch.Tensor) -> list[int]:
    min_d = torch.cat([torch.cdist(x[i : i + 8192], x[initial]).amin(1) ** 2 for i in range(0, len(x), 8192)])
    min_d[initial] = -1
    picks = []
    for _ in range(k):
        u = int(torch.argmax(min_d))
        picks.append(u)
        min_d = torch.minimum(min_d, ((x - x[u]) ** 2).sum(1))
        min_d[u] = -1
    return picks


def run_workload(n: int, d: int, k: int) -> dict:
    generator = torch.Generator().manual_seed(n + d)
    x = torch.randn(n, d, generator=generator)
    initial = torch.randperm(n, generator=generator)[: n // 100].sort().values
    picks = torch_al.kcenter_greedy(x, k, initial)[0].tolist()
    assert loop_of_steps(x, k, initial) == picks, f"steps and op disagree at N={n} D={d}"
    op = time_call(lambda: torch_al.kcenter_greedy(x, k, initial), repeats=3, warmup=0)
    steps = time_call(lambda: loop_of_steps(x, k, initial), repeats=3, warmup=0)
    naive = time_call(lambda: naive_torch(x, k, initial), repeats=1, warmup=0)
    return {"N": n, "D": d, "k": k, "initial": len(initial), "op_s": op, "steps_s": steps, "naive_s": naive,
            "steps/op": steps / op, "naive/steps": naive / steps}


def main(quick: bool) -> str:
    torch.set_num_threads(1)
    rows = [run_workload(*w) for w in (QUICK if quick else GRID)]
    print_table(rows, ["N", "D", "k", "initial", "op_s", "steps_s", "naive_s", "steps/op", "naive/steps"])
    return write_results("kcenter_greedy_step", rows, quick=quick, threads=1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(main(parser.parse_args().quick))
