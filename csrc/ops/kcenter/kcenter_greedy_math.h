#pragma once

// Arithmetic of the kcenter_greedy kernels, shared by the CPU and CUDA backends so that the CPU
// tests exercise the math the GPU runs, and both give bit-identical distances and picks.
//
// The squared distance of a row to a center is summed in kLanes interleaved partial sums (lane j
// adds dims j, j + kLanes, ... in increasing order), then combined by the halving tree
// p[j] += p[j + h] for h = kLanes/2, ..., 1. That is one CUDA warp per row with a shuffle-down
// reduction; the CPU kernel keeps kLanes accumulators in the same order (and vectorises them).

#include <c10/macros/Macros.h>

#include <cmath>
#include <cstdint>

namespace torch_al::ops {

constexpr int kKCenterLanes = 32;

// Up to this many initial centers are applied one direct pass each (exact, bit-identical across
// devices); larger initial sets go through the blocked matrix product.
constexpr int64_t kKCenterDirectInitialCenters = 16;

// Explicitly rounded operations: nvcc would otherwise fuse a*b + c into one FMA, which rounds
// once instead of twice and makes CUDA distances differ from the CPU's in the last bit. Host
// code is compiled in ISO C++ mode, where GCC does not contract either.
C10_HOST_DEVICE inline float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
C10_HOST_DEVICE inline double add_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
C10_HOST_DEVICE inline float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
C10_HOST_DEVICE inline double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
C10_HOST_DEVICE inline float sub_rn(float a, float b) {
  return add_rn(a, -b);
}
C10_HOST_DEVICE inline double sub_rn(double a, double b) {
  return add_rn(a, -b);
}

// 1 / ||x|| from ||x||^2, correctly rounded at each step on both backends (no rsqrt
// approximation). A zero or overflowing norm gives inf or 0, which the op rejects for cosine.
C10_HOST_DEVICE inline float inverse_norm(float squared_norm) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(1.0f, __fsqrt_rn(squared_norm));
#else
  return 1.0f / std::sqrt(squared_norm);
#endif
}
C10_HOST_DEVICE inline double inverse_norm(double squared_norm) {
#if defined(__CUDA_ARCH__)
  return __ddiv_rn(1.0, __dsqrt_rn(squared_norm));
#else
  return 1.0 / std::sqrt(squared_norm);
#endif
}

// One term of a lane's partial sum: (x * sx - c * sc)^2. kScaled is false for the Euclidean
// metric (sx = sc = 1), true for cosine, where sx and sc are inverse row norms.
template <bool kScaled, typename acc_t, typename scalar_t>
C10_HOST_DEVICE inline acc_t squared_difference(scalar_t x, scalar_t c, acc_t sx, acc_t sc) {
  acc_t xv = static_cast<acc_t>(x);
  acc_t cv = static_cast<acc_t>(c);
  if constexpr (kScaled) {
    xv = mul_rn(xv, sx);
    cv = mul_rn(cv, sc);
  }
  const acc_t diff = sub_rn(xv, cv);
  return mul_rn(diff, diff);
}

template <typename acc_t, typename scalar_t>
C10_HOST_DEVICE inline acc_t squared_value(scalar_t x) {
  const acc_t v = static_cast<acc_t>(x);
  return mul_rn(v, v);
}

// The halving tree over the lanes' partial sums: what a warp's shuffle-down reduction computes.
template <typename acc_t>
C10_HOST_DEVICE inline acc_t combine_lanes(acc_t* lanes) {
  for (int half = kKCenterLanes / 2; half > 0; half /= 2) {
    for (int j = 0; j < half; ++j) {
      lanes[j] = add_rn(lanes[j], lanes[j + half]);
    }
  }
  return lanes[0];
}

// A point's claim to be the next pick: its min squared distance to the centers. index -1 is "no
// candidate"; real values are >= 0, so any real candidate beats it.
template <typename acc_t>
struct KCenterCandidate {
  acc_t value;
  int64_t index;
};

template <typename acc_t>
C10_HOST_DEVICE inline KCenterCandidate<acc_t> no_candidate() {
  return {acc_t(-1), -1};
}

// The farthest point wins; ties go to the lower index. A total order, so partial maxima can be
// merged in any grouping and still give the same pick.
template <typename acc_t>
C10_HOST_DEVICE inline bool beats(const KCenterCandidate<acc_t>& a, const KCenterCandidate<acc_t>& b) {
  return a.value > b.value || (a.value == b.value && a.index < b.index);
}

// Lowers the running min squared distance of a point and returns it. A NaN distance sticks, so
// a point with a non-finite coordinate can never win a strict > against a real candidate.
template <typename acc_t>
C10_HOST_DEVICE inline acc_t lower_min(acc_t* min_sq, acc_t squared_distance) {
  const bool is_nan = squared_distance != squared_distance;
  if (squared_distance < *min_sq || is_nan) {
    *min_sq = squared_distance;
  }
  return *min_sq;
}

}  // namespace torch_al::ops
