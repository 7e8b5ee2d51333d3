// kcenter_greedy_step on CUDA: the passes of kcenter_pass.cuh; the last pass's farthest point is
// written straight into the 0-dim outputs, so the op does not synchronise with the host.

#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "ops/kcenter/cuda/kcenter_pass.cuh"
#include "ops/kcenter/kcenter_greedy_step.h"
#include "ops/kcenter/kcenter_greedy_step_entry.h"

namespace torch_al::ops {

namespace {

// The per-dtype kernels kcenter_greedy_step_with runs (see kcenter_greedy_step_entry.h).
template <typename scalar_t>
struct CudaKCenterGreedyStep : CudaRowInverseNorms<scalar_t> {
  template <bool kScaled>
  static void farthest_after(KCenterStep& step) {
    using acc_t = at::opmath_type<scalar_t>;
    KCenterPasses<scalar_t, kScaled> passes(
        step.x, step.x_scale, step.centers, step.center_scale, step.min_sq, step.selectable.const_data_ptr<bool>());
    const int64_t* centers = step.center_index.const_data_ptr<int64_t>();
    const int64_t count = step.per_point ? 1 : step.center_index.size(0);
    for (int64_t j = 0; j < count; ++j) {
      const bool last = j + 1 == count;
      passes.run(
          step.per_point ? centers : centers + j, step.per_point ? 1 : 0,
          last ? step.index.mutable_data_ptr<int64_t>() : nullptr,
          last ? step.value.mutable_data_ptr<acc_t>() : nullptr);
    }
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, CUDA, m) {
  m.impl("kcenter_greedy_step", &kcenter_greedy_step_with<CudaKCenterGreedyStep>);
}

}  // namespace torch_al::ops
