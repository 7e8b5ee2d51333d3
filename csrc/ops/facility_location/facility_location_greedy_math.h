#pragma once

// Arithmetic of the facility_location_greedy kernels, shared by the CPU and CUDA backends so that
// the CPU tests exercise the math the GPU runs and both give bit-identical gains and picks.
//
// The universe is stored in tiles of kFacilityTile points (zero rows padding the last tile), each
// tile as panels of 64 bytes of consecutive points, transposed: [N / W, D, W] with
// W = facility_panel_width<scalar_t>, so a dot product walks a panel contiguously. For a candidate
// a and a tile:
//   s(a, u)  = sum over d in increasing order of a[d] * u[d], one FMA per d  (similarity)
//   term(u)  = w[u] * max(0, s(a, u) - cover[u]), rounded once    (gain on u; cover[u], w[u] >= 0)
//   partial  = kFacilityLanes lanes, lane l adding term(l), term(l + 32), ... in order, then the
//              halving tree of kcenter_greedy_math.h over the lanes  (one CUDA warp)
// and the gain of a is the sum of its tiles' partials in tile order. Every value of s(a, u)
// therefore has the same bits however candidates are batched, and the incremental updates
// (coverage_drop) see exactly the terms a fresh gain adds: only the float64 additions of the
// drops and the fresh sum's own rounding separate them, both bounded in FreshGainBound.
// Padding rows have s = 0, cover 0 and weight 0, so they add +0 to a lane: no change. Without
// weights every w[u] is 1 and the product is exact.

#include <c10/macros/Macros.h>

#include <cmath>
#include <cstdint>

#include "ops/kcenter/kcenter_greedy_math.h"

namespace torch_al::ops {

constexpr int kFacilityLanes = kKCenterLanes;
constexpr int64_t kFacilityTile = 256;
static_assert(kFacilityTile % kFacilityLanes == 0, "a tile splits evenly over the lanes");

template <typename scalar_t>
constexpr int64_t facility_panel_width = 64 / sizeof(scalar_t);
static_assert(kFacilityTile % facility_panel_width<float> == 0, "a tile splits evenly into panels");

// Where dim d of padded universe point p lies in the panel layout.
template <typename scalar_t>
C10_HOST_DEVICE inline int64_t universe_offset(int64_t point, int64_t d, int64_t dims) {
  constexpr int64_t width = facility_panel_width<scalar_t>;
  return ((point / width) * dims + d) * width + point % width;
}

// One step of the similarity's dot product: a * u + acc, rounded once (a fused multiply-add on
// both backends: an FMA instruction where the CPU has one, glibc's exact fma otherwise).
C10_HOST_DEVICE inline float dot_step(float acc, float a, float u) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, u, acc);
#else
  return std::fma(a, u, acc);
#endif
}
C10_HOST_DEVICE inline double dot_step(double acc, double a, double u) {
#if defined(__CUDA_ARCH__)
  return __fma_rn(a, u, acc);
#else
  return std::fma(a, u, acc);
#endif
}

// The similarity of the "gaussian" kernel (MaxHerding's generalised coverage) from the dot product
// and the two square norms: exp(-gamma * max(0, |a|^2 + |u|^2 - 2 <a, u>)), in float64 then rounded
// to the points' dtype. A padding point carries an infinite norm, so its similarity is 0 as under
// "dot". The exponential is the backend's (glibc's or CUDA's), so CPU and CUDA may differ in its
// last bit; each backend computes every s(a, u) the same way every time, which is what the
// incremental gains rely on.
template <typename scalar_t>
C10_HOST_DEVICE inline scalar_t gaussian_similarity(scalar_t dot, scalar_t a_norm, scalar_t u_norm, double gamma) {
  const double square_distance =
      static_cast<double>(a_norm) + static_cast<double>(u_norm) - 2.0 * static_cast<double>(dot);
  return static_cast<scalar_t>(exp(-gamma * (square_distance > 0.0 ? square_distance : 0.0)));
}

// How a kernel turns dot products into similarities: "dot" leaves them, "gaussian" applies
// gaussian_similarity with each row's square norm (null pointers under "dot").
template <typename scalar_t>
struct FacilityKernel {
  const scalar_t* candidate_norms = nullptr;  // [K + L]
  const scalar_t* point_norms = nullptr;      // [padded N], +inf on the padding
  double gamma = 0;

  C10_HOST_DEVICE bool gaussian() const { return candidate_norms != nullptr; }
  C10_HOST_DEVICE scalar_t operator()(scalar_t dot, int64_t candidate, scalar_t point_norm) const {
    return gaussian() ? gaussian_similarity(dot, candidate_norms[candidate], point_norm, gamma) : dot;
  }
};

// What a point u adds to a candidate's gain: how far the candidate's similarity rises above the
// point's current cover (its best similarity to the picks so far, floored at 0).
template <typename acc_t>
C10_HOST_DEVICE inline acc_t coverage_gain(acc_t similarity, acc_t cover) {
  return similarity > cover ? sub_rn(similarity, cover) : acc_t(0);
}

// The point's weighted term: its weight times coverage_gain, rounded once (never fused with the sum
// it joins, so both backends add the same value).
template <typename acc_t>
C10_HOST_DEVICE inline acc_t weighted_gain(acc_t similarity, acc_t cover, acc_t weight) {
  return mul_rn(weight, coverage_gain(similarity, cover));
}

// The point's cover once a pick with this similarity joins the picks.
template <typename acc_t>
C10_HOST_DEVICE inline acc_t raise_cover(acc_t cover, acc_t similarity) {
  return similarity > cover ? similarity : cover;
}

// How much a point's term in a candidate's gain drops when the point's cover rises from `before`
// to `after`, in float64 for both dtypes: the incremental gains are sums of these drops. The two
// terms are exactly those the fresh sum adds, so the drops track the exact sum of its terms; a
// weighted term never rises with the cover (w >= 0, and rounding is monotone), so drops are >= 0.
template <typename scalar_t>
C10_HOST_DEVICE inline double coverage_drop(scalar_t similarity, scalar_t before, scalar_t after, scalar_t weight) {
  return static_cast<double>(weighted_gain(similarity, before, weight)) -
      static_cast<double>(weighted_gain(similarity, after, weight));
}

// A candidate's gain from its tiles' partial sums, added in tile order (host code on both backends).
template <typename acc_t>
inline acc_t sum_tile_partials(const acc_t* partials, int64_t tiles) {
  acc_t gain = 0;
  for (int64_t t = 0; t < tiles; ++t) {
    gain = add_rn(gain, partials[t]);
  }
  return gain;
}

}  // namespace torch_al::ops
