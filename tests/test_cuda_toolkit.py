"""The build's decision whether to compile the CUDA kernels (build_support/cuda_toolkit.py), on fake
toolkits laid out in a temporary folder, and on this machine's real one."""

import importlib.util
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("cuda_toolkit", ROOT / "build_support" / "cuda_toolkit.py")
cuda_toolkit = sys.modules["cuda_toolkit"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cuda_toolkit)
decide, CudaBuildError = cuda_toolkit.decide, cuda_toolkit.CudaBuildError


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def fake_toolkit(root: Path, release: str = "13.0", headers: bool = True) -> Path:
    """bin/nvcc answering --version and --dryrun as the real one does (the dry run on stderr)."""
    _script(
        root / "bin" / "nvcc",
        f'case "$1" in\n  --version) echo "Cuda compilation tools, release {release}, V{release}.88";;\n'
        f'  --dryrun) echo "#\\$ _HERE_={root}/bin" >&2; echo "#\\$ TOP={root}/bin/.." >&2;;\nesac\n',
    )
    if headers:
        (root / "include").mkdir(parents=True, exist_ok=True)
        (root / "include" / "cuda_runtime_api.h").write_text("")
    return root


def wrapper(folder: Path, toolkit: Path) -> Path:
    """A /usr/local/bin/nvcc-like script that runs the toolkit's nvcc; its folder has no headers."""
    return _script(folder / "bin" / "nvcc", f'exec {toolkit}/bin/nvcc "$@"\n')


def on_path(*nvccs: Path):
    return lambda name: str(nvccs[0]) if nvccs else None


def test_a_wrapper_script_on_the_path_resolves_to_its_real_toolkit(tmp_path):
    toolkit = fake_toolkit(tmp_path / "cuda-13.0")
    decision = decide({}, "13.0", which=on_path(wrapper(tmp_path / "local", toolkit)), fallback_roots=())
    assert decision.build_cuda and decision.cuda_home == str(toolkit)
    assert "the nvcc on the PATH" in decision.message()


def test_an_nvcc_whose_toolkit_has_headers_is_taken_as_it_is(tmp_path):
    toolkit = fake_toolkit(tmp_path / "cuda")
    decision = decide({}, "13.0", which=on_path(toolkit / "bin" / "nvcc"), fallback_roots=())
    assert (decision.build_cuda, decision.cuda_home) == (True, str(toolkit))


def test_an_explicit_cuda_home_wins_and_is_checked(tmp_path):
    good, headerless = fake_toolkit(tmp_path / "good"), fake_toolkit(tmp_path / "bare", headers=False)
    found = on_path(good / "bin" / "nvcc")
    assert decide({"CUDA_HOME": str(good)}, "13.0", which=found, fallback_roots=()).cuda_home == str(good)
    decision = decide({"CUDA_HOME": str(headerless)}, "13.0", which=found, fallback_roots=())
    assert not decision.build_cuda and decision.warn  # not silently replaced by the nvcc on the PATH
    assert f"CUDA_HOME={headerless}" in decision.reason and "include/cuda_runtime_api.h" in decision.reason


def test_no_headers_anywhere_builds_cpu_only_with_one_warning_saying_why_and_how(tmp_path):
    local = tmp_path / "local"
    _script(local / "bin" / "nvcc", "exit 1\n")  # a wrapper whose toolkit is gone
    decision = decide({}, "13.0", which=on_path(local / "bin" / "nvcc"), fallback_roots=())
    assert not decision.build_cuda and decision.warn
    message = decision.message()
    assert "WARNING: building CPU-only" in message and f"{local} (found through the nvcc on the PATH" in message
    assert "CUDA_HOME" in message and "TORCH_AL_FORCE_CPU=1" in message


def test_no_toolkit_at_all(tmp_path):
    decision = decide({}, "13.0", which=on_path(), fallback_roots=(str(tmp_path / "none"),))
    assert not decision.build_cuda and decision.warn and "no CUDA toolkit found" in decision.reason


def test_the_usual_folder_is_tried_when_no_nvcc_is_on_the_path(tmp_path):
    toolkit = fake_toolkit(tmp_path / "cuda")
    decision = decide({}, "13.0", which=on_path(), fallback_roots=(str(tmp_path / "none"), str(toolkit)))
    assert (decision.build_cuda, decision.cuda_home) == (True, str(toolkit))


def test_a_toolkit_of_another_cuda_major_version_is_refused(tmp_path):
    toolkit = fake_toolkit(tmp_path / "cuda-12.8", release="12.8")
    decision = decide({}, "13.0", which=on_path(toolkit / "bin" / "nvcc"), fallback_roots=())
    assert not decision.build_cuda and decision.warn
    assert "is CUDA 12.x but torch was built with CUDA 13.0" in decision.reason


def test_a_cpu_torch_builds_cpu_only_without_a_warning(tmp_path):
    toolkit = fake_toolkit(tmp_path / "cuda")
    decision = decide({}, None, which=on_path(toolkit / "bin" / "nvcc"), fallback_roots=())
    assert not decision.build_cuda and not decision.warn
    assert decision.message() == "torch_al: building CPU-only (torch is a CPU-only build)"


def test_force_cpu_wins_over_everything(tmp_path):
    toolkit = fake_toolkit(tmp_path / "cuda")
    decision = decide({"TORCH_AL_FORCE_CPU": "1", "TORCH_AL_FORCE_CUDA": "1"}, "13.0", which=on_path(toolkit / "bin" / "nvcc"))
    assert not decision.build_cuda and not decision.warn and decision.reason == "TORCH_AL_FORCE_CPU=1"


def test_force_cuda_turns_a_cpu_fallback_into_an_error_saying_why(tmp_path):
    toolkit = fake_toolkit(tmp_path / "cuda", headers=False)
    with pytest.raises(CudaBuildError, match=r"TORCH_AL_FORCE_CUDA=1 but .* has no include/cuda_runtime_api.h"):
        decide({"TORCH_AL_FORCE_CUDA": "1"}, "13.0", which=on_path(toolkit / "bin" / "nvcc"), fallback_roots=())
    with pytest.raises(CudaBuildError, match="torch is a CPU-only build"):
        decide({"TORCH_AL_FORCE_CUDA": "1"}, None)


@pytest.mark.skipif(shutil.which("nvcc") is None or torch.version.cuda is None, reason="needs nvcc and a CUDA build of torch")
def test_this_machines_toolkit_is_found_without_cuda_home():
    """What `pip install --no-build-isolation .` decides here, CUDA_HOME unset (the README's path)."""
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_HOME", "CUDA_PATH")}
    done = subprocess.run([sys.executable, str(ROOT / "build_support" / "cuda_toolkit.py")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip(), "include", "cuda_runtime_api.h").is_file()
