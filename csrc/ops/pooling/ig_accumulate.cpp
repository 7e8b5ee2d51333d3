#include "ops/pooling/ig_accumulate.h"

#include <ATen/MemoryOverlap.h>
#include <ATen/OpMathType.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "ops/pooling/pool_features_math.h"

namespace torch_al::ops {

void check_ig_accumulate_inputs(const at::Tensor& grad, int64_t steps, const at::Tensor& acc) {
  constexpr const char* op = "ig_accumulate";
  TORCH_CHECK_VALUE(steps > 0, op, ": steps must be a positive number of path steps K, got ", steps);
  TORCH_CHECK_VALUE(
      grad.dim() >= 3 && grad.dim() <= 3 + kMaxPoolSpatialDims,
      op, ": grad must be (S, B, C) or (S, B, C, *spatial) with at most ", kMaxPoolSpatialDims,
      " spatial dims, got shape ", grad.sizes());
  TORCH_CHECK_TYPE(
      at::isFloatingType(grad.scalar_type()),
      op, ": grad must be a floating tensor (float16, bfloat16, float32 or float64), got ",
      grad.scalar_type());
  TORCH_CHECK(
      acc.device() == grad.device(),
      op, ": acc is on ", acc.device(), " but grad is on ", grad.device());
  const auto acc_type = at::toOpMathType(grad.scalar_type());
  TORCH_CHECK_TYPE(
      acc.scalar_type() == acc_type,
      op, ": acc must be ", acc_type, " for ", grad.scalar_type(),
      " grad (the running sum over all K steps is kept at that precision), got ", acc.scalar_type());
  TORCH_CHECK_VALUE(
      acc.dim() == 2 && acc.size(0) == grad.size(1) && acc.size(1) == grad.size(2),
      op, ": acc must be (B, C) = (", grad.size(1), ", ", grad.size(2), ") for grad of shape ",
      grad.sizes(), ", got shape ", acc.sizes());
  // Storage checks: an acc whose elements alias each other (expanded) or alias grad would race
  // with, or feed back into, its own updates.
  TORCH_CHECK(
      at::has_internal_overlap(acc) != at::MemOverlap::Yes,
      op, ": acc has elements that share memory (e.g. an expanded tensor), got strides ",
      acc.strides());
  const auto overlap = at::get_overlap_status(acc, grad);
  TORCH_CHECK(
      overlap != at::MemOverlapStatus::Full && overlap != at::MemOverlapStatus::Partial,
      op, ": acc must not share memory with grad");
}

void ig_accumulate(const at::Tensor& grad, int64_t steps, at::Tensor& acc) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("torch_al::ig_accumulate", "")
                       .typed<void(const at::Tensor&, int64_t, at::Tensor&)>();
  op.call(grad, steps, acc);
}

TORCH_LIBRARY_FRAGMENT(torch_al, m) {
  m.set_python_module("torch_al._meta_registrations");
  m.def("ig_accumulate(Tensor grad, int steps, Tensor(a!) acc) -> ()");
}

}  // namespace torch_al::ops
