#pragma once

// The kmeanspp_factored entry every backend registers: validate, guard the device, compute the
// squared norms, plan, place the first pick, then run the backend's sampling loop. A backend
// supplies `Backend<scalar_t>` with
//   static at::Tensor squared_norms(const at::Tensor& a, const at::Tensor& b);  // float64 [N]
//   static void sample(a, b, squared_norms, uniforms, plan, indices, pick_sq, first_draw);
// where sample fills indices[t] and pick_sq[t] for t >= first_draw.

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <c10/core/DeviceGuard.h>

#include <limits>
#include <optional>
#include <tuple>

#include "ops/kmeanspp/kmeanspp_factored.h"

namespace torch_al::ops {

template <template <typename> class Backend>
std::tuple<at::Tensor, at::Tensor> kmeanspp_factored_with(
    const at::Tensor& a, const at::Tensor& b, const at::Tensor& uniforms, const std::optional<at::Tensor>& initial) {
  check_kmeanspp_factored_inputs(a, b, uniforms, initial);
  const c10::DeviceGuard device_guard(a.device());
  const auto a_contiguous = a.contiguous();
  const auto b_contiguous = b.contiguous();
  const auto draws = uniforms.contiguous();
  const int64_t picks = uniforms.size(0);
  at::Tensor indices;
  at::Tensor pick_sq;
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "kmeanspp_factored", [&] {
    using Kernels = Backend<scalar_t>;
    const auto squared_norms = Kernels::squared_norms(a_contiguous, b_contiguous);
    auto plan = plan_kmeanspp_factored(a_contiguous, b_contiguous, draws, initial, squared_norms);
    indices = at::empty({picks}, a.options().dtype(at::kLong));  // only now: picks <= N is checked
    pick_sq = at::empty({picks}, a.options().dtype(at::kDouble));
    if (picks == 0) {
      return;
    }
    if (!plan.has_initial) {
      // BADGE's released code starts from the largest embedding; argmax takes the first maximum.
      const auto first = indices.slice(0, 0, 1);
      first.copy_(squared_norms.argmax().view({1}));
      pick_sq.select(0, 0).fill_(std::numeric_limits<double>::infinity());
      plan.selectable.index_fill_(0, first, false);
      plan.min_sq.index_fill_(0, first, 0.0);
    }
    Kernels::sample(a_contiguous, b_contiguous, squared_norms, draws, plan, indices, pick_sq, plan.has_initial ? 0 : 1);
  });
  return {indices, pick_sq};
}

}  // namespace torch_al::ops
