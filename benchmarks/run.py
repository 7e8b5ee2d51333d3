"""Runs the benchmarks: `python benchmarks/run.py [--quick] [NAME ...]`.

Each `bench_<op>.py` module defines `main(quick: bool) -> str` that times ours against its
baselines in one run, prints a table and returns the JSON path it wrote under benchmarks/results/.
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
    args = parser.parse_args()
    unknown = set(args.names) - set(available())
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {available()}")
    sys.path.insert(0, HERE)
    for name in args.names or available():
        print(f"== {name}")
        path = importlib.import_module(f"bench_{name}").main(quick=args.quick)
        print(f"-> {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
