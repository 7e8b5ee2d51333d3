#pragma once

// The kcenter_greedy_step entry every backend registers: validate, guard the device, choose how
// the centers are applied, then run the backend's passes. A backend supplies `Backend<scalar_t>` with
//   static at::Tensor row_inverse_norms(const at::Tensor& x);           // cosine row scale
//   template <bool kScaled> static void farthest_after(points, centers, center_index, per_point,
//                                                      min_sq, selectable, value, index);
// which lowers min_sq with center rows center_index (one pass per entry, or with per_point one pass
// where point i takes center_index[i]) and writes the farthest selectable point of the last pass.

#include <ATen/Dispatch.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/full.h>
#include <c10/core/DeviceGuard.h>

#include <tuple>

#include "kcenter_greedy.h"
#include "kcenter_greedy_math.h"
#include "kcenter_greedy_step.h"

namespace torch_al::ops {

// x and centers with their cosine scales (undefined for the Euclidean metric).
struct KCenterStepRows {
  at::Tensor x;
  at::Tensor x_scale;
  at::Tensor centers;
  at::Tensor center_scale;
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
  const auto selectable_contiguous = selectable.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "kcenter_greedy_step", [&] {
    using Kernels = Backend<scalar_t>;
    KCenterStepRows rows{x.contiguous(), at::Tensor(), centers.contiguous(), at::Tensor()};
    if (cosine) {
      rows.x_scale = Kernels::row_inverse_norms(rows.x);
      rows.center_scale = Kernels::row_inverse_norms(rows.centers);
    }
    // As kcenter_greedy applies its initial set: a few centers directly, many through the product.
    const bool per_point = centers.size(0) > kKCenterDirectInitialCenters;
    const auto center_index = per_point
        ? nearest_center(rows.x, rows.x_scale, rows.centers, rows.center_scale)
        : at::arange(centers.size(0), index.options());
    if (cosine) {
      Kernels::template farthest_after<true>(
          rows, center_index, per_point, min_sq, selectable_contiguous, value, index);
    } else {
      Kernels::template farthest_after<false>(
          rows, center_index, per_point, min_sq, selectable_contiguous, value, index);
    }
  });
  return {value, index};
}

}  // namespace torch_al::ops
