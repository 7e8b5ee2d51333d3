#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/string_view.h>

#include <optional>
#include <tuple>

#include "macros.h"

namespace torch_al::ops {

// Per query row m, the k largest kernel values R[m, n] over the pool columns n that pool_mask does
// not exclude, best first (ties to the lower n), padded with (-inf, -1). With a_j = query_z[j][m] .
// pool_z[j][n] and b_j the same for the gradients, R is: "product" (Σ a_j)(Σ b_j), "fisher"
// Σ a_j b_j, "sum" Σ (a_j + b_j); with no gradients Σ a_j. The M x N matrix is never built.
// precision "exact" computes every product in the descriptors' dtype; "fast" screens the pool
// with bfloat16 products (float32 on CUDA; elsewhere the screen is exact) for the best
// pfk_screen_width(k, N) columns, then re-scores those exactly (see pfk_rescore.h).
// check_finite false skips the finiteness pass and its host synchronisation (for a caller that
// has validated the descriptors: a NaN or inf then decides picks without an error).
// Returns (values[M, k], indices[M, k] int64).
TORCH_AL_API std::tuple<at::Tensor, at::Tensor> pfk_topk(
    at::TensorList query_z,
    at::TensorList pool_z,
    at::TensorList query_g,
    at::TensorList pool_g,
    const std::optional<at::Tensor>& pool_mask,
    int64_t k,
    c10::string_view combine = "product",
    c10::string_view precision = "exact",
    bool check_finite = true);

// The arguments pfk_topk and pfk_column_topk share, in their schemas' order; the tensors are
// borrowed from the caller for the duration of one call.
struct PfkArgs {
  at::TensorList query_z;
  at::TensorList pool_z;
  at::TensorList query_g;
  at::TensorList pool_g;
  const std::optional<at::Tensor>& pool_mask;
  int64_t k;
  c10::string_view combine;
  c10::string_view precision;
  bool check_finite;
};

// Validation shared by every backend of pfk_topk and pfk_column_topk (the Python fake mirrors it):
// list lengths, ranks, per-scale shapes, dtypes, devices, the mask, k >= 0, the combine and
// precision names.
void check_pfk_topk_inputs(const char* op, const PfkArgs& args);

// Value check: every descriptor is finite. Costs one pass over the inputs and, on CUDA, one host
// synchronisation; a NaN would otherwise silently decide the argmax.
void check_pfk_topk_finite(const char* op, const PfkArgs& args);

}  // namespace torch_al::ops
