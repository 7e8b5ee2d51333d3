"""Runs the benchmarks: `python benchmarks/run.py [--quick] [--device cuda] [NAME ...]`.

Each `bench_<op>.py` module defines `main(quick: bool) -> str` that times ours against its
baselines in one run, prints a table and returns the JSON path it wrote under benchmarks/results/.
A benchmark with a CUDA mode lists it in `DEVICES` and reads the device from the `DEVICE`
environment variable (so the fresh processes it measures in see it too). A benchmark sets torch's
thread count in its `main` if it needs one; the next benchmark starts from torch's default again,
and the processes `common.run_isolated` starts inherit the count.
"""

import argparse
import glob
import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def available() -> list[str]:
    return sorted(os.path.basename(p)[len("bench_") : -len(".py")] for p in glob.glob(os.path.join(HERE, "bench_*.py")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {available()})")
    parser.add_argument("--quick", action="store_true", help="small workloads, for a smoke run")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the benchmarks that have a CUDA mode run")
    args = parser.parse_args()
    unknown = set(args.names) - set(available())
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {available()}")
    if args.device == "cuda" and not torch_cuda_available():
        parser.error("--device cuda: torch sees no CUDA device here")
    os.environ["DEVICE"] = args.device
    sys.path.insert(0, HERE)
    import torch

    default_threads = torch.get_num_threads()
    for name in args.names or available():
        module = importlib.import_module(f"bench_{name}")
        if args.device not in getattr(module, "DEVICES", ("cpu",)):
            print(f"== {name}: no {args.device} mode, skipped")
            continue
        print(f"== {name}")
        torch.set_num_threads(default_threads)
        path = module.main(quick=args.quick)
        print(f"-> {os.path.relpath(path)}")


def torch_cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
