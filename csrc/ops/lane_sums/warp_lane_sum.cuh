#pragma once

// The CUDA side of the lane order of kcenter_greedy_math.h: one warp per sum, lane j taking dims
// j, j + 32, ..., then the shuffle-down halving tree; and the grid of the kernels that give each
// row such a warp.

#include <c10/cuda/CUDAException.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "ops/cuda_occupancy/resident_warps.cuh"
#include "ops/kcenter/kcenter_greedy_math.h"

namespace torch_al::ops {

// Sum over d < D of term(d) in the lane order of kcenter_greedy_math.h, by a full warp (the lanes
// are kKCenterLanes = 32); the result is in lane 0.
template <typename acc_t, typename Term>
__device__ acc_t warp_lane_sum(int64_t dims, int lane, const Term& term) {
  acc_t partial = 0;
  for (int64_t d = lane; d < dims; d += kKCenterLanes) {
    partial = add_rn(partial, term(d));
  }
  for (int half = kKCenterLanes / 2; half > 0; half /= 2) {
    partial = add_rn(partial, __shfl_down_sync(0xffffffffu, partial, half));
  }
  return partial;
}

// Blocks for one warp per row over n rows, capped at enough to fill every SM at full occupancy:
// more would only lengthen the callers' second stage (a merge or the draw's walk over blocks).
inline int64_t warp_per_row_grid(int64_t n, int warps_per_block) {
  const int64_t resident = resident_warps() / warps_per_block;
  return std::max<int64_t>(1, std::min<int64_t>((n + warps_per_block - 1) / warps_per_block, resident));
}

}  // namespace torch_al::ops
