#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../pfk_topk.h"
#include "pfk_stream.h"

namespace torch_al::ops {

namespace {

std::tuple<at::Tensor, at::Tensor> pfk_topk_kernel(
    at::TensorList query_z,
    at::TensorList pool_z,
    at::TensorList query_g,
    at::TensorList pool_g,
    const std::optional<at::Tensor>& pool_mask,
    int64_t k,
    c10::string_view combine) {
  check_pfk_topk_inputs("pfk_topk", query_z, pool_z, query_g, pool_g, pool_mask, k, combine);
  const c10::cuda::CUDAGuard device_guard(query_z[0].device());
  check_pfk_topk_finite("pfk_topk", query_z, pool_z, query_g, pool_g);
  const auto plan = make_pfk_plan(query_z, pool_z, query_g, pool_g, combine);
  const auto mask = pool_mask.has_value() ? pool_mask->contiguous() : at::Tensor();
  return pfk_stream_cuda(plan, mask, k, PfkReduction::kPerQueryRow, query_z[0].options());
}

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, CUDA, m) {
  m.impl("pfk_topk", &pfk_topk_kernel);
}

}  // namespace torch_al::ops
