#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "../kcenter_greedy.h"
#include "../kcenter_greedy_entry.h"
#include "../kcenter_greedy_math.h"
#include "lane_sum.h"

namespace torch_al::ops {

namespace {

// The per-dtype kernels kcenter_greedy_with runs (see kcenter_greedy_entry.h).
template <typename scalar_t>
struct CpuKCenterGreedy {
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

  // Runs the picks: min_sq[N] and indices[k] are filled in place, plan.selectable is consumed.
  template <bool kScaled>
  static void select_centers(
      const at::Tensor& x,
      const at::Tensor& inverse_norms,
      KCenterGreedyPlan& plan,
      at::Tensor& min_sq,
      at::Tensor& indices) {
    using acc_t = at::opmath_type<scalar_t>;
    using Candidate = KCenterCandidate<acc_t>;
    const int64_t n = x.size(0);
    const int64_t dims = x.size(1);
    const scalar_t* data = x.const_data_ptr<scalar_t>();
    const acc_t* scale = kScaled ? inverse_norms.const_data_ptr<acc_t>() : nullptr;
    acc_t* min_data = min_sq.mutable_data_ptr<acc_t>();
    bool* selectable = plan.selectable.mutable_data_ptr<bool>();
    std::vector<Candidate> thread_best(at::get_num_threads());

    // One pass over x: lower every point's min distance with its center (centers[i * stride]) and
    // return the farthest selectable point. Each thread keeps its own best; chunks run in index
    // order, so a strict > keeps the lowest index within a thread and beats() merges across them.
    auto step = [&](const int64_t* centers, int64_t stride) {
      std::fill(thread_best.begin(), thread_best.end(), no_candidate<acc_t>());
      at::parallel_for(0, n, grain_for(dims), [&](int64_t begin, int64_t end) {
        Candidate best = no_candidate<acc_t>();
        for (int64_t i = begin; i < end; ++i) {
          const int64_t c = centers[i * stride];
          const scalar_t* row = data + i * dims;
          const scalar_t* center = data + c * dims;
          const acc_t si = kScaled ? scale[i] : acc_t(1);
          const acc_t sc = kScaled ? scale[c] : acc_t(1);
          const acc_t squared = lane_sum<acc_t>(
              dims, [&](int64_t d) { return squared_difference<kScaled>(row[d], center[d], si, sc); });
          const acc_t min_i = lower_min(min_data + i, squared);
          if (selectable[i] && min_i > best.value) {
            best = {min_i, i};
          }
        }
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
      return best.index;
    };

    const int64_t num_initial = plan.initial_indices.size(0);
    const int64_t* initial = plan.initial_indices.const_data_ptr<int64_t>();
    int64_t next = plan.first;
    if (num_initial > 0 && num_initial <= kKCenterDirectInitialCenters) {
      for (int64_t j = 0; j < num_initial; ++j) {
        next = step(initial + j, 0);
      }
    } else if (num_initial > 0) {
      const auto nearest = nearest_initial_center(x, inverse_norms, plan.initial_indices);
      next = step(nearest.const_data_ptr<int64_t>(), 1);
    }
    int64_t* picks = indices.mutable_data_ptr<int64_t>();
    for (int64_t t = 0; t < indices.size(0); ++t) {
      picks[t] = next;
      selectable[next] = false;
      next = step(picks + t, 0);
    }
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, CPU, m) {
  m.impl("kcenter_greedy", &kcenter_greedy_with<CpuKCenterGreedy>);
}

}  // namespace torch_al::ops
