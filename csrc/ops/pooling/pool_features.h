#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include "macros.h"

namespace torch_al::ops {

// Mean of x[N, C, *spatial] over its 0..3 trailing dims -> [N, C]; differentiable.
TORCH_AL_API at::Tensor pool_features(const at::Tensor& x);

// Pools x and writes the result into out[rows, column:column + C] in the same pass; without rows,
// sample n goes to out row n (out then has exactly N rows: pass a narrowed view of a larger store).
TORCH_AL_API void pool_features_into(
    const at::Tensor& x, at::Tensor& out, const std::optional<at::Tensor>& rows, int64_t column);

// Validation shared by every backend (the Python fake mirrors it), so eager, compiled and C++
// callers see the same errors.
void check_pool_features_inputs(const char* op, const at::Tensor& x);
void check_pool_features_into_inputs(
    const at::Tensor& x, const at::Tensor& out, const std::optional<at::Tensor>& rows, int64_t column);
// Value checks on rows (in range, distinct); on CUDA this costs one host sync, the price of
// guaranteeing that a bad call writes nothing. Calls without rows have no values to check.
void check_pool_features_into_rows(const at::Tensor& rows, int64_t num_out_rows);

namespace detail {
at::Tensor _pool_features_backward(const at::Tensor& grad, c10::SymIntArrayRef input_shape);
}  // namespace detail

}  // namespace torch_al::ops
