#pragma once

// The CPU side of the lane order of kcenter_greedy_math.h, shared by the kernels that sum in it.

#include <algorithm>
#include <cstdint>

#include "ops/kcenter/kcenter_greedy_math.h"

namespace torch_al::ops {

// Sum over d < D of term(d) in the lane order of kcenter_greedy_math.h: kLanes accumulators that
// each take every kLanes-th dim, so the inner loop over full chunks vectorises.
template <typename acc_t, typename Term>
acc_t lane_sum(int64_t dims, const Term& term) {
  acc_t lanes[kKCenterLanes] = {};
  int64_t begin = 0;
  for (; begin + kKCenterLanes <= dims; begin += kKCenterLanes) {
    for (int j = 0; j < kKCenterLanes; ++j) {
      lanes[j] = add_rn(lanes[j], term(begin + j));
    }
  }
  for (int j = 0; begin + j < dims; ++j) {
    lanes[j] = add_rn(lanes[j], term(begin + j));
  }
  return combine_lanes(lanes);
}

// at::parallel_for grain for rows of `dims` values: about 16k values per task.
inline int64_t grain_for(int64_t dims) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, dims));
}

}  // namespace torch_al::ops
