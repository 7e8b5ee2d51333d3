#pragma once

// Arithmetic of coverage_greedy's kernels, shared by the CPU and CUDA backends so that the CPU
// tests exercise the decisions the GPU makes.
//
// Whether ||a - b|| <= radius is decided exactly, the same way for (a, b) and (b, a), whatever
// the blocking: a pair is inside when its exact square distance, Σ_d (a_d - b_d)^2 summed in
// float64 in increasing d, is <= radius^2. The block products only screen the pairs: from the
// centred points' square norms n_a, n_b and the product's partial n_b - 2 <a, b>,
//   screen = n_a + (n_b - 2 <a, b>)
// differs from the exact square distance by at most band = kBandFactor * (n_a + n_b) (the GEMM's
// rounding, the centring's and the float64 sum's, bounded with room to spare), so a pair whose
// screen lies within the band of radius^2 is recomputed exactly, and every other pair is decided
// by its screen. For float32 points at D = 128 the band is about 3e-5 (n_a + n_b).

#include <c10/macros/Macros.h>

#include <cmath>
#include <cstdint>

namespace torch_al::ops {

// What the screen says of a pair.
enum CoverageCode : uint8_t { kOutside = 0, kInside = 1, kUnsure = 2 };

// The relative width of the band for `dims` dimensions and the unit roundoff of the points' dtype:
// 2 (2 D + 8) u for the product, the norms and the two additions, 8 u for the centring, and the
// float64 exact sum's own rounding (D + 2) 2^-53 on a square distance of at most 2 (n_a + n_b).
inline double coverage_band_factor(int64_t dims, double unit_roundoff) {
  const double d = static_cast<double>(dims);
  constexpr double kFloat64Roundoff = 1.1102230246251565e-16;  // 2^-53
  return (4.0 * d + 24.0) * unit_roundoff + (2.0 * d + 4.0) * kFloat64Roundoff;
}

// The screen's verdict on one pair; all in float64.
C10_HOST_DEVICE inline CoverageCode screen_pair(
    double partial, double row_norm, double column_norm, double radius_sq, double band_factor) {
  const double screen = row_norm + partial;
  const double band = band_factor * (row_norm + column_norm);
  if (screen <= radius_sq - band) {
    return kInside;
  }
  return screen > radius_sq + band ? kOutside : kUnsure;
}

// The exact square distance that decides a pair: float64 differences (exact for float32 points),
// squared and added by one fused multiply-add each in increasing d on both backends, so it is
// symmetric in a and b and the same on CPU and CUDA bit for bit.
template <typename scalar_t>
C10_HOST_DEVICE inline double exact_square_distance(const scalar_t* a, const scalar_t* b, int64_t dims) {
  double sum = 0.0;
  for (int64_t d = 0; d < dims; ++d) {
    const double difference = static_cast<double>(a[d]) - static_cast<double>(b[d]);
#if defined(__CUDA_ARCH__)
    sum = __fma_rn(difference, difference, sum);
#else
    sum = std::fma(difference, difference, sum);
#endif
  }
  return sum;
}

}  // namespace torch_al::ops
