#pragma once

// A helper of the ops' input checks, which gather every count they report into one host sync.

#include <ATen/core/Tensor.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/full.h>
#include <ATen/ops/where.h>

#include <utility>

namespace torch_al::ops {

// (count of rows flagged, first flagged row or N) of a bool [N] tensor, as two int64 scalars on
// its device.
inline std::pair<at::Tensor, at::Tensor> count_and_first(const at::Tensor& flagged) {
  const int64_t n = flagged.size(0);
  const auto rows = at::arange(n, flagged.options().dtype(at::kLong));
  const auto sentinel = at::full({1}, n, rows.options());
  const auto first = at::cat({at::where(flagged, rows, n), sentinel}).min();
  return {flagged.sum(at::kLong), first};
}

}  // namespace torch_al::ops
