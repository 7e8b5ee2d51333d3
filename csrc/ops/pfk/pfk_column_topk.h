#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/string_view.h>

#include <optional>
#include <tuple>

#include "macros.h"

namespace torch_al::ops {

// The column-wise reduction of the pfk_topk kernel R (same arguments and combine rules): each
// allowed pool column n scores max_m R[m, n], its best match over the query rows, and the k best
// columns are returned best first (ties to the lower n), padded with (-inf, -1). With M = 0 every
// score is -inf. Streamed like pfk_topk, with the same precision modes and finiteness check.
// Returns (values[k], indices[k] int64).
TORCH_AL_API std::tuple<at::Tensor, at::Tensor> pfk_column_topk(
    at::TensorList query_z,
    at::TensorList pool_z,
    at::TensorList query_g,
    at::TensorList pool_g,
    const std::optional<at::Tensor>& pool_mask,
    int64_t k,
    c10::string_view combine = "product",
    c10::string_view precision = "exact",
    bool check_finite = true);

}  // namespace torch_al::ops
