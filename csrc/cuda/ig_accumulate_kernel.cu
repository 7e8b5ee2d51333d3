// Fused integrated-gradient accumulation. Pure-torch definition:
//   acc += grad.float().mean(dim=spatial).sum(dim=0) / steps
// with one read of grad, no temporaries, and each acc[b, c] owned by one warp (or one block
// column), so the result is deterministic and needs no atomics.

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <limits>

#include "../ig_accumulate.h"
#include "../ig_accumulate_math.h"

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

// Where acc[b, c] lives (acc may be any strided view, e.g. columns of a descriptor store).
struct AccLayout {
  int64_t row_stride;
  int64_t col_stride;
};

// Path positions innermost in memory (NCHW maps): one warp per (b, c), lanes stride over the
// S x spatial positions.
template <typename scalar_t, typename acc_t>
__global__ void ig_path_inner_kernel(
    const scalar_t* __restrict__ grad,
    int64_t batch_times_channels,
    int64_t channels,
    int64_t batch_stride,
    int64_t channel_stride,
    PathGeometry path,
    int64_t steps,
    acc_t* __restrict__ acc,
    AccLayout layout) {
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (warp >= batch_times_channels) {
    return;  // whole warps exit together, so the shuffles below stay full-warp
  }
  const int64_t b = warp / channels;
  const int64_t c = warp % channels;
  const acc_t partial =
      path_partial_sum<acc_t>(grad + b * batch_stride + c * channel_stride, path, lane, kWarp);
  const acc_t sum = warp_sum(partial);
  if (lane == 0) {
    acc_t& target = acc[b * layout.row_stride + c * layout.col_stride];
    target = ig_accumulated(target, sum, steps, path.spatial.count);
  }
}

// Channels innermost (channels_last maps, (S, B, C) linear-layer gradients): lanes take
// consecutive channels so reads coalesce, and the block's warps split the path positions.
template <typename scalar_t, typename acc_t>
__global__ void ig_channels_inner_kernel(
    const scalar_t* __restrict__ grad,
    int64_t channel_tiles,
    int64_t channels,
    int64_t batch_stride,
    int64_t channel_stride,
    PathGeometry path,
    int64_t steps,
    acc_t* __restrict__ acc,
    AccLayout layout) {
  __shared__ acc_t partials[kWarpsPerBlock][kWarp];
  const int64_t b = blockIdx.x / channel_tiles;
  const int64_t c = (blockIdx.x % channel_tiles) * kWarp + threadIdx.x;
  acc_t partial = 0;
  if (c < channels) {
    partial = path_partial_sum<acc_t>(
        grad + b * batch_stride + c * channel_stride, path, threadIdx.y, kWarpsPerBlock);
  }
  partials[threadIdx.y][threadIdx.x] = partial;
  __syncthreads();
  if (threadIdx.y == 0 && c < channels) {
    acc_t sum = 0;
    for (int w = 0; w < kWarpsPerBlock; ++w) {
      sum += partials[w][threadIdx.x];
    }
    acc_t& target = acc[b * layout.row_stride + c * layout.col_stride];
    target = ig_accumulated(target, sum, steps, path.spatial.count);
  }
}

int64_t checked_grid(int64_t blocks) {
  TORCH_CHECK(
      blocks <= std::numeric_limits<int32_t>::max(),
      "ig_accumulate: input too large for one launch (", blocks, " blocks)");
  return blocks;
}

void ig_accumulate_kernel(const at::Tensor& grad, int64_t steps, at::Tensor& acc) {
  check_ig_accumulate_inputs(grad, steps, acc);
  const c10::cuda::CUDAGuard device_guard(grad.device());
  if (grad.size(0) == 0 || acc.numel() == 0) {
    return;  // an empty chunk or batch adds nothing; an empty spatial extent still adds NaN
  }
  const auto path = make_path_geometry(grad.sizes(), grad.strides());
  const int64_t batch = grad.size(1);
  const int64_t channels = grad.size(2);
  const bool channels_inner = path_channels_vary_fastest(grad.stride(2), path);
  const AccLayout layout{acc.stride(0), acc.stride(1)};
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "ig_accumulate_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* data = grad.const_data_ptr<scalar_t>();
    acc_t* out = acc.mutable_data_ptr<acc_t>();
    if (channels_inner) {
      const int64_t tiles = (channels + kWarp - 1) / kWarp;
      ig_channels_inner_kernel<scalar_t, acc_t>
          <<<checked_grid(batch * tiles), dim3(kWarp, kWarpsPerBlock), 0, stream>>>(
              data, tiles, channels, grad.stride(1), grad.stride(2), path, steps, out, layout);
    } else {
      const int64_t warps = batch * channels;
      const int64_t blocks = (warps + kWarpsPerBlock - 1) / kWarpsPerBlock;
      ig_path_inner_kernel<scalar_t, acc_t>
          <<<checked_grid(blocks), kWarp * kWarpsPerBlock, 0, stream>>>(
              data, warps, channels, grad.stride(1), grad.stride(2), path, steps, out, layout);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, CUDA, m) {
  m.impl("ig_accumulate", &ig_accumulate_kernel);
}

}  // namespace torch_al::ops
