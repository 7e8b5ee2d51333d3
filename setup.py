"""Builds the compiled part of torch_al, torch_al._C; the package metadata is in pyproject.toml.

CUDA kernels are compiled when torch is a CUDA build and a CUDA toolkit with headers, of torch's
CUDA major version, is found (build_support/cuda_toolkit.py decides; otherwise a CPU-only build
with a warning saying why). Environment switches:
  TORCH_AL_FORCE_CUDA=1   compile the CUDA kernels (fail, saying why, if that is impossible)
  TORCH_AL_FORCE_CPU=1    CPU-only build (wins over TORCH_AL_FORCE_CUDA)
  CUDA_HOME               the CUDA toolkit to use
  TORCH_CUDA_ARCH_LIST    CUDA architectures (default "8.0;9.0")
"""

import glob
import os
import sys

import torch
from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, ROOT)  # PEP 517 backends do not put the project folder on sys.path

from build_support.cuda_toolkit import decide  # noqa: E402

CUDA = decide(os.environ, torch.version.cuda)
print(CUDA.message(), file=sys.stderr if CUDA.warn else sys.stdout)
if CUDA.build_cuda:
    # torch.utils.cpp_extension reads CUDA_HOME once, when it is first imported.
    os.environ["CUDA_HOME"] = CUDA.cuda_home
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")

from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402


class BuildInOneFolder(BuildExtension):
    """Compiles into build/objects whichever way the build was started (pip install, -e, pip
    wheel, setup.py build_ext --inplace): ninja then recompiles only what changed since any of
    them, where pip's editable builds would otherwise start from an empty temporary folder."""

    def finalize_options(self) -> None:
        super().finalize_options()
        self.build_temp = os.path.join(ROOT, "build", "objects")


# at::parallel_for is a header template that runs its range serially unless the including code is
# compiled with OpenMP (torch's own build uses it; torch.utils.cpp_extension does not add it), and
# the library's kernels share their work over threads through it. Linking with it names
# libgomp.so.1, the runtime torch has already loaded, so both use one thread pool.
OPENMP_FLAGS = ["-fopenmp"] if torch.backends.openmp.is_available() and sys.platform.startswith("linux") else []


def _files(*patterns: str) -> list[str]:
    """Files under ROOT matching the patterns, `**` spanning folders (csrc/ops/<family>/cpu/...)."""
    found = {p for pattern in patterns for p in glob.glob(os.path.join(ROOT, pattern), recursive=True)}
    return sorted(os.path.relpath(p, ROOT) for p in found)


def extension():
    # Every C++ file of csrc/ (csrc/README.md: the layout), the Python module csrc/python/ included.
    sources = _files("csrc/**/*.cpp")
    # No FMA contraction: the CPU kernels share their arithmetic with the CUDA ones (the _math.h headers),
    # and a compiler that fused a * b + c where the target has FMA would change their results.
    compile_args = {"cxx": ["-O3", "-ffp-contract=off", "-DTORCH_AL_BUILD_LIBRARY", *OPENMP_FLAGS]}
    macros = []
    if CUDA.build_cuda:
        sources += _files("csrc/**/*.cu")
        compile_args["nvcc"] = ["-O3", "-DTORCH_AL_BUILD_LIBRARY"]
        macros.append(("WITH_CUDA", None))
    kind = CUDAExtension if CUDA.build_cuda else CppExtension
    return kind(
        "torch_al._C",
        sources,
        # Without the headers here, setuptools would call an extension up to date after a header change.
        depends=_files("csrc/**/*.h", "csrc/**/*.cuh"),
        include_dirs=[os.path.join(ROOT, "csrc")],
        define_macros=macros,
        extra_compile_args=compile_args,
        extra_link_args=OPENMP_FLAGS,
        py_limited_api=True,
    )


def _torch_requirement() -> str:
    """The library links against this torch's C++ ABI, which changes between minor releases."""
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return f"torch=={major}.{minor}.*"


setup(
    install_requires=[_torch_requirement(), "numpy", "tqdm"],
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildInOneFolder.with_options(use_ninja=True)},
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
