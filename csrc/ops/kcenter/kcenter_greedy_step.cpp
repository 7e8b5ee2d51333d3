#include "ops/kcenter/kcenter_greedy_step.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "ops/kcenter/kcenter_greedy.h"

namespace torch_al::ops {

namespace {

constexpr const char* kOp = "kcenter_greedy_step";

}  // namespace

bool check_kcenter_greedy_step_inputs(
    const at::Tensor& x,
    const at::Tensor& centers,
    const at::Tensor& min_sq,
    const at::Tensor& selectable,
    c10::string_view metric) {
  const bool cosine = check_kcenter_points(kOp, x, metric);
  const int64_t n = x.size(0);
  TORCH_CHECK(
      centers.dim() == 2 && centers.size(0) >= 1 && centers.size(1) == x.size(1),
      kOp, ": centers must be (S, D) with S >= 1 and D = ", x.size(1), " (x's), got shape ", centers.sizes());
  TORCH_CHECK(
      centers.scalar_type() == x.scalar_type(),
      kOp, ": centers must have x's dtype ", x.scalar_type(), ", got ", centers.scalar_type());
  const auto acc = kcenter_greedy_distance_dtype(x);
  TORCH_CHECK(
      min_sq.dim() == 1 && min_sq.size(0) == n && min_sq.scalar_type() == acc && min_sq.is_contiguous(),
      kOp, ": min_sq must be a contiguous ", acc, " tensor of N = ", n, " entries, got shape ", min_sq.sizes(),
      " dtype ", min_sq.scalar_type(), min_sq.is_contiguous() ? "" : " (not contiguous)");
  TORCH_CHECK(
      selectable.dim() == 1 && selectable.size(0) == n && selectable.scalar_type() == at::kBool,
      kOp, ": selectable must be a bool tensor of N = ", n, " entries, got shape ", selectable.sizes(), " dtype ",
      selectable.scalar_type());
  for (const auto& [name, tensor] :
       {std::pair<const char*, const at::Tensor*>{"centers", &centers},
        {"min_sq", &min_sq},
        {"selectable", &selectable}}) {
    TORCH_CHECK(
        tensor->device() == x.device(), kOp, ": ", name, " is on ", tensor->device(), " but x is on ", x.device());
  }
  return cosine;
}

std::tuple<at::Tensor, at::Tensor> kcenter_greedy_step(
    const at::Tensor& x,
    const at::Tensor& centers,
    at::Tensor& min_sq,
    const at::Tensor& selectable,
    c10::string_view metric) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("torch_al::kcenter_greedy_step", "")
                       .typed<decltype(kcenter_greedy_step)>();
  return op.call(x, centers, min_sq, selectable, metric);
}

TORCH_LIBRARY_FRAGMENT(torch_al, m) {
  m.set_python_module("torch_al._meta_registrations");
  m.def(
      "kcenter_greedy_step(Tensor x, Tensor centers, Tensor(a!) min_sq, Tensor selectable, "
      "str metric=\"euclidean\") -> (Tensor value, Tensor index)");
}

}  // namespace torch_al::ops
