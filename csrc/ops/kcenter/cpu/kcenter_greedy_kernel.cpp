#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "ops/kcenter/cpu/kcenter_panels.h"
#include "ops/kcenter/cpu/kcenter_pass.h"
#include "ops/kcenter/kcenter_greedy.h"
#include "ops/kcenter/kcenter_greedy_entry.h"
#include "ops/kcenter/kcenter_greedy_math.h"

namespace torch_al::ops {

namespace {

// The per-dtype kernels kcenter_greedy_with runs (see kcenter_greedy_entry.h).
template <typename scalar_t>
struct CpuKCenterGreedy : CpuRowInverseNorms<scalar_t> {
  // Runs the picks: min_sq[N] and indices[k] are filled in place, plan.selectable is consumed.
  template <bool kScaled>
  static void select_centers(
      const at::Tensor& x,
      const at::Tensor& inverse_norms,
      KCenterGreedyPlan& plan,
      at::Tensor& min_sq,
      at::Tensor& indices) {
    using acc_t = at::opmath_type<scalar_t>;
    const acc_t* scale = kScaled ? inverse_norms.const_data_ptr<acc_t>() : nullptr;
    bool* selectable = plan.selectable.mutable_data_ptr<bool>();
    const scalar_t* data = x.const_data_ptr<scalar_t>();
    const KCenterPoints<scalar_t, acc_t> points{
        data, x.size(0), x.size(1), scale, data, scale, min_sq.mutable_data_ptr<acc_t>(), selectable};
    // At low D the passes with one center for all points run on a transposed copy of x.
    const bool panelled = x.size(1) <= kKCenterPanelMaxDims;
    const std::vector<acc_t> panels =
        panelled ? pack_kcenter_panels<scalar_t, acc_t>(data, x.size(0), x.size(1), scale) : std::vector<acc_t>();
    // One pass over x with the centers centers[i * stride]: the index of the farthest selectable point.
    auto step = [&](const int64_t* centers, int64_t stride) {
      if (panelled && stride == 0) {
        const std::vector<acc_t> center = panel_point(panels, x.size(1), centers[0]);
        return farthest_after_panel_pass(panels, x.size(0), x.size(1), center.data(), points.min_sq, selectable).index;
      }
      return farthest_after_pass<kScaled>(points, centers, stride).index;
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
