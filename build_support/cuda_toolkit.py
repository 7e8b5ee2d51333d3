"""Decides, before anything is compiled, whether torch_al's CUDA kernels can be built, and with
which CUDA toolkit.

torch.utils.cpp_extension guesses CUDA_HOME as the folder above the first ``nvcc`` on the PATH.
Where that ``nvcc`` is a wrapper script (``/usr/local/bin/nvcc`` running the real one), the guess
has no CUDA headers and the build dies in the compiler (``cuda_runtime_api.h: No such file``).
So the build asks ``nvcc`` where its toolkit really is, checks that it has headers and the CUDA
major version torch was built with, and otherwise builds CPU-only and says why — never a compiler
error. Only the standard library is used: setup.py imports this before torch's build helpers.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

HEADER = os.path.join("include", "cuda_runtime_api.h")
FALLBACK_ROOTS = ("/usr/local/cuda",)


class CudaBuildError(RuntimeError):
    """TORCH_AL_FORCE_CUDA=1 was set but the CUDA kernels cannot be built."""


@dataclass(frozen=True)
class CudaDecision:
    """``build_cuda``: compile the CUDA kernels with the toolkit at ``cuda_home``. ``reason`` says
    why (shown to the user); ``warn`` is set when a CPU-only build is probably not what they want."""

    build_cuda: bool
    cuda_home: str | None
    reason: str
    warn: bool = False

    def message(self) -> str:
        if self.build_cuda:
            return f"torch_al: building the CUDA kernels with the toolkit in {self.cuda_home} ({self.reason})"
        if not self.warn:
            return f"torch_al: building CPU-only ({self.reason})"
        return (
            f"torch_al: WARNING: building CPU-only, without the CUDA kernels: {self.reason}. To build them, "
            "point CUDA_HOME at a CUDA toolkit that has bin/nvcc and include/cuda_runtime_api.h for the "
            "CUDA major version of your torch (e.g. CUDA_HOME=/usr/local/cuda-13.0), then reinstall; "
            "set TORCH_AL_FORCE_CPU=1 to build CPU-only without this warning."
        )


Runner = Callable[[Sequence[str]], str]


def run_nvcc(command: Sequence[str]) -> str:
    """stdout + stderr of an nvcc call, or '' when it cannot run."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout + done.stderr


def has_headers(root: str) -> bool:
    return os.path.isfile(os.path.join(root, HEADER))


def nvcc_of(root: str) -> str | None:
    path = os.path.join(root, "bin", "nvcc")
    return path if os.access(path, os.X_OK) else None


def toolkit_root_of(nvcc: str, run: Runner) -> str:
    """The toolkit an ``nvcc`` belongs to: the folder above its own, unless that has no headers
    (a wrapper script or a symlink farm); then the ``TOP`` that nvcc itself reports in a dry run."""
    guess = os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))
    if has_headers(guess):
        return guess
    dry_run = run([nvcc, "--dryrun", "-x", "cu", "-E", os.devnull])
    top = re.search(r"^#\$ TOP=(.+)$", dry_run, re.MULTILINE)
    return os.path.normpath(top.group(1).strip()) if top else guess


def nvcc_major(nvcc: str, run: Runner) -> int | None:
    version = re.search(r"release (\d+)\.(\d+)", run([nvcc, "--version"]))
    return int(version.group(1)) if version else None


def find_toolkit(env: Mapping[str, str], which: Callable[[str], str | None], run: Runner, fallback_roots: Sequence[str]) -> tuple[str | None, str]:
    """(root, where it came from). An explicit CUDA_HOME / CUDA_PATH is the user's choice and is
    never silently replaced; otherwise the nvcc on the PATH, then the usual install folders."""
    for variable in ("CUDA_HOME", "CUDA_PATH"):
        if env.get(variable):
            return env[variable], f"{variable}={env[variable]}"
    nvcc = which("nvcc")
    if nvcc is not None:
        return toolkit_root_of(nvcc, run), f"the nvcc on the PATH, {nvcc}"
    for root in fallback_roots:
        if nvcc_of(root) is not None:
            return root, f"{root}"
    return None, "no CUDA_HOME, no nvcc on the PATH"


def check_toolkit(root: str | None, origin: str, torch_cuda: str, run: Runner) -> str | None:
    """Why the toolkit at ``root`` cannot build kernels for a torch built with CUDA ``torch_cuda``,
    or None when it can."""
    if root is None:
        return f"no CUDA toolkit found ({origin})"
    nvcc = nvcc_of(root)
    if nvcc is None:
        return f"the CUDA toolkit {root} (found through {origin}) has no executable bin/nvcc"
    if not has_headers(root):
        return f"the CUDA toolkit {root} (found through {origin}) has no {HEADER}"
    major, wanted = nvcc_major(nvcc, run), int(torch_cuda.split(".")[0])
    if major != wanted:
        found = "an unreadable version" if major is None else f"CUDA {major}.x"
        return f"the CUDA toolkit {root} (found through {origin}) is {found} but torch was built with CUDA {torch_cuda}"
    return None


def decide(
    env: Mapping[str, str],
    torch_cuda: str | None,
    which: Callable[[str], str | None] = shutil.which,
    run: Runner = run_nvcc,
    fallback_roots: Sequence[str] = FALLBACK_ROOTS,
) -> CudaDecision:
    """Whether to build the CUDA kernels. ``env`` holds the build switches (TORCH_AL_FORCE_CPU,
    TORCH_AL_FORCE_CUDA, CUDA_HOME, CUDA_PATH); ``torch_cuda`` is ``torch.version.cuda``.

    Raises:
        CudaBuildError: TORCH_AL_FORCE_CUDA=1, and the kernels cannot be built (the reason why).
    """
    forced = env.get("TORCH_AL_FORCE_CUDA") == "1"
    if env.get("TORCH_AL_FORCE_CPU") == "1":
        return CudaDecision(False, None, "TORCH_AL_FORCE_CPU=1")
    if torch_cuda is None:
        problem, decision = "torch is a CPU-only build", CudaDecision(False, None, "torch is a CPU-only build")
    else:
        root, origin = find_toolkit(env, which, run, fallback_roots)
        problem = check_toolkit(root, origin, torch_cuda, run)
        if problem is None:
            return CudaDecision(True, root, f"found through {origin}; CUDA {torch_cuda.split('.')[0]}.x, as torch")
        decision = CudaDecision(False, None, problem, warn=True)
    if forced:
        raise CudaBuildError(f"TORCH_AL_FORCE_CUDA=1 but the CUDA kernels cannot be built: {problem}")
    return decision


if __name__ == "__main__":
    # For the CMake build in .ci/test: print the toolkit the Python build would use (nothing if none).
    import sys

    import torch

    chosen = decide(os.environ, torch.version.cuda)
    print(chosen.cuda_home or "")
    sys.exit(0 if chosen.build_cuda else 1)
