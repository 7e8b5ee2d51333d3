#pragma once

// Arithmetic of the pfk_topk / pfk_column_topk kernels, shared by the CPU and CUDA backends so that
// the CPU tests exercise the math the GPU runs.
//
// A per-row top-k list is stored best first under the total order of `beats`: larger value first,
// equal values by the lower pool index. An empty slot holds (-inf, -1) and loses to every
// candidate, including an allowed column whose value is -inf.

#include <c10/macros/Macros.h>

#include <cmath>
#include <cstdint>

namespace torch_al::ops {

// One kernel value from the tile products: base + lhs * rhs. A plan without a base passes 0, a
// single-factor plan passes rhs = 1. Finite descriptors can still overflow, to inf or to
// inf - inf = NaN as the GEMM's summation order and FMAs decide: such a value maps to -inf, so it
// ranks last on every backend and can never outrank a real match.
template <typename scalar_t>
C10_HOST_DEVICE inline scalar_t pfk_value(scalar_t base, scalar_t lhs, scalar_t rhs) {
  const scalar_t value = base + lhs * rhs;
  const bool finite = value - value == scalar_t(0);
  return finite ? value : -static_cast<scalar_t>(INFINITY);
}

// Whether candidate (value, index) ranks strictly before (other_value, other_index).
template <typename scalar_t>
C10_HOST_DEVICE inline bool beats(scalar_t value, int64_t index, scalar_t other_value, int64_t other_index) {
  if (other_index < 0) {
    return index >= 0;
  }
  return index >= 0 && (value > other_value || (value == other_value && index < other_index));
}

// Number of entries of a best-first list that beat (value, index); they form a prefix, so this
// is also the position at which (value, index) belongs. Binary search, O(log k).
template <typename scalar_t>
C10_HOST_DEVICE inline int64_t count_beating_sorted(
    const scalar_t* values, const int64_t* indices, int64_t k, scalar_t value, int64_t index) {
  int64_t lo = 0;
  int64_t hi = k;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (beats(values[mid], indices[mid], value, index)) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

// Inserts (value, index) into a best-first list of length k >= 1 if it beats the last entry;
// the last entry drops out.
template <typename scalar_t>
C10_HOST_DEVICE inline void insert_sorted(
    scalar_t* values, int64_t* indices, int64_t k, scalar_t value, int64_t index) {
  if (!beats(value, index, values[k - 1], indices[k - 1])) {
    return;
  }
  const int64_t position = count_beating_sorted(values, indices, k - 1, value, index);
  for (int64_t i = k - 1; i > position; --i) {
    values[i] = values[i - 1];
    indices[i] = indices[i - 1];
  }
  values[position] = value;
  indices[position] = index;
}

}  // namespace torch_al::ops
