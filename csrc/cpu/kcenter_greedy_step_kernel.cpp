#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../kcenter_greedy_step.h"
#include "../kcenter_greedy_step_entry.h"
#include "kcenter_pass.h"

namespace torch_al::ops {

namespace {

// The per-dtype kernels kcenter_greedy_step_with runs (see kcenter_greedy_step_entry.h).
template <typename scalar_t>
struct CpuKCenterGreedyStep {
  static at::Tensor row_inverse_norms(const at::Tensor& x) {
    return cpu_row_inverse_norms<scalar_t>(x);
  }

  template <bool kScaled>
  static void farthest_after(
      const KCenterStepRows& rows,
      const at::Tensor& center_index,
      bool per_point,
      at::Tensor& min_sq,
      const at::Tensor& selectable,
      at::Tensor& value,
      at::Tensor& index) {
    using acc_t = at::opmath_type<scalar_t>;
    const KCenterPoints<scalar_t, acc_t> points{
        rows.x.const_data_ptr<scalar_t>(),
        rows.x.size(0),
        rows.x.size(1),
        kScaled ? rows.x_scale.const_data_ptr<acc_t>() : nullptr,
        rows.centers.const_data_ptr<scalar_t>(),
        kScaled ? rows.center_scale.const_data_ptr<acc_t>() : nullptr,
        min_sq.mutable_data_ptr<acc_t>(),
        selectable.const_data_ptr<bool>()};
    const int64_t* centers = center_index.const_data_ptr<int64_t>();
    auto best = no_candidate<acc_t>();
    for (int64_t j = 0; j < (per_point ? 1 : center_index.size(0)); ++j) {
      best = farthest_after_pass<kScaled>(points, per_point ? centers : centers + j, per_point ? 1 : 0);
    }
    value.fill_(best.value);
    index.fill_(best.index);
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, CPU, m) {
  m.impl("kcenter_greedy_step", &kcenter_greedy_step_with<CpuKCenterGreedyStep>);
}

}  // namespace torch_al::ops
