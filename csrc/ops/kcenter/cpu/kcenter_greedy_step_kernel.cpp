#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "ops/kcenter/cpu/kcenter_pass.h"
#include "ops/kcenter/kcenter_greedy_step.h"
#include "ops/kcenter/kcenter_greedy_step_entry.h"

namespace torch_al::ops {

namespace {

// The per-dtype kernels kcenter_greedy_step_with runs (see kcenter_greedy_step_entry.h).
template <typename scalar_t>
struct CpuKCenterGreedyStep : CpuRowInverseNorms<scalar_t> {
  template <bool kScaled>
  static void farthest_after(KCenterStep& step) {
    using acc_t = at::opmath_type<scalar_t>;
    const KCenterPoints<scalar_t, acc_t> points{
        step.x.const_data_ptr<scalar_t>(),
        step.x.size(0),
        step.x.size(1),
        kScaled ? step.x_scale.const_data_ptr<acc_t>() : nullptr,
        step.centers.const_data_ptr<scalar_t>(),
        kScaled ? step.center_scale.const_data_ptr<acc_t>() : nullptr,
        step.min_sq.mutable_data_ptr<acc_t>(),
        step.selectable.const_data_ptr<bool>()};
    const int64_t* centers = step.center_index.const_data_ptr<int64_t>();
    auto best = no_candidate<acc_t>();
    for (int64_t j = 0; j < (step.per_point ? 1 : step.center_index.size(0)); ++j) {
      best = farthest_after_pass<kScaled>(points, step.per_point ? centers : centers + j, step.per_point ? 1 : 0);
    }
    step.value.fill_(best.value);
    step.index.fill_(best.index);
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, CPU, m) {
  m.impl("kcenter_greedy_step", &kcenter_greedy_step_with<CpuKCenterGreedyStep>);
}

}  // namespace torch_al::ops
