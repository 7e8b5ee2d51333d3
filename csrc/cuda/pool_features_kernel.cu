// Fused pooling: out[dst(n, c)] = x[n, c, *spatial].mean(spatial), with one read of x and one
// write of the pooled value, accumulated in float32 for half/bfloat16 inputs.

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <limits>

#include "../pool_features.h"
#include "../pool_features_math.h"

namespace torch_al::ops {

namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 8;

template <typename acc_t>
__device__ acc_t warp_sum(acc_t value) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    value += __shfl_down_sync(0xffffffffu, value, offset);
  }
  return value;
}

// Spatial dims innermost in memory (NCHW): one warp per (n, c), lanes stride over the run.
template <typename scalar_t, typename acc_t>
__global__ void pool_spatial_inner_kernel(
    const scalar_t* __restrict__ x,
    int64_t rows_times_channels,
    int64_t channels,
    int64_t row_stride,
    int64_t channel_stride,
    SpatialGeometry g,
    PoolDestination<scalar_t> dst) {
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (warp >= rows_times_channels) {
    return;  // whole warps exit together, so the shuffles below stay full-warp
  }
  const int64_t n = warp / channels;
  const int64_t c = warp % channels;
  const acc_t partial =
      spatial_partial_sum<acc_t>(x + n * row_stride + c * channel_stride, g, lane, kWarp);
  const acc_t sum = warp_sum(partial);
  if (lane == 0) {
    dst.data[destination_offset(dst, n, c)] = static_cast<scalar_t>(spatial_mean(sum, g.count));
  }
}

// Channels innermost (channels_last): lanes take consecutive channels so reads coalesce, and the
// block's warps split the spatial positions.
template <typename scalar_t, typename acc_t>
__global__ void pool_channels_inner_kernel(
    const scalar_t* __restrict__ x,
    int64_t channel_tiles,
    int64_t channels,
    int64_t row_stride,
    int64_t channel_stride,
    SpatialGeometry g,
    PoolDestination<scalar_t> dst) {
  __shared__ acc_t partials[kWarpsPerBlock][kWarp];
  const int64_t n = blockIdx.x / channel_tiles;
  const int64_t c = (blockIdx.x % channel_tiles) * kWarp + threadIdx.x;
  acc_t partial = 0;
  if (c < channels) {
    partial = spatial_partial_sum<acc_t>(
        x + n * row_stride + c * channel_stride, g, threadIdx.y, kWarpsPerBlock);
  }
  partials[threadIdx.y][threadIdx.x] = partial;
  __syncthreads();
  if (threadIdx.y == 0 && c < channels) {
    acc_t sum = 0;
    for (int w = 0; w < kWarpsPerBlock; ++w) {
      sum += partials[w][threadIdx.x];
    }
    dst.data[destination_offset(dst, n, c)] = static_cast<scalar_t>(spatial_mean(sum, g.count));
  }
}

int64_t checked_grid(int64_t blocks) {
  TORCH_CHECK(
      blocks <= std::numeric_limits<int32_t>::max(),
      "pool_features: input too large for one launch (", blocks, " blocks)");
  return blocks;
}

void pool_into_cuda(const at::Tensor& x, at::Tensor& out, const int64_t* rows, int64_t column) {
  const int64_t channels = x.size(1);
  const auto g = make_spatial_geometry(x.sizes().slice(2), x.strides().slice(2));
  const bool channels_inner = channels_vary_fastest(x.stride(1), g);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "pool_features_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const PoolDestination<scalar_t> dst{
        out.mutable_data_ptr<scalar_t>(), out.stride(0), out.stride(1), column, rows};
    const scalar_t* data = x.const_data_ptr<scalar_t>();
    if (channels_inner) {
      const int64_t tiles = (channels + kWarp - 1) / kWarp;
      pool_channels_inner_kernel<scalar_t, acc_t>
          <<<checked_grid(x.size(0) * tiles), dim3(kWarp, kWarpsPerBlock), 0, stream>>>(
              data, tiles, channels, x.stride(0), x.stride(1), g, dst);
    } else {
      const int64_t warps = x.size(0) * channels;
      const int64_t blocks = (warps + kWarpsPerBlock - 1) / kWarpsPerBlock;
      pool_spatial_inner_kernel<scalar_t, acc_t>
          <<<checked_grid(blocks), kWarp * kWarpsPerBlock, 0, stream>>>(
              data, warps, channels, x.stride(0), x.stride(1), g, dst);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, CUDA, m) {
  m.impl("pool_features", [](const at::Tensor& x) { return pool_features_with(x, pool_into_cuda); });
  m.impl(
      "pool_features_into",
      [](const at::Tensor& x, at::Tensor& out, const at::Tensor& rows, int64_t column) {
        pool_features_into_with(x, out, rows, column, pool_into_cuda);
      });
}

}  // namespace torch_al::ops
