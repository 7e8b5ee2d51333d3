#pragma once

// The CUDA side of the lane order of kcenter_greedy_math.h: one warp per sum, lane j taking dims
// j, j + 32, ..., then the shuffle-down halving tree.

#include <cstdint>

#include "../kcenter_greedy_math.h"

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

}  // namespace torch_al::ops
