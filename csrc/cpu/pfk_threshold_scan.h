#pragma once

// The threshold scan of the CPU streaming epilogue: the first block of kScanBlock columns of a tile
// row holding a value that beats the row's current k-th value. After the first tiles almost no
// block does, so this scan is most of the epilogue's time.
//
// The extension is compiled for baseline x86-64, so it loads on any CPU; the AVX2 scan is compiled
// for AVX2 alone (a per-function target, no torch code inside it) and chosen at run time. It
// computes base + lhs * rhs as pfk_value does, a multiply then an add (no FMA), so it never skips
// a column the scalar merge would take.

#include <cstdint>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TORCH_AL_AVX2_SCAN 1
#endif

namespace torch_al::ops {

constexpr int64_t kScanBlock = 16;

// The pieces of one tile row R[m, :] = base + lhs * rhs, and the tile's per-column penalty (0, or
// -inf for a masked column, which makes every value of that column lose to a full list).
template <typename scalar_t>
struct TileRow {
  const scalar_t* base;
  const scalar_t* lhs;
  const scalar_t* rhs;
  const scalar_t* penalty;
};

// Whether any column of the block [n, n + kScanBlock) beats `threshold`; read with no branch.
// NaN values and masked columns compare false.
template <typename scalar_t, bool kBase, bool kRhs>
inline bool block_beats(const TileRow<scalar_t>& row, int64_t n, scalar_t threshold) {
  int hits = 0;
  for (int64_t j = n; j < n + kScanBlock; ++j) {
    const scalar_t value = (kBase ? row.base[j] : scalar_t(0)) + row.lhs[j] * (kRhs ? row.rhs[j] : scalar_t(1));
    hits |= (value + row.penalty[j]) > threshold;
  }
  return hits != 0;
}

template <typename scalar_t, bool kBase, bool kRhs>
int64_t first_block_beating_scalar(const TileRow<scalar_t>& row, int64_t n, int64_t end, scalar_t threshold) {
  for (; n < end; n += kScanBlock) {
    if (block_beats<scalar_t, kBase, kRhs>(row, n, threshold)) {
      return n;
    }
  }
  return end;
}

#ifdef TORCH_AL_AVX2_SCAN

template <typename scalar_t>
struct Avx2;

template <>
struct Avx2<float> {
  using Vec = __m256;
  static constexpr int64_t kLanes = 8;
  __attribute__((target("avx2"))) static Vec load(const float* p) { return _mm256_loadu_ps(p); }
  __attribute__((target("avx2"))) static Vec fill(float v) { return _mm256_set1_ps(v); }
  __attribute__((target("avx2"))) static Vec mul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
  __attribute__((target("avx2"))) static Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
  __attribute__((target("avx2"))) static Vec greater(Vec a, Vec b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  __attribute__((target("avx2"))) static Vec either(Vec a, Vec b) { return _mm256_or_ps(a, b); }
  __attribute__((target("avx2"))) static bool any(Vec mask) { return !_mm256_testz_ps(mask, mask); }
};

template <>
struct Avx2<double> {
  using Vec = __m256d;
  static constexpr int64_t kLanes = 4;
  __attribute__((target("avx2"))) static Vec load(const double* p) { return _mm256_loadu_pd(p); }
  __attribute__((target("avx2"))) static Vec fill(double v) { return _mm256_set1_pd(v); }
  __attribute__((target("avx2"))) static Vec mul(Vec a, Vec b) { return _mm256_mul_pd(a, b); }
  __attribute__((target("avx2"))) static Vec add(Vec a, Vec b) { return _mm256_add_pd(a, b); }
  __attribute__((target("avx2"))) static Vec greater(Vec a, Vec b) { return _mm256_cmp_pd(a, b, _CMP_GT_OQ); }
  __attribute__((target("avx2"))) static Vec either(Vec a, Vec b) { return _mm256_or_pd(a, b); }
  __attribute__((target("avx2"))) static bool any(Vec mask) { return !_mm256_testz_pd(mask, mask); }
};

template <typename scalar_t, bool kBase, bool kRhs>
__attribute__((target("avx2"))) int64_t first_block_beating_avx2(
    const TileRow<scalar_t>& row, int64_t n, int64_t end, scalar_t threshold) {
  using V = Avx2<scalar_t>;
  const auto limit = V::fill(threshold);
  for (; n < end; n += kScanBlock) {
    auto hits = V::fill(scalar_t(0));
    for (int64_t j = n; j < n + kScanBlock; j += V::kLanes) {
      auto value = V::load(row.lhs + j);
      if constexpr (kRhs) {
        value = V::mul(value, V::load(row.rhs + j));
      }
      if constexpr (kBase) {
        value = V::add(V::load(row.base + j), value);
      }
      hits = V::either(hits, V::greater(V::add(value, V::load(row.penalty + j)), limit));
    }
    if (V::any(hits)) {
      return n;
    }
  }
  return end;
}

#endif  // TORCH_AL_AVX2_SCAN

// The start of the first block in [n, end) (whole blocks) holding a column that beats
// `threshold`, or end. `avx2`: the CPU has AVX2 and torch's CPU capability allows it.
template <typename scalar_t, bool kBase, bool kRhs>
inline int64_t first_block_beating(
    const TileRow<scalar_t>& row, int64_t n, int64_t end, scalar_t threshold, bool avx2) {
#ifdef TORCH_AL_AVX2_SCAN
  if (avx2) {
    return first_block_beating_avx2<scalar_t, kBase, kRhs>(row, n, end, threshold);
  }
#endif
  return first_block_beating_scalar<scalar_t, kBase, kRhs>(row, n, end, threshold);
}

}  // namespace torch_al::ops
