# Shared settings of the .ci scripts (sourced, not run). CUDA_HOME is left alone: the build finds
# the toolkit as it would for a user (build_support/cuda_toolkit.py).
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;9.0}"
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
VENV="${TORCH_AL_VENV:-$PWD/.venv}"
PY="$VENV/bin/python"
# Compile the CUDA kernels whenever nvcc is here, GPU or not: CI proves they build.
if { command -v nvcc >/dev/null || [[ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]]; } && [[ "${TORCH_AL_FORCE_CPU:-0}" != 1 ]]; then
  export TORCH_AL_FORCE_CUDA=1 TORCH_AL_EXPECT_CUDA_BUILD=1
fi
# ccache (used by the extension's and the CMake build) then hits across clones of the repository.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
