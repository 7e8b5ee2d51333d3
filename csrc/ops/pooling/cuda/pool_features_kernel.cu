// Fused pooling: out[dst(n, c)] = x[n, c, *spatial].mean(spatial), with one read of x and one
// write of the pooled value, accumulated in float32 for half/bfloat16 inputs.

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "ops/pooling/cuda/channel_sums.cuh"
#include "ops/pooling/pool_features_entry.h"
#include "ops/pooling/pool_features_math.h"

namespace torch_al::ops {

namespace {

// out[dst(n, c)] = the mean of x[n, c, *spatial], read through x's strides.
template <typename scalar_t, typename acc_t>
struct PoolSummand {
  const scalar_t* __restrict__ x;
  int64_t row_stride;
  int64_t channel_stride;
  SpatialGeometry g;
  PoolDestination<scalar_t> dst;

  __device__ acc_t partial_sum(int64_t n, int64_t c, int64_t first, int64_t step) const {
    return spatial_partial_sum<acc_t>(x + n * row_stride + c * channel_stride, g, first, step);
  }
  __device__ void store(int64_t n, int64_t c, acc_t sum) const {
    dst.data[destination_offset(dst, n, c)] = static_cast<scalar_t>(spatial_mean(sum, g.count));
  }
};

void pool_into_cuda(const at::Tensor& x, at::Tensor& out, const int64_t* rows, int64_t column) {
  const auto g = make_spatial_geometry(x.sizes().slice(2), x.strides().slice(2));
  const bool channels_inner = channels_vary_fastest(x.stride(1), g);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "pool_features_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const PoolDestination<scalar_t> dst{out.mutable_data_ptr<scalar_t>(), out.stride(0), out.stride(1), column, rows};
    const PoolSummand<scalar_t, acc_t> summand{x.const_data_ptr<scalar_t>(), x.stride(0), x.stride(1), g, dst};
    launch_channel_sums<acc_t>("pool_features", x.size(0), x.size(1), channels_inner, summand, stream);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, CUDA, m) {
  m.impl("pool_features", [](const at::Tensor& x) { return pool_features_with(x, pool_into_cuda); });
  m.impl(
      "pool_features_into",
      [](const at::Tensor& x, at::Tensor& out, const std::optional<at::Tensor>& rows, int64_t column) {
        pool_features_into_with(x, out, rows, column, pool_into_cuda);
      });
}

}  // namespace torch_al::ops
