"""The project as a user receives it: one version everywhere, metadata in pyproject.toml, and no file
that points outside the repository (a clone has nothing beside it)."""

import importlib.metadata
import os
import re
import subprocess
import tomllib

import pytest
from common_utils import REPO_ROOT

import torch_al


def _project_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return [name for name in listed.stdout.splitlines() if os.path.isfile(os.path.join(REPO_ROOT, name))]


def test_no_file_refers_to_a_path_outside_the_repository():
    outside = re.compile(r"\.\./shared")
    hits = []
    for name in _project_files():
        with open(os.path.join(REPO_ROOT, name), "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
        hits += [f"{name}:{number}" for number, line in enumerate(text.splitlines(), 1) if outside.search(line)]
    assert not hits, f"paths outside the repository: {hits}"


def test_the_readme_links_the_methods_document():
    with open(os.path.join(REPO_ROOT, "README.md")) as f:
        assert "(docs/methods.md)" in f.read()
    assert os.path.isfile(os.path.join(REPO_ROOT, "docs", "methods.md"))


def test_the_version_is_the_package_metadata_and_the_cmake_project():
    assert torch_al.__version__ == importlib.metadata.version("torch_al")
    with open(os.path.join(REPO_ROOT, "CMakeLists.txt")) as f:
        cmake = f.read()
    assert "torch_al/_version.py" in cmake and "project(torch_al VERSION ${TORCH_AL_VERSION}" in cmake


def test_host_code_is_compiled_without_fma_contraction():
    """CPU and CUDA kernels share their arithmetic (csrc/ops/*/*_math.h); an FMA-contracting compiler
    would change the CPU results on targets with FMA, so both builds switch contraction off."""
    for build_file, flag in (("setup.py", '"-ffp-contract=off"'), ("CMakeLists.txt", "-ffp-contract=off>")):
        with open(os.path.join(REPO_ROOT, build_file)) as f:
            assert flag in f.read(), build_file


def test_pyproject_declares_the_extras_and_the_command():
    with open(os.path.join(REPO_ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    assert project["name"] == "torch_al" and set(project["dynamic"]) == {"version", "dependencies"}
    assert set(project["optional-dependencies"]) >= {"experiments", "lightning", "test"}
    assert project["scripts"]["torch-al"] == "torch_al.cli:main"
    requires = importlib.metadata.requires("torch_al")
    assert any(r.startswith("torch==") and r.endswith(".*") for r in requires), requires
    assert any("matplotlib" in r and 'extra == "experiments"' in r for r in requires), requires


def test_the_csrc_readme_draws_every_folder_of_csrc():
    """csrc/README.md's tree is the map of the C++ sources: a folder added to csrc/ belongs in it."""
    with open(os.path.join(REPO_ROOT, "csrc", "README.md")) as f:
        readme = f.read()
    folders = {os.path.dirname(name) for name in _project_files() if name.startswith("csrc/")} - {"csrc"}
    missing = sorted(folder for folder in folders if f"{os.path.basename(folder)}/" not in readme)
    assert not missing, f"folders of csrc/ that csrc/README.md does not show: {missing}"
