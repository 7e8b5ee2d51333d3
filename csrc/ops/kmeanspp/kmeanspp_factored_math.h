#pragma once

// Arithmetic of the kmeanspp_factored kernels, shared by the CPU and CUDA backends. Dot products
// are summed in float64 in the lane order of kcenter_greedy_math.h (lane j adds dims j, j + 32,
// ..., then the halving tree), so both backends compute the same distances bit for bit, and a
// row's squared norm is the same sum as its dot product with itself: a duplicate of a center is at
// distance exactly 0.

#include <c10/macros/Macros.h>

#include <cstdint>

#include "ops/kcenter/kcenter_greedy_math.h"

namespace torch_al::ops {

constexpr int kKMeansPPLanes = kKCenterLanes;

template <typename scalar_t>
C10_HOST_DEVICE inline double product_term(scalar_t x, scalar_t y) {
  return mul_rn(static_cast<double>(x), static_cast<double>(y));
}

// |a_i (x) b_i - a_c (x) b_c|^2 from the factors' dot products and the squared norms
// |e|^2 = |a|^2 |b|^2. Cancellation can leave a tiny negative value: clamped at 0.
C10_HOST_DEVICE inline double factored_squared_distance(double norm_i, double norm_c, double a_dot, double b_dot) {
  const double cross = mul_rn(2.0, mul_rn(a_dot, b_dot));
  const double squared = sub_rn(add_rn(norm_i, norm_c), cross);
  return squared > 0 ? squared : 0.0;
}

// What a row adds to the cumulative sum D^2 sampling walks: its squared distance to the nearest
// center, or 0 once it is a center (initial or picked).
C10_HOST_DEVICE inline double sampling_weight(bool selectable, double min_sq) {
  return selectable ? min_sq : 0.0;
}

// The cumulative sum the pick must exceed for the draw u in [0, 1).
C10_HOST_DEVICE inline double draw_threshold(double u, double total) {
  return mul_rn(u, total);
}

}  // namespace torch_al::ops
