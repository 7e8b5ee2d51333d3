#pragma once

// The pool_features and pool_features_into entries every backend registers: validate, guard the
// device, allocate, then hand the pooling itself to the backend's `pool_into` (rows == nullptr
// means row n -> out row n). Plain functions, not templates: a backend has one pooling routine for
// every dtype, and the entry has nothing to dispatch on.

#include <ATen/core/Tensor.h>

#include <optional>

#include "ops/pooling/pool_features.h"

namespace torch_al::ops {

using PoolInto = void (*)(const at::Tensor& x, at::Tensor& out, const int64_t* rows, int64_t column);
at::Tensor pool_features_with(const at::Tensor& x, PoolInto pool_into);
void pool_features_into_with(
    const at::Tensor& x, at::Tensor& out, const std::optional<at::Tensor>& rows, int64_t column, PoolInto pool_into);

}  // namespace torch_al::ops
