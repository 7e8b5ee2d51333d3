"""Helpers shared by the op tests."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_and_cuda():
    """Device parametrisation: CUDA cases are marked and skipped where no GPU is present."""
    return ("cpu", pytest.param("cuda", marks=pytest.mark.needs_cuda))


def run_in_fresh_process(code: str, env: dict[str, str] | None = None) -> str:
    """Runs Python code in a new interpreter (nothing imported yet), with ``env`` added to the
    environment, and returns its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=600,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def tolerance(dtype: torch.dtype) -> dict:
    """assert_close tolerances for a result computed in `dtype` against a float64 reference."""
    return {
        torch.float16: dict(atol=2e-3, rtol=2e-3),
        torch.bfloat16: dict(atol=1.6e-2, rtol=1.6e-2),
        torch.float32: dict(atol=1e-5, rtol=1e-5),
        torch.float64: dict(atol=1e-12, rtol=1e-12),
    }[dtype]
