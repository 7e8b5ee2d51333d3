#include "ops/class_lines/class_line_order.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

namespace torch_al::ops {

void check_class_line_order_inputs(const at::Tensor& probabilities, int64_t k) {
  constexpr const char* kOp = "class_line_order";
  TORCH_CHECK(
      probabilities.dim() == 2 && probabilities.size(1) >= 1,
      kOp, ": probabilities must be (N, C) with C >= 1 classes, got shape ", probabilities.sizes());
  TORCH_CHECK(
      probabilities.scalar_type() == at::kFloat || probabilities.scalar_type() == at::kDouble,
      kOp, ": probabilities must be float32 or float64, got ", probabilities.scalar_type());
  TORCH_CHECK(
      0 <= k && k < probabilities.size(1),
      kOp, ": k must be a class in [0, ", probabilities.size(1), "), got ", k);
}

std::tuple<at::Tensor, at::Tensor> class_line_order(const at::Tensor& probabilities, int64_t k) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("torch_al::class_line_order", "")
                       .typed<decltype(class_line_order)>();
  return op.call(probabilities, k);
}

TORCH_LIBRARY_FRAGMENT(torch_al, m) {
  m.set_python_module("torch_al._meta_registrations");
  m.def("class_line_order(Tensor probabilities, int k) -> (Tensor order, Tensor position)");
}

}  // namespace torch_al::ops
