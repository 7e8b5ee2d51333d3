#include "ops/pooling/pool_features.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/aminmax.h>
#include <ATen/ops/sort.h>
#include <torch/library.h>

namespace torch_al::ops {

namespace {
constexpr int64_t kMaxSpatialDims = 3;
}  // namespace

void check_pool_features_inputs(const char* op, const at::Tensor& x) {
  TORCH_CHECK(
      x.dim() >= 2 && x.dim() <= 2 + kMaxSpatialDims,
      op, ": x must be (N, C) or (N, C, *spatial) with at most ", kMaxSpatialDims,
      " spatial dims, got shape ", x.sizes());
  TORCH_CHECK(
      at::isFloatingType(x.scalar_type()),
      op, ": x must be a floating tensor (float16, bfloat16, float32 or float64), got ",
      x.scalar_type());
}

void check_pool_features_into_inputs(
    const at::Tensor& x, const at::Tensor& out, const std::optional<at::Tensor>& rows, int64_t column) {
  constexpr const char* op = "pool_features_into";
  check_pool_features_inputs(op, x);
  TORCH_CHECK(out.dim() == 2, op, ": out must be a 2-D store (P, L), got shape ", out.sizes());
  TORCH_CHECK(
      out.scalar_type() == x.scalar_type(),
      op, ": out dtype ", out.scalar_type(), " must equal x dtype ", x.scalar_type());
  TORCH_CHECK(
      out.device() == x.device(),
      op, ": out is on ", out.device(), " but x is on ", x.device());
  if (rows.has_value()) {
    TORCH_CHECK(
        rows->dim() == 1 && rows->scalar_type() == at::kLong,
        op, ": rows must be a 1-D int64 tensor, got shape ", rows->sizes(), " dtype ",
        rows->scalar_type());
    TORCH_CHECK(
        rows->device() == x.device(),
        op, ": rows is on ", rows->device(), " but x is on ", x.device());
    TORCH_CHECK(
        rows->size(0) == x.size(0),
        op, ": rows has ", rows->size(0), " entries but x has N=", x.size(0), " (x shape ",
        x.sizes(), ")");
  } else {
    TORCH_CHECK(
        out.size(0) == x.size(0),
        op, ": without rows, out must have x's N=", x.size(0), " rows (narrow the store), got out of shape ",
        out.sizes());
  }
  TORCH_CHECK(
      column >= 0 && column + x.size(1) <= out.size(1),
      op, ": columns [", column, ", ", column + x.size(1), ") of x (C=", x.size(1),
      ") do not fit out of shape ", out.sizes());
}

void check_pool_features_into_rows(const at::Tensor& rows, int64_t num_out_rows) {
  if (rows.numel() == 0) {
    return;
  }
  auto [lowest, highest] = at::aminmax(rows);
  const auto lo = lowest.item<int64_t>();
  const auto hi = highest.item<int64_t>();
  TORCH_CHECK(
      lo >= 0 && hi < num_out_rows,
      "pool_features_into: rows must lie in [0, ", num_out_rows, ") (out has ", num_out_rows,
      " rows), got values in [", lo, ", ", hi, "]");
  const auto sorted = std::get<0>(at::sort(rows));
  const bool distinct = rows.numel() < 2 || sorted.slice(0, 1).ne(sorted.slice(0, 0, -1)).all().item<bool>();
  TORCH_CHECK(distinct, "pool_features_into: rows must be distinct, got a repeated row index");
}

at::Tensor pool_features(const at::Tensor& x) {
  static auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("torch_al::pool_features", "").typed<decltype(pool_features)>();
  return op.call(x);
}

void pool_features_into(const at::Tensor& x, at::Tensor& out, const std::optional<at::Tensor>& rows, int64_t column) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("torch_al::pool_features_into", "")
                       .typed<void(const at::Tensor&, at::Tensor&, const std::optional<at::Tensor>&, int64_t)>();
  op.call(x, out, rows, column);
}

namespace detail {
at::Tensor _pool_features_backward(const at::Tensor& grad, c10::SymIntArrayRef input_shape) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("torch_al::_pool_features_backward", "")
                       .typed<decltype(_pool_features_backward)>();
  return op.call(grad, input_shape);
}
}  // namespace detail

TORCH_LIBRARY_FRAGMENT(torch_al, m) {
  m.set_python_module("torch_al._meta_registrations");
  m.def("pool_features(Tensor x) -> Tensor");
  m.def("pool_features_into(Tensor x, Tensor(a!) out, Tensor? rows, int column) -> ()");
  m.def("_pool_features_backward(Tensor grad, SymInt[] input_shape) -> Tensor");
}

}  // namespace torch_al::ops
