"""class_line_order: one class's line of a pool (GALAXY, DIRECT) against torch, in one run.

Per class, from probabilities[N, C] (float64, C = 10) to (order, position). Columns (seconds for all
C classes, one torch thread):
  op            torch_al.class_line_order(p, k) for every k (keys and a radix sort in C++)
  torch_sort    the keys in torch float64, then a stable descending torch.sort and the inverse scatter
  integer_sort  the same keys' bits as order-preserving int64, then torch's stable ascending sort
                (which ATen runs as a radix sort on integers) and the inverse scatter
Every variant's order is checked equal to the op's. Ratios: torch_sort/op and integer_sort/op
(> 1: the op is faster). On CUDA (DEVICE=cuda) the same, synchronised.
"""

import argparse
import os

import torch
from common import print_table, time_interleaved, write_results

import torch_al

DEVICES = ("cpu", "cuda")
CLASSES = 10
GRID = [100_000, 1_000_000]
QUICK = [20_000]


def one_vs_rest_keys(p: torch.Tensor) -> torch.Tensor:
    top = p.max(1, keepdim=True).values
    return torch.where(p == top, 1 + p, p - top)


def with_position(order: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return order, torch.empty_like(order).scatter_(0, order, torch.arange(order.numel(), device=order.device))


def torch_sort_lines(p: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    keys = one_vs_rest_keys(p)
    return [with_position(torch.sort(keys[:, k], descending=True, stable=True).indices) for k in range(p.shape[1])]


def integer_sort_lines(p: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    bits = (one_vs_rest_keys(p) + 0.0).view(torch.int64)  # + 0.0: −0.0 as +0.0
    ordered = torch.where(bits < 0, bits ^ torch.iinfo(torch.int64).max, bits)  # sorts as the floats do
    descending = torch.bitwise_not(ordered)
    return [with_position(torch.sort(descending[:, k].contiguous(), stable=True).indices) for k in range(p.shape[1])]


def op_lines(p: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [torch_al.class_line_order(p, k) for k in range(p.shape[1])]


def run_workload(n: int, device: str) -> dict:
    generator = torch.Generator().manual_seed(n)
    p = (torch.randn(n, CLASSES, generator=generator, dtype=torch.float64) * 3).softmax(1).to(device)
    expected = op_lines(p)
    for variant in (torch_sort_lines, integer_sort_lines):
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(variant(p), expected)), variant.__name__
    times = time_interleaved({"op": lambda: op_lines(p), "torch_sort": lambda: torch_sort_lines(p), "integer_sort": lambda: integer_sort_lines(p)})
    return {
        "N": n, "C": CLASSES, "device": device, "op_s": round(times["op"], 4), "torch_sort_s": round(times["torch_sort"], 4),
        "integer_sort_s": round(times["integer_sort"], 4), "torch_sort/op": round(times["torch_sort"] / times["op"], 2),
        "integer_sort/op": round(times["integer_sort"] / times["op"], 2),
    }  # fmt: skip


def main(quick: bool) -> str:
    torch.set_num_threads(1)
    device = os.environ.get("DEVICE", "cpu")
    rows = [run_workload(n, device) for n in (QUICK if quick else GRID)]
    print_table(rows, ["N", "C", "device", "op_s", "torch_sort_s", "integer_sort_s", "torch_sort/op", "integer_sort/op"])
    return write_results("class_line_order" + ("_cuda" if device == "cuda" else ""), rows, quick=quick, threads=1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(main(parser.parse_args().quick))
