#pragma once

// The arithmetic class_line_order's CPU and CUDA kernels share.

#include <c10/macros/Macros.h>

#include <cstdint>
#include <cstring>

namespace torch_al::ops {

// Class k's key of one row whose largest probability is top: 1 + p_k for a class the row
// predicts, else the margin p_k − top (in [−1, 0)); higher is more k-like.
C10_HOST_DEVICE inline double one_vs_rest_key(double p_k, double top) {
  return p_k == top ? 1.0 + p_k : p_k - top;
}

// An unsigned integer that sorts ascending as key sorts descending, equal for equal keys (−0.0
// and +0.0 alike): the float's bits with the sign bit set (positive floats) or all bits flipped
// (negative ones) sort ascending as the floats do; flipping all bits reverses that.
C10_HOST_DEVICE inline uint64_t descending_radix_key(double key) {
  const double canonical = key + 0.0;  // −0.0 + 0.0 is +0.0
  uint64_t bits;
  memcpy(&bits, &canonical, sizeof bits);
  const uint64_t ascending = (bits >> 63) != 0 ? ~bits : bits | (uint64_t{1} << 63);
  return ~ascending;
}

}  // namespace torch_al::ops
