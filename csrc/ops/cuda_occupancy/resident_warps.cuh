#pragma once

// How many warps the current device keeps resident at full occupancy (2048 threads per SM): the
// grids that give each row (or row and split) one warp size themselves by it.

#include <c10/cuda/CUDAException.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace torch_al::ops {

inline int64_t resident_warps() {
  int device = 0;
  int sms = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return static_cast<int64_t>(sms) * (2048 / 32);
}

}  // namespace torch_al::ops
