#pragma once

// The kcenter_greedy_step entry every backend registers: validate, guard the device, choose how
// the centers are applied, then run the backend's passes. A backend supplies `Backend<scalar_t>` with
//   static at::Tensor row_inverse_norms(const at::Tensor& x);           // cosine row scale
//   template <bool kScaled> static void farthest_after(KCenterStep& step);
// which lowers step.min_sq with the center rows step.center_index and writes the farthest
// selectable point of the last pass into step.value and step.index.

#include <ATen/Dispatch.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/full.h>
#include <c10/core/DeviceGuard.h>

#include <tuple>

#include "ops/kcenter/kcenter_greedy.h"
#include "ops/kcenter/kcenter_greedy_math.h"
#include "ops/kcenter/kcenter_greedy_step.h"

namespace torch_al::ops {

// One call's tensors, as the backends read and write them.
struct KCenterStep {
  at::Tensor x;             // [N, D], contiguous
  at::Tensor x_scale;       // [N] cosine scale (undefined for the Euclidean metric)
  at::Tensor centers;       // [S, D], contiguous
  at::Tensor center_scale;  // [S] cosine scale (undefined for the Euclidean metric)
  at::Tensor center_index;  // int64: the centers of the passes (see farthest_after)
  bool per_point;           // one pass where point i takes center_index[i], else one pass per entry
  at::Tensor min_sq;        // [N], lowered in place
  at::Tensor selectable;    // [N] bool, contiguous
  at::Tensor value;         // 0-dim outputs: the last pass's farthest selectable point
  at::Tensor index;
};

template <template <typename> class Backend>
std::tuple<at::Tensor, at::Tensor> kcenter_greedy_step_with(
    const at::Tensor& x,
    const at::Tensor& centers,
    at::Tensor& min_sq,
    const at::Tensor& selectable,
    c10::string_view metric) {
  const bool cosine = check_kcenter_greedy_step_inputs(x, centers, min_sq, selectable, metric);
  const c10::DeviceGuard device_guard(x.device());
  auto value = at::full({}, -1, min_sq.options());
  auto index = at::full({}, -1, min_sq.options().dtype(at::kLong));
  if (x.size(0) == 0) {
    return {value, index};
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "kcenter_greedy_step", [&] {
    using Kernels = Backend<scalar_t>;
    KCenterStep step{
        x.contiguous(), {}, centers.contiguous(), {}, {}, false, min_sq, selectable.contiguous(), value, index,
    };
    if (cosine) {
      step.x_scale = Kernels::row_inverse_norms(step.x);
      step.center_scale = Kernels::row_inverse_norms(step.centers);
    }
    // As kcenter_greedy applies its initial set: a few centers directly, many through the product.
    step.per_point = centers.size(0) > kKCenterDirectInitialCenters;
    step.center_index = step.per_point ? nearest_center(step.x, step.x_scale, step.centers, step.center_scale)
                                       : at::arange(centers.size(0), index.options());
    if (cosine) {
      Kernels::template farthest_after<true>(step);
    } else {
      Kernels::template farthest_after<false>(step);
    }
  });
  return {value, index};
}

}  // namespace torch_al::ops
