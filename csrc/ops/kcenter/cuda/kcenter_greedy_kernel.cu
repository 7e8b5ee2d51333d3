// k-center greedy on CUDA: the passes of kcenter_pass.cuh, each pick written into device memory,
// where the next pass reads its center: no host sync per pick.

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "ops/kcenter/cuda/kcenter_pass.cuh"
#include "ops/kcenter/kcenter_greedy.h"
#include "ops/kcenter/kcenter_greedy_entry.h"
#include "ops/kcenter/kcenter_greedy_math.h"

namespace torch_al::ops {

namespace {

// The per-dtype kernels kcenter_greedy_with runs (see kcenter_greedy_entry.h).
template <typename scalar_t>
struct CudaKCenterGreedy : CudaRowInverseNorms<scalar_t> {
  // Runs the picks: min_sq[N] and indices[k] are filled in place, plan.selectable is consumed.
  template <bool kScaled>
  static void select_centers(
      const at::Tensor& x,
      const at::Tensor& inverse_norms,
      KCenterGreedyPlan& plan,
      at::Tensor& min_sq,
      at::Tensor& indices) {
    const int64_t k = indices.size(0);
    bool* selectable = plan.selectable.mutable_data_ptr<bool>();
    int64_t* picks = indices.mutable_data_ptr<int64_t>();
    KCenterPasses<scalar_t, kScaled> passes(x, inverse_norms, x, inverse_norms, min_sq, selectable);
    // A pass whose farthest point becomes pick `pick` (none when null).
    auto step = [&](const int64_t* centers, int64_t stride, int64_t* pick) {
      passes.run(centers, stride, pick, nullptr, pick != nullptr ? selectable : nullptr);
    };

    const int64_t num_initial = plan.initial_indices.size(0);
    const int64_t* initial = plan.initial_indices.const_data_ptr<int64_t>();
    int64_t* first_pick = k > 0 ? picks : nullptr;
    if (num_initial == 0 && k > 0) {
      indices.select(0, 0).fill_(plan.first);
      plan.selectable.select(0, plan.first).fill_(false);
    } else if (num_initial > 0 && num_initial <= kKCenterDirectInitialCenters) {
      for (int64_t j = 0; j < num_initial; ++j) {
        step(initial + j, 0, j + 1 == num_initial ? first_pick : nullptr);
      }
    } else if (num_initial > 0) {
      // Kernels on this stream finish with `nearest` before its memory can be reused.
      const auto nearest = nearest_initial_center(x, inverse_norms, plan.initial_indices);
      step(nearest.const_data_ptr<int64_t>(), 1, first_pick);
    }
    for (int64_t t = 0; t < k; ++t) {
      step(picks + t, 0, t + 1 < k ? picks + t + 1 : nullptr);
    }
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, CUDA, m) {
  m.impl("kcenter_greedy", &kcenter_greedy_with<CudaKCenterGreedy>);
}

}  // namespace torch_al::ops
