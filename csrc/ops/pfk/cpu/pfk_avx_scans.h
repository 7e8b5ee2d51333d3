#pragma once

// The threshold scans of the CPU streaming epilogues, scalar and AVX2. The BLAS tiles
// (pfk_blas_engine.cpp) look for the first block of kScanBlock columns of a tile row holding a
// value that beats the row's current k-th value; the GEMM blocks (pfk_brgemm_engine.cpp) look,
// along one pool row, for the query lanes whose value beats that query's own k-th value. After the
// first tiles almost nothing does, so these scans are most of the epilogue's time.
//
// The extension is compiled for baseline x86-64, so it loads on any CPU; the AVX2 scan is compiled
// for AVX2 alone (a per-function target, no torch code inside it) and chosen at run time. It
// computes base + lhs * rhs as pfk_value does, a multiply then an add (no FMA), so it never skips
// a column the scalar merge would take.

#include <cstdint>
#include <cstring>
#include <limits>

#include "ops/pfk/pfk_topk_math.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TORCH_AL_AVX2_SCAN 1
#endif

namespace torch_al::ops {

constexpr int64_t kScanBlock = 16;

// Whether the scans may use AVX2: the CPU has it and torch's CPU capability allows it
// (ATEN_CPU_CAPABILITY=default turns it off, as for torch's own kernels). In pfk_blas_engine.cpp.
bool scan_with_avx2();

// insert_sorted for a candidate whose index exceeds every listed one, as in both epilogues (pool
// columns arrive in increasing index): a listed entry then beats it exactly when its value is at
// least as large, so its position is a branch-free count the compiler vectorises, where the
// binary search mispredicts at each level (M = 1250, N = 50k, L = 80: k = 32 took 1.31x k = 1's
// time with the search, 1.18x with the count).
template <typename scalar_t>
inline void insert_after_listed(scalar_t* values, int64_t* indices, int64_t k, scalar_t value, int64_t index) {
  if (value == -std::numeric_limits<scalar_t>::infinity()) {  // an empty slot, (-inf, -1), loses to it
    insert_sorted(values, indices, k, value, index);
    return;
  }
  int position = 0;
  for (int64_t i = 0; i < k; ++i) {
    position += values[i] >= value;
  }
  if (position == k) {
    return;
  }
  std::memmove(values + position + 1, values + position, (k - 1 - position) * sizeof(scalar_t));
  std::memmove(indices + position + 1, indices + position, (k - 1 - position) * sizeof(int64_t));
  values[position] = value;
  indices[position] = index;
}

// The pieces of one tile row R[m, :] = base + lhs * rhs, and the tile's per-column penalty (0, or
// -inf for a masked column, which makes every value of that column lose to a full list).
template <typename scalar_t>
struct TileRow {
  const scalar_t* base;
  const scalar_t* lhs;
  const scalar_t* rhs;
  const scalar_t* penalty;
};

// The row starting `offset` elements into row-major tile buffers.
template <typename scalar_t, bool kBase, bool kRhs>
inline TileRow<scalar_t> tile_row(
    const scalar_t* base, const scalar_t* lhs, const scalar_t* rhs, int64_t offset, const scalar_t* penalty) {
  return {kBase ? base + offset : nullptr, lhs + offset, kRhs ? rhs + offset : nullptr, penalty};
}

// Element n of the row as the op ranks it (pfk_value: a non-finite value becomes -inf).
template <typename scalar_t, bool kBase, bool kRhs>
inline scalar_t row_value(const TileRow<scalar_t>& row, int64_t n) {
  return pfk_value<scalar_t>(kBase ? row.base[n] : scalar_t(0), row.lhs[n], kRhs ? row.rhs[n] : scalar_t(1));
}

// Whether any column of the block [n, n + kScanBlock) beats `threshold`; read with no branch.
// NaN values and masked columns compare false.
template <typename scalar_t, bool kBase, bool kRhs>
inline scalar_t raw_value(const TileRow<scalar_t>& row, int64_t j) {
  return (kBase ? row.base[j] : scalar_t(0)) + row.lhs[j] * (kRhs ? row.rhs[j] : scalar_t(1));
}

template <typename scalar_t, bool kBase, bool kRhs>
inline bool block_beats(const TileRow<scalar_t>& row, int64_t n, scalar_t threshold) {
  int hits = 0;
  for (int64_t j = n; j < n + kScanBlock; ++j) {
    hits |= (raw_value<scalar_t, kBase, kRhs>(row, j) + row.penalty[j]) > threshold;
  }
  return hits != 0;
}

// Bit m set for each lane m < count (at most 64) whose value may enter its own list: it beats
// thresholds[m], or either is NaN (a NaN threshold marks a list still filling). An overflowed
// value (inf, NaN) is flagged too and ranked by pfk_value.
template <typename scalar_t, bool kBase, bool kRhs>
uint64_t lanes_may_enter_scalar(
    const TileRow<scalar_t>& row, const scalar_t* thresholds, int64_t first, int64_t count) {
  uint64_t lanes = 0;
  for (int64_t m = first; m < count; ++m) {
    lanes |= uint64_t(!(raw_value<scalar_t, kBase, kRhs>(row, m) <= thresholds[m])) << m;
  }
  return lanes;
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

// The largest of `best` and lanes [first, count) of the row, a non-finite value counting as -inf.
template <typename scalar_t, bool kBase, bool kRhs>
scalar_t row_max_scalar(const TileRow<scalar_t>& row, int64_t first, int64_t count, scalar_t best) {
  for (int64_t m = first; m < count; ++m) {
    const scalar_t value = row_value<scalar_t, kBase, kRhs>(row, m);
    best = value > best ? value : best;
  }
  return best;
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
  __attribute__((target("avx2"))) static Vec not_at_most(Vec a, Vec b) { return _mm256_cmp_ps(a, b, _CMP_NLE_UQ); }
  __attribute__((target("avx2"))) static uint64_t lane_bits(Vec mask) { return uint32_t(_mm256_movemask_ps(mask)); }
  __attribute__((target("avx2"))) static Vec larger(Vec a, Vec b) { return _mm256_max_ps(a, b); }
  // a where it is finite, else b.
  __attribute__((target("avx2"))) static Vec finite_or(Vec a, Vec b) {
    return _mm256_blendv_ps(b, a, _mm256_cmp_ps(_mm256_sub_ps(a, a), _mm256_setzero_ps(), _CMP_EQ_OQ));
  }
  __attribute__((target("avx2"))) static void store(Vec a, float* p) { _mm256_storeu_ps(p, a); }
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
  __attribute__((target("avx2"))) static Vec not_at_most(Vec a, Vec b) { return _mm256_cmp_pd(a, b, _CMP_NLE_UQ); }
  __attribute__((target("avx2"))) static uint64_t lane_bits(Vec mask) { return uint32_t(_mm256_movemask_pd(mask)); }
  __attribute__((target("avx2"))) static Vec larger(Vec a, Vec b) { return _mm256_max_pd(a, b); }
  // a where it is finite, else b.
  __attribute__((target("avx2"))) static Vec finite_or(Vec a, Vec b) {
    return _mm256_blendv_pd(b, a, _mm256_cmp_pd(_mm256_sub_pd(a, a), _mm256_setzero_pd(), _CMP_EQ_OQ));
  }
  __attribute__((target("avx2"))) static void store(Vec a, double* p) { _mm256_storeu_pd(p, a); }
};

template <typename scalar_t, bool kBase, bool kRhs>
__attribute__((target("avx2"))) inline typename Avx2<scalar_t>::Vec raw_values_avx2(
    const TileRow<scalar_t>& row, int64_t j) {
  using V = Avx2<scalar_t>;
  auto value = V::load(row.lhs + j);
  if constexpr (kRhs) {
    value = V::mul(value, V::load(row.rhs + j));
  }
  if constexpr (kBase) {
    value = V::add(V::load(row.base + j), value);
  }
  return value;
}

template <typename scalar_t, bool kBase, bool kRhs>
__attribute__((target("avx2"))) uint64_t
lanes_may_enter_avx2(const TileRow<scalar_t>& row, const scalar_t* thresholds, int64_t count) {
  using V = Avx2<scalar_t>;
  uint64_t lanes = 0;
  int64_t m = 0;
  for (; m + V::kLanes <= count; m += V::kLanes) {
    const auto enter = V::not_at_most(raw_values_avx2<scalar_t, kBase, kRhs>(row, m), V::load(thresholds + m));
    lanes |= V::lane_bits(enter) << m;
  }
  return lanes | lanes_may_enter_scalar<scalar_t, kBase, kRhs>(row, thresholds, m, count);
}

template <typename scalar_t, bool kBase, bool kRhs>
__attribute__((target("avx2"))) scalar_t row_max_avx2(const TileRow<scalar_t>& row, int64_t count, scalar_t best) {
  using V = Avx2<scalar_t>;
  auto lanes_best = V::fill(best);
  int64_t m = 0;
  for (; m + V::kLanes <= count; m += V::kLanes) {
    const auto value = V::finite_or(raw_values_avx2<scalar_t, kBase, kRhs>(row, m), V::fill(-scalar_t(INFINITY)));
    lanes_best = V::larger(value, lanes_best);
  }
  scalar_t lane_values[V::kLanes];
  V::store(lanes_best, lane_values);
  for (const scalar_t value : lane_values) {
    best = value > best ? value : best;
  }
  return row_max_scalar<scalar_t, kBase, kRhs>(row, m, count, best);
}

template <typename scalar_t, bool kBase, bool kRhs>
__attribute__((target("avx2"))) int64_t
first_block_beating_avx2(const TileRow<scalar_t>& row, int64_t n, int64_t end, scalar_t threshold) {
  using V = Avx2<scalar_t>;
  const auto limit = V::fill(threshold);
  for (; n < end; n += kScanBlock) {
    auto hits = V::fill(scalar_t(0));
    for (int64_t j = n; j < n + kScanBlock; j += V::kLanes) {
      const auto value = raw_values_avx2<scalar_t, kBase, kRhs>(row, j);
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

// The lanes of a row of at most 64 lanes whose value may enter its list (lanes_may_enter_scalar).
template <typename scalar_t, bool kBase, bool kRhs>
inline uint64_t lanes_may_enter(const TileRow<scalar_t>& row, const scalar_t* thresholds, int64_t count, bool avx2) {
#ifdef TORCH_AL_AVX2_SCAN
  if (avx2) {
    return lanes_may_enter_avx2<scalar_t, kBase, kRhs>(row, thresholds, count);
  }
#endif
  return lanes_may_enter_scalar<scalar_t, kBase, kRhs>(row, thresholds, 0, count);
}

// The largest of `best` and lanes [0, count) of the row (row_max_scalar).
template <typename scalar_t, bool kBase, bool kRhs>
inline scalar_t row_max(const TileRow<scalar_t>& row, int64_t count, scalar_t best, bool avx2) {
#ifdef TORCH_AL_AVX2_SCAN
  if (avx2) {
    return row_max_avx2<scalar_t, kBase, kRhs>(row, count, best);
  }
#endif
  return row_max_scalar<scalar_t, kBase, kRhs>(row, 0, count, best);
}

}  // namespace torch_al::ops
