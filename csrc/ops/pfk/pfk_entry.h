#pragma once

// The entry of pfk_topk and pfk_column_topk, the device-generic half of both. The two ops take the
// same arguments and run the same path (validate, guard the device, check finiteness, plan the
// tiles, stream); they differ only in the reduction, and each backend brings its streaming engine.

#include <ATen/core/Tensor.h>

#include <tuple>

#include "ops/pfk/pfk_plan.h"
#include "ops/pfk/pfk_topk.h"

namespace torch_al::ops {

// A backend's streaming engine: streams the pool through the plan tile by tile and merges every
// tile into the running best-first top-k lists `values` / `indices`, (M, k) per query row or (1, k)
// per pool column, which arrive filled with (-inf, -1) and non-empty. `mask` is a contiguous (N,)
// bool tensor or undefined.
using PfkStream = void (*)(
    const PfkPlan& plan, const at::Tensor& mask, PfkReduction reduction, at::Tensor& values, at::Tensor& indices);

// cpu/pfk_blas_engine.cpp: BLAS products, then a fused epilogue parallel over rows; or, where
// pfk_brgemm_applies says so, cpu/pfk_brgemm_engine.cpp's per-thread GEMM blocks.
void pfk_stream_cpu(
    const PfkPlan& plan, const at::Tensor& mask, PfkReduction reduction, at::Tensor& values, at::Tensor& indices);
// cuda/pfk_cuda_engine.cu: cuBLAS products, then a fused epilogue kernel on the current stream.
void pfk_stream_cuda(
    const PfkPlan& plan, const at::Tensor& mask, PfkReduction reduction, at::Tensor& values, at::Tensor& indices);

// The whole op on any device with the given engine: (values[M, k], indices[M, k]) per query row,
// (values[k], indices[k]) per pool column.
std::tuple<at::Tensor, at::Tensor> pfk_stream_with(const PfkArgs& args, PfkReduction reduction, PfkStream stream);

// The kernel each backend registers, taking the schema's arguments: pfk_topk is
// pfk_kernel<PfkReduction::kPerQueryRow, engine>, pfk_column_topk the kPerPoolColumn one.
template <PfkReduction reduction, PfkStream stream>
std::tuple<at::Tensor, at::Tensor> pfk_kernel(
    at::TensorList query_z,
    at::TensorList pool_z,
    at::TensorList query_g,
    at::TensorList pool_g,
    const std::optional<at::Tensor>& pool_mask,
    int64_t k,
    c10::string_view combine,
    c10::string_view precision,
    bool check_finite) {
  return pfk_stream_with(
      {query_z, pool_z, query_g, pool_g, pool_mask, k, combine, precision, check_finite}, reduction, stream);
}

}  // namespace torch_al::ops
