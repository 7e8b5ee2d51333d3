"""Which code and which configuration made a result: the package version, the git commit of the
checkout it runs from (and whether its sources differ from that commit), and a hash of the
configuration, so that a result can be traced and results of different code are never averaged
by accident."""

import hashlib
import json
import os
import platform
import subprocess
import sys

import torch

from torch_al._version import __version__

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_SOURCES = ("torch_al", "csrc", "setup.py", "CMakeLists.txt")  # the code that computes a result and how it is built


def _git(*args: str, folder: str = _PACKAGE) -> str | None:
    try:
        done = subprocess.run(["git", "-C", folder, *args], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def code_version() -> dict[str, str | bool | None]:
    """``{"version", "commit", "dirty", "sources"}``: the package version; the commit of the git
    checkout the package is imported from, or ``"unknown"`` (an installed wheel, no git); whether
    the checkout's sources (package, C++ and CUDA, build files) differ from that commit (None when
    the commit is unknown); and a hash of those sources' git trees at the commit, equal for two
    commits whose code is the same (a later commit that changes only tests, docs or results)."""
    top = _git("rev-parse", "--show-toplevel")
    commit = _git("rev-parse", "HEAD") if top else None
    if not commit:
        return {"version": __version__, "commit": "unknown", "dirty": None, "sources": None}
    changed = _git("status", "--porcelain", "--untracked-files=no", "--", *_SOURCES, folder=top)
    trees = _git("rev-parse", *[f"HEAD:{path}" for path in _SOURCES], folder=top)
    return {
        "version": __version__, "commit": commit, "dirty": bool(changed) if changed is not None else None,
        "sources": None if trees is None else hashlib.sha256(trees.encode()).hexdigest()[:16],
    }  # fmt: skip


def code_identity(code: dict) -> str:
    """What two results must share to come from the same code: the sources' hash of a clean
    checkout; otherwise the commit, marked when the checkout had changes."""
    if code.get("dirty") is False and code.get("sources"):
        return code["sources"]
    return f"{code.get('commit', 'unknown')}{'+changes' if code.get('dirty') else ''}"


def environment() -> dict[str, str | int]:
    """The software and thread count a result was computed with (float results depend on both)."""
    return {"python": platform.python_version(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "platform": sys.platform}


def config_hash(config: dict) -> str:
    """A short, stable hash of a JSON-serialisable configuration (key order does not matter)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
