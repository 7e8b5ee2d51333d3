# Shared settings of the .ci scripts (sourced, not run).
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;9.0}"
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
VENV="${TORCH_AL_VENV:-$PWD/.venv}"
PY="$VENV/bin/python"
# Compile the CUDA kernels whenever nvcc is here, GPU or not: CI proves they build.
if [[ -x "$CUDA_HOME/bin/nvcc" && "${TORCH_AL_FORCE_CPU:-0}" != 1 ]]; then
  export TORCH_AL_FORCE_CUDA=1 TORCH_AL_EXPECT_CUDA_BUILD=1
fi
