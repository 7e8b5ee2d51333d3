#pragma once

// One farthest-first pass over the points, shared by the CPU kernels of kcenter_greedy and
// kcenter_greedy_step: lower every point's min squared distance with its center, and return the
// farthest selectable point.

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <vector>

#include "ops/kcenter/kcenter_greedy_math.h"
#include "ops/lane_sums/lane_sum.h"

namespace torch_al::ops {

// The points, and the rows their centers are read from (x itself for kcenter_greedy, separate
// center rows for kcenter_greedy_step). The scales are inverse row norms for the cosine metric,
// null for the Euclidean one.
template <typename scalar_t, typename acc_t>
struct KCenterPoints {
  const scalar_t* x;
  int64_t n;
  int64_t dims;
  const acc_t* x_scale;
  const scalar_t* center_rows;
  const acc_t* center_scale;
  acc_t* min_sq;
  const bool* selectable;
};

// 1 / ||x_i|| per row, in the lane order of kcenter_greedy_math.h: the cosine scale every
// k-center backend supplies (kcenter_greedy_entry.h, kcenter_greedy_step_entry.h); backends inherit it.
template <typename scalar_t>
struct CpuRowInverseNorms {
  static at::Tensor row_inverse_norms(const at::Tensor& x) {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t dims = x.size(1);
    at::Tensor out = at::empty({x.size(0)}, x.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    const scalar_t* data = x.const_data_ptr<scalar_t>();
    acc_t* scale = out.mutable_data_ptr<acc_t>();
    at::parallel_for(0, x.size(0), grain_for(dims), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const scalar_t* row = data + i * dims;
        scale[i] = inverse_norm(lane_sum<acc_t>(dims, [&](int64_t d) { return squared_value<acc_t>(row[d]); }));
      }
    });
    return out;
  }
};

// The farthest candidate over [0, count): body(begin, end) returns the best of a chunk, chunks
// run in parallel, and beats() merges their bests (each thread keeps its own first).
template <typename acc_t, typename Body>
KCenterCandidate<acc_t> farthest_over_chunks(int64_t count, int64_t grain, const Body& body) {
  using Candidate = KCenterCandidate<acc_t>;
  std::vector<Candidate> thread_best(at::get_num_threads(), no_candidate<acc_t>());
  at::parallel_for(0, count, grain, [&](int64_t begin, int64_t end) {
    const Candidate best = body(begin, end);
    Candidate& slot = thread_best[at::get_thread_num()];
    if (beats(best, slot)) {
      slot = best;
    }
  });
  Candidate best = no_candidate<acc_t>();
  for (const auto& candidate : thread_best) {
    if (beats(candidate, best)) {
      best = candidate;
    }
  }
  return best;
}

// Point i's center is row centers[i * stride] of center_rows (stride 0: one center for all).
// Chunks run in index order, so a strict > keeps the lowest index within a chunk and beats()
// merges across them. A NaN distance never lowers min_sq to a number and never wins (lower_min,
// then a strict >).
template <bool kScaled, typename scalar_t, typename acc_t>
KCenterCandidate<acc_t> farthest_after_pass(
    const KCenterPoints<scalar_t, acc_t>& p, const int64_t* centers, int64_t stride) {
  return farthest_over_chunks<acc_t>(p.n, grain_for(p.dims), [&](int64_t begin, int64_t end) {
    KCenterCandidate<acc_t> best = no_candidate<acc_t>();
    for (int64_t i = begin; i < end; ++i) {
      const int64_t c = centers[i * stride];
      const scalar_t* row = p.x + i * p.dims;
      const scalar_t* center = p.center_rows + c * p.dims;
      const acc_t si = kScaled ? p.x_scale[i] : acc_t(1);
      const acc_t sc = kScaled ? p.center_scale[c] : acc_t(1);
      const acc_t squared =
          lane_sum<acc_t>(p.dims, [&](int64_t d) { return squared_difference<kScaled>(row[d], center[d], si, sc); });
      const acc_t min_i = lower_min(p.min_sq + i, squared);
      if (p.selectable[i] && min_i > best.value) {
        best = {min_i, i};
      }
    }
    return best;
  });
}

}  // namespace torch_al::ops
