#pragma once

// The class_line_order entry every backend registers: validate shapes, guard the device, make the
// input contiguous, allocate the outputs, then run the backend. A backend supplies `Backend<scalar_t>` with
//   static void order(const at::Tensor& probabilities, int64_t k, at::Tensor& order, at::Tensor& position);
// which writes class k's line of the contiguous probabilities[N, C] (N >= 1) into order and position,
// and raises "probabilities must be finite" (checked as it reads the rows: one host synchronisation
// on a device) before returning when a value is NaN or inf.

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <c10/core/DeviceGuard.h>

#include <tuple>

#include "ops/class_lines/class_line_order.h"

namespace torch_al::ops {

template <template <typename> class Backend>
std::tuple<at::Tensor, at::Tensor> class_line_order_with(const at::Tensor& probabilities, int64_t k) {
  check_class_line_order_inputs(probabilities, k);
  const c10::DeviceGuard device_guard(probabilities.device());
  const int64_t n = probabilities.size(0);
  auto order = at::empty({n}, probabilities.options().dtype(at::kLong));
  auto position = at::empty({n}, probabilities.options().dtype(at::kLong));
  if (n == 0) {
    return {order, position};
  }
  const auto rows = probabilities.contiguous();
  AT_DISPATCH_FLOATING_TYPES(
      rows.scalar_type(), "class_line_order", [&] { Backend<scalar_t>::order(rows, k, order, position); });
  return {order, position};
}

}  // namespace torch_al::ops
