"""Builds torch_al._C with torch.utils.cpp_extension.

CUDA kernels are compiled when torch is a CUDA build and nvcc is found. Environment switches:
  TORCH_AL_FORCE_CUDA=1   compile the CUDA kernels (fail if that is impossible)
  TORCH_AL_FORCE_CPU=1    CPU-only build (wins over TORCH_AL_FORCE_CUDA)
  TORCH_CUDA_ARCH_LIST    CUDA architectures (default "8.0;9.0")
"""

import glob
import os

import torch
from setuptools import find_packages, setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

ROOT = os.path.dirname(os.path.abspath(__file__))


def _flag(name: str) -> bool:
    return os.environ.get(name, "0") == "1"


def _build_cuda() -> bool:
    if _flag("TORCH_AL_FORCE_CPU"):
        return False
    available = torch.version.cuda is not None and CUDA_HOME is not None
    if _flag("TORCH_AL_FORCE_CUDA") and not available:
        raise RuntimeError(
            "TORCH_AL_FORCE_CUDA=1 but CUDA cannot be built: "
            f"torch.version.cuda={torch.version.cuda}, CUDA_HOME={CUDA_HOME}"
        )
    return available


def _sources(pattern: str) -> list[str]:
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))


def extension():
    with_cuda = _build_cuda()
    sources = _sources("csrc/*.cpp") + _sources("csrc/cpu/*.cpp") + _sources("csrc/autograd/*.cpp")
    sources += _sources("csrc/python/*.cpp")
    compile_args = {"cxx": ["-O3", "-DTORCH_AL_BUILD_LIBRARY"]}
    macros = []
    if with_cuda:
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
        sources += _sources("csrc/cuda/*.cu")
        compile_args["nvcc"] = ["-O3", "-DTORCH_AL_BUILD_LIBRARY"]
        macros.append(("WITH_CUDA", None))
    print(f"torch_al: building with CUDA={with_cuda} (torch {torch.__version__}, CUDA_HOME={CUDA_HOME})")
    kind = CUDAExtension if with_cuda else CppExtension
    return kind(
        "torch_al._C",
        sources,
        include_dirs=[os.path.join(ROOT, "csrc")],
        define_macros=macros,
        extra_compile_args=compile_args,
        py_limited_api=True,
    )


setup(
    name="torch_al",
    version="0.1.0",
    description="Deep active learning for PyTorch: fused ops for Fisher-kernel and explanation-based selection",
    packages=find_packages(include=["torch_al", "torch_al.*"]),
    package_data={"torch_al": ["py.typed"]},
    python_requires=">=3.11",
    install_requires=["torch>=2.9", "numpy", "tqdm"],
    entry_points={"console_scripts": ["torch-al = torch_al.cli:main"]},
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
