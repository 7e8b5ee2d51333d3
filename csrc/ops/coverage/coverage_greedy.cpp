#include "ops/coverage/coverage_greedy.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <cmath>

namespace torch_al::ops {

namespace {

constexpr const char* kOp = "coverage_greedy";

void check_on_device(const char* name, const at::Tensor& tensor, const at::Tensor& points) {
  TORCH_CHECK(
      tensor.device() == points.device(), kOp, ": ", name, " is on ", tensor.device(), " but points is on ",
      points.device());
}

}  // namespace

void check_coverage_greedy_inputs(
    const at::Tensor& points,
    double radius,
    int64_t count,
    const std::optional<at::Tensor>& initial,
    const std::optional<at::Tensor>& exclude) {
  TORCH_CHECK(points.dim() == 2, kOp, ": points must be (N, D), got shape ", points.sizes());
  TORCH_CHECK(
      points.scalar_type() == at::kFloat || points.scalar_type() == at::kDouble,
      kOp, ": points must be float32 or float64, got ", points.scalar_type());
  TORCH_CHECK(std::isfinite(radius) && radius >= 0, kOp, ": radius must be finite and >= 0, got ", radius);
  TORCH_CHECK(count >= 0, kOp, ": count must be >= 0, got ", count);
  const int64_t n = points.size(0);
  if (initial.has_value()) {
    const bool mask = initial->scalar_type() == at::kBool;
    TORCH_CHECK(
        initial->dim() == 1 && (mask || initial->scalar_type() == at::kLong),
        kOp, ": initial must be a 1-D bool mask of N entries or a 1-D int64 index list, got shape ", initial->sizes(),
        " dtype ", initial->scalar_type());
    TORCH_CHECK(
        !mask || initial->size(0) == n, kOp, ": initial mask has ", initial->size(0), " entries but points has N=", n);
    check_on_device("initial", *initial, points);
  }
  if (exclude.has_value()) {
    TORCH_CHECK(
        exclude->dim() == 1 && exclude->scalar_type() == at::kBool,
        kOp, ": exclude must be a 1-D bool mask, got shape ", exclude->sizes(), " dtype ", exclude->scalar_type());
    TORCH_CHECK(exclude->size(0) == n, kOp, ": exclude has ", exclude->size(0), " entries but points has N=", n);
    check_on_device("exclude", *exclude, points);
  }
}

std::tuple<at::Tensor, at::Tensor> coverage_greedy(
    const at::Tensor& points,
    double radius,
    int64_t count,
    const std::optional<at::Tensor>& initial,
    const std::optional<at::Tensor>& exclude) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("torch_al::coverage_greedy", "")
                       .typed<decltype(coverage_greedy)>();
  return op.call(points, radius, count, initial, exclude);
}

TORCH_LIBRARY_FRAGMENT(torch_al, m) {
  m.set_python_module("torch_al._meta_registrations");
  m.def(
      "coverage_greedy(Tensor points, float radius, int count, Tensor? initial=None, Tensor? exclude=None) "
      "-> (Tensor picks, Tensor gains)");
}

}  // namespace torch_al::ops
