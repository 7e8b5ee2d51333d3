#include "ops/pfk/select_unique_ranked.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/full.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/where.h>
#include <torch/library.h>

#include <algorithm>
#include <optional>

namespace torch_al::ops {

void check_select_unique_ranked_inputs(const at::Tensor& values, const at::Tensor& indices, int64_t count) {
  constexpr const char* op = "select_unique_ranked";
  TORCH_CHECK(values.dim() == 2, op, ": values must be (M, k), got shape ", values.sizes());
  TORCH_CHECK(
      at::isFloatingType(values.scalar_type()),
      op, ": values must be a floating tensor, got ", values.scalar_type());
  TORCH_CHECK(
      indices.sizes() == values.sizes() && indices.scalar_type() == at::kLong,
      op, ": indices must be int64 of the shape of values ", values.sizes(), ", got shape ",
      indices.sizes(), " dtype ", indices.scalar_type());
  TORCH_CHECK(
      indices.device() == values.device(),
      op, ": indices is on ", indices.device(), " but values is on ", values.device());
  TORCH_CHECK(count >= 0, op, ": count must be >= 0, got ", count);
}

at::Tensor select_unique_ranked(const at::Tensor& values, const at::Tensor& indices, int64_t count) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("torch_al::select_unique_ranked", "")
                       .typed<decltype(select_unique_ranked)>();
  return op.call(values, indices, count);
}

namespace {

// Passed explicitly: a plain `true` would bind to the `dim` of the unstable overload.
constexpr std::optional<bool> kStable = true;

// Sorts and masks only, so it runs on every backend with no host synchronisation.
at::Tensor select_unique_ranked_composite(const at::Tensor& values, const at::Tensor& indices, int64_t count) {
  check_select_unique_ranked_inputs(values, indices, count);
  auto selected = at::full({count}, -1, indices.options());
  const int64_t length = values.numel();
  if (count == 0 || length == 0) {
    return selected;
  }
  // Fill order: rank-major (k, M); within a rank by value desc, ties to the lower pool index
  // (a stable sort by index, then a stable descending sort by value).
  const auto by_rank_values = values.t();
  const auto [rank_indices, by_index] = at::sort(indices.t(), kStable, /*dim=*/1);
  const auto order = std::get<1>(at::sort(by_rank_values.gather(1, by_index), kStable, 1, /*descending=*/true));
  const auto sequence = rank_indices.gather(1, order).reshape({-1});
  // Keep the first occurrence of each pool index: a stable sort by index keeps fill order
  // within equal indices, so the first of each run is the earliest in the fill order.
  const auto [sorted, position] = at::sort(sequence, kStable, /*dim=*/0);
  auto first = at::ones({length}, sequence.options().dtype(at::kBool));
  first.slice(0, 1).copy_(sorted.slice(0, 1).ne(sorted.slice(0, 0, -1)));
  first.logical_and_(sorted.ge(0));
  const auto keys = at::where(first, position, length);
  const int64_t taken = std::min(count, length);
  const auto chosen = std::get<0>(at::sort(keys)).slice(0, 0, taken);
  const auto found = chosen.lt(length);
  selected.slice(0, 0, taken).copy_(at::where(found, sequence.index_select(0, chosen.clamp_max(length - 1)), -1));
  return selected;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(torch_al, m) {
  m.set_python_module("torch_al._meta_registrations");
  m.def("select_unique_ranked(Tensor values, Tensor indices, int count) -> Tensor");
}

TORCH_LIBRARY_IMPL(torch_al, CompositeExplicitAutograd, m) {
  m.impl("select_unique_ranked", &select_unique_ranked_composite);
}

}  // namespace torch_al::ops
