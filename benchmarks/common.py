"""Shared pieces of the benchmarks: timing, peak memory, the printed table and the JSON record.

Every benchmark times ours and its baseline side by side in one run and reports ratios: the
machine is shared and noisy, so absolute times are context, not results.
"""

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def time_call(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of fn() in seconds (CUDA work is synchronised)."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def reset_peak_rss() -> None:
    """Restarts the peak-RSS high-water mark (Linux: writing 5 to clear_refs resets VmHWM), so
    setup work such as loading a data set does not mask the peak of what is measured next."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def time_interleaved(calls: dict[str, Callable[[], Any]], repeats: int = 3) -> dict[str, float]:
    """Median wall time of each call, the calls taking turns so that a change in machine load
    weighs on all of them alike (the ratios are what a benchmark reports)."""
    for fn in calls.values():
        fn()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            samples[name].append(time_call(fn, repeats=1, warmup=0))
    return {name: statistics.median(times) for name, times in samples.items()}


def peak_rss_mib() -> float:
    """Peak resident memory of this process since start or the last reset_peak_rss, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_isolated(module: str, function: str, **kwargs: Any) -> dict:
    """Runs `module.function(**kwargs)` in a fresh interpreter and returns its dict result.

    Peak memory is a per-process high-water mark, so each measured variant gets its own process.
    It runs with this process's torch thread count, the one the results record names.
    """
    code = (
        "import json, sys, torch; torch.set_num_threads({threads}); sys.path.insert(0, {here!r}); "
        "import {module} as m; print(json.dumps(m.{function}(**json.loads(sys.argv[1]))))"
    ).format(
        threads=torch.get_num_threads(), here=os.path.dirname(os.path.abspath(__file__)), module=module, function=function
    )
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(kwargs)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{module}.{function}({kwargs}) failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            fields = {key.strip(): value.strip() for key, value in (line.split(":", 1) for line in f if ":" in line)}
    except OSError:
        return platform.processor()
    return f"{fields.get('model name')} (family {fields.get('cpu family')}, model {fields.get('model')})"


def machine_info() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "platform": platform.platform(),
    }


def print_table(rows: Sequence[dict], columns: Sequence[str]) -> None:
    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    widths = [max(len(c), *(len(cell(r.get(c, ""))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  ".join(cell(row.get(c, "")).ljust(w) for c, w in zip(columns, widths)))


def write_results(name: str, rows: Sequence[dict], **meta: Any) -> str:
    """Writes benchmarks/results/<name>.json (with the commit of the code that made it) and
    returns its path."""
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f"{name}.json")
    from torch_al.provenance import code_version

    record = {"benchmark": name, "machine": machine_info(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "code": code_version(), **meta}
    record["rows"] = list(rows)
    with open(path, "w") as f:
        json.dump(record, f, indent=2)
    return path
