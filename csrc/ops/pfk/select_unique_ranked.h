#pragma once

#include <ATen/core/Tensor.h>

#include "macros.h"

namespace torch_al::ops {

// Fills up to `count` distinct pool indices rank by rank from per-row top-k lists (the output of
// pfk_topk): every row's best entry, rows ordered by value (desc, ties to the lower pool index),
// then every row's second-best, and so on, skipping indices already taken and empty slots
// (index < 0). Returns (count,) int64, padded with -1 when the lists hold fewer distinct indices;
// the caller re-queries with the taken points masked. Device-generic, no host synchronisation.
TORCH_AL_API at::Tensor select_unique_ranked(const at::Tensor& values, const at::Tensor& indices, int64_t count);

void check_select_unique_ranked_inputs(const at::Tensor& values, const at::Tensor& indices, int64_t count);

}  // namespace torch_al::ops
