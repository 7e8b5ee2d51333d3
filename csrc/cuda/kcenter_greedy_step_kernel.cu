// kcenter_greedy_step on CUDA: the passes of kcenter_pass.cuh; the last pass's farthest point is
// written straight into the 0-dim outputs, so the op does not synchronise with the host.

#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../kcenter_greedy_step.h"
#include "../kcenter_greedy_step_entry.h"
#include "kcenter_pass.cuh"

namespace torch_al::ops {

namespace {

// The per-dtype kernels kcenter_greedy_step_with runs (see kcenter_greedy_step_entry.h).
template <typename scalar_t>
struct CudaKCenterGreedyStep {
  static at::Tensor row_inverse_norms(const at::Tensor& x) {
    return cuda_row_inverse_norms<scalar_t>(x);
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
    KCenterPasses<scalar_t, kScaled> passes(
        rows.x, rows.x_scale, rows.centers, rows.center_scale, min_sq, selectable.const_data_ptr<bool>());
    const int64_t* centers = center_index.const_data_ptr<int64_t>();
    const int64_t count = per_point ? 1 : center_index.size(0);
    for (int64_t j = 0; j < count; ++j) {
      const bool last = j + 1 == count;
      passes.run(
          per_point ? centers : centers + j, per_point ? 1 : 0, last ? index.mutable_data_ptr<int64_t>() : nullptr,
          last ? value.mutable_data_ptr<acc_t>() : nullptr);
    }
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, CUDA, m) {
  m.impl("kcenter_greedy_step", &kcenter_greedy_step_with<CudaKCenterGreedyStep>);
}

}  // namespace torch_al::ops
