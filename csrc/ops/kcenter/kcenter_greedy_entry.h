#pragma once

// The kcenter_greedy entry every backend registers: validate, guard the device, allocate, plan,
// then run the backend's pick loop. A backend supplies `Backend<scalar_t>` with
//   static at::Tensor row_inverse_norms(const at::Tensor& x);           // cosine row scale
//   template <bool kScaled> static void select_centers(x, inverse_norms, plan, min_sq, indices);

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <c10/core/DeviceGuard.h>

#include <limits>
#include <optional>
#include <tuple>

#include "ops/kcenter/kcenter_greedy.h"

namespace torch_al::ops {

template <template <typename> class Backend>
std::tuple<at::Tensor, at::Tensor> kcenter_greedy_with(
    const at::Tensor& x,
    int64_t k,
    const std::optional<at::Tensor>& initial,
    std::optional<int64_t> first,
    c10::string_view metric,
    const std::optional<at::Tensor>& exclude) {
  const bool cosine = check_kcenter_greedy_inputs(x, k, initial, metric, exclude);
  const c10::DeviceGuard device_guard(x.device());
  const auto x_contiguous = x.contiguous();
  at::Tensor indices;
  auto min_sq = at::full(
      {x.size(0)}, std::numeric_limits<double>::infinity(), x.options().dtype(kcenter_greedy_distance_dtype(x)));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "kcenter_greedy", [&] {
    using Kernels = Backend<scalar_t>;
    const auto inverse_norms = cosine ? Kernels::row_inverse_norms(x_contiguous) : at::Tensor();
    auto plan = plan_kcenter_greedy(x_contiguous, k, initial, first, exclude, inverse_norms);
    indices = at::empty({k}, x.options().dtype(at::kLong));  // only now: k is known to be <= N
    if (x.size(0) == 0) {
      return;
    }
    if (cosine) {
      Kernels::template select_centers<true>(x_contiguous, inverse_norms, plan, min_sq, indices);
    } else {
      Kernels::template select_centers<false>(x_contiguous, inverse_norms, plan, min_sq, indices);
    }
  });
  finish_min_dist(min_sq, cosine);
  return {indices, min_sq};
}

}  // namespace torch_al::ops
