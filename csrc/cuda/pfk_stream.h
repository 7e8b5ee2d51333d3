#pragma once

// CUDA streaming engine behind pfk_topk and pfk_column_topk.

#include <ATen/core/Tensor.h>

#include <tuple>

#include "../pfk_tiles.h"

namespace torch_al::ops {

// Streams the pool through the plan tile by tile on the current stream (cuBLAS products, then a
// fused epilogue kernel) and returns the running top-k as (values, indices): (M, k) per query
// row, (1, k) per pool column. `mask` is a contiguous (N,) bool tensor or undefined.
std::tuple<at::Tensor, at::Tensor> pfk_stream_cuda(
    const PfkPlan& plan, const at::Tensor& mask, int64_t k, PfkReduction reduction,
    const at::TensorOptions& options);

}  // namespace torch_al::ops
