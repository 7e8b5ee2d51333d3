#pragma once

// The `initial` argument of the greedy selection ops (kcenter_greedy, kmeanspp_factored): rows
// that are centers from the start, as a bool mask of N entries or a list of row indices.

#include <ATen/core/Tensor.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>

#include <optional>
#include <utility>

namespace torch_al::ops {

// Checks what can be checked without a host sync; `rows` is the op's (N, ...) input, named
// `rows_name` in the messages.
inline void check_initial_rows(
    const char* op, const std::optional<at::Tensor>& initial, const at::Tensor& rows, const char* rows_name) {
  if (!initial.has_value()) {
    return;
  }
  const auto& init = *initial;
  TORCH_CHECK(
      init.device() == rows.device(), op, ": initial is on ", init.device(), " but ", rows_name, " is on ",
      rows.device());
  const auto dtype = init.scalar_type();
  TORCH_CHECK(
      init.dim() == 1 && (dtype == at::kBool || dtype == at::kLong || dtype == at::kInt),
      op, ": initial must be a 1-D bool mask of N entries or a 1-D int32/int64 index list, got shape ",
      init.sizes(), " dtype ", dtype);
  TORCH_CHECK(
      dtype != at::kBool || init.size(0) == rows.size(0),
      op, ": initial mask has ", init.size(0), " entries but ", rows_name, " has N=", rows.size(0));
}

// (bool [N] mask of the initial rows, int64 scalar count of out-of-range indices), both on the
// device. Out-of-range indices land in a spare slot N and are counted, so the range check can
// share the caller's one host sync with its other counts.
inline std::pair<at::Tensor, at::Tensor> initial_rows_mask(
    const std::optional<at::Tensor>& initial, int64_t n, const at::TensorOptions& options) {
  auto covered = at::zeros({n + 1}, options.dtype(at::kBool));
  auto out_of_range = at::zeros({}, options.dtype(at::kLong));
  if (initial.has_value() && initial->scalar_type() == at::kBool) {
    covered.slice(0, 0, n).copy_(*initial);
  } else if (initial.has_value()) {
    const auto indices = initial->to(at::kLong);
    const auto bad = indices.lt(0).logical_or(indices.ge(n));
    out_of_range = bad.sum(at::kLong);
    covered.index_fill_(0, at::where(bad, n, indices), true);
  }
  return {covered.slice(0, 0, n), out_of_range};
}

}  // namespace torch_al::ops
