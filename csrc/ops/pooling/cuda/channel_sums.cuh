#pragma once

// The reduction pool_features and ig_accumulate share on CUDA: for every (row, channel) of an
// input, sum a strided run of positions and store the sum. Each sum is owned by one warp or one
// block column, so results are deterministic and need no atomics.
//
// An op describes itself with a `summand`, a trivially copyable struct with
//   __device__ acc_t partial_sum(int64_t row, int64_t channel, int64_t first, int64_t step) const;
//     // the sum of the positions first, first + step, ... of (row, channel)
//   __device__ void store(int64_t row, int64_t channel, acc_t sum) const;

#include <c10/cuda/CUDAException.h>
#include <c10/util/Exception.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <limits>

namespace torch_al::ops {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 8;

template <typename acc_t>
__device__ acc_t warp_sum(acc_t value) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    value += __shfl_down_sync(0xffffffffu, value, offset);
  }
  return value;
}

// Positions innermost in memory (NCHW): one warp per (row, channel), lanes stride over the run.
template <typename acc_t, typename Summand>
__global__ void positions_inner_sums_kernel(int64_t rows_times_channels, int64_t channels, Summand summand) {
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (warp >= rows_times_channels) {
    return;  // whole warps exit together, so the shuffles below stay full-warp
  }
  const int64_t row = warp / channels;
  const int64_t channel = warp % channels;
  const acc_t sum = warp_sum(summand.partial_sum(row, channel, lane, kWarp));
  if (lane == 0) {
    summand.store(row, channel, sum);
  }
}

// Channels innermost (channels_last): lanes take consecutive channels so reads coalesce, and the
// block's warps split the positions.
template <typename acc_t, typename Summand>
__global__ void channels_inner_sums_kernel(int64_t channel_tiles, int64_t channels, Summand summand) {
  __shared__ acc_t partials[kWarpsPerBlock][kWarp];
  const int64_t row = blockIdx.x / channel_tiles;
  const int64_t channel = (blockIdx.x % channel_tiles) * kWarp + threadIdx.x;
  acc_t partial = 0;
  if (channel < channels) {
    partial = summand.partial_sum(row, channel, threadIdx.y, kWarpsPerBlock);
  }
  partials[threadIdx.y][threadIdx.x] = partial;
  __syncthreads();
  if (threadIdx.y == 0 && channel < channels) {
    acc_t sum = 0;
    for (int w = 0; w < kWarpsPerBlock; ++w) {
      sum += partials[w][threadIdx.x];
    }
    summand.store(row, channel, sum);
  }
}

inline int64_t checked_grid(const char* op, int64_t blocks) {
  TORCH_CHECK(
      blocks <= std::numeric_limits<int32_t>::max(),
      op, ": input too large for one launch (", blocks, " blocks)");
  return blocks;
}

// Launches the kernel for the input's layout on `stream`; rows and channels are > 0.
template <typename acc_t, typename Summand>
void launch_channel_sums(
    const char* op, int64_t rows, int64_t channels, bool channels_inner, const Summand& summand, cudaStream_t stream) {
  if (channels_inner) {
    const int64_t tiles = (channels + kWarp - 1) / kWarp;
    channels_inner_sums_kernel<acc_t, Summand>
        <<<checked_grid(op, rows * tiles), dim3(kWarp, kWarpsPerBlock), 0, stream>>>(tiles, channels, summand);
  } else {
    const int64_t warps = rows * channels;
    const int64_t blocks = (warps + kWarpsPerBlock - 1) / kWarpsPerBlock;
    positions_inner_sums_kernel<acc_t, Summand>
        <<<checked_grid(op, blocks), kWarp * kWarpsPerBlock, 0, stream>>>(warps, channels, summand);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace torch_al::ops
