#pragma once

// One farthest-first pass over the points on CUDA, shared by the kernels of kcenter_greedy and
// kcenter_greedy_step. In pure torch, one pass with center rows c[i] is
//   min_sq = torch.minimum(min_sq, ((x - c) ** 2).sum(1))
//   best = torch.where(selectable, min_sq, -1).argmax()   # first maximum: ties to the lower index
// (for the cosine metric both sides are first scaled by their inverse norms). Here it is one read
// of x: a warp per row computes the distance, lowers min_sq and keeps the farthest selectable
// row; blocks merge their warps' bests, and a one-block kernel merges the blocks' bests into
// device memory, where the next pass can read its center: no host sync per pass.

#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include "ops/kcenter/kcenter_greedy_math.h"
#include "ops/lane_sums/warp_lane_sum.cuh"

namespace torch_al::ops {

namespace kcenter_pass {

constexpr int kWarp = 32;
static_assert(kWarp == kKCenterLanes, "a warp's lanes are the summation lanes of kcenter_greedy_math.h");
constexpr int kWarpsPerBlock = 8;
constexpr int kBlockThreads = kWarp * kWarpsPerBlock;
constexpr int kPickThreads = 256;

// Rows handled by warp `warp` of block `block`: a grid-stride loop, in increasing row order.
__device__ inline int64_t first_row() {
  return static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
}
__device__ inline int64_t row_step() {
  return static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
}

template <typename scalar_t, typename acc_t>
__global__ void row_inverse_norms_kernel(
    const scalar_t* __restrict__ x, int64_t n, int64_t dims, acc_t* __restrict__ scale) {
  const int lane = threadIdx.x % kWarp;
  for (int64_t i = first_row(); i < n; i += row_step()) {
    const scalar_t* row = x + i * dims;
    const acc_t squared = warp_lane_sum<acc_t>(dims, lane, [&](int64_t d) { return squared_value<acc_t>(row[d]); });
    if (lane == 0) {
      scale[i] = inverse_norm(squared);
    }
  }
}

// Point i's center is row centers[i * center_stride] of center_rows; scales are null for the
// Euclidean metric.
template <typename scalar_t, typename acc_t, bool kScaled>
__global__ void update_and_block_argmax_kernel(
    const scalar_t* __restrict__ x,
    int64_t n,
    int64_t dims,
    const acc_t* __restrict__ x_scale,
    const scalar_t* __restrict__ center_rows,
    const acc_t* __restrict__ center_scale,
    const int64_t* __restrict__ centers,
    int64_t center_stride,
    acc_t* __restrict__ min_sq,
    const bool* __restrict__ selectable,
    KCenterCandidate<acc_t>* __restrict__ block_best) {
  __shared__ KCenterCandidate<acc_t> warp_best[kWarpsPerBlock];
  const int lane = threadIdx.x % kWarp;
  // Each warp visits its rows in increasing order, so a strict > keeps the lowest index on ties.
  KCenterCandidate<acc_t> best = no_candidate<acc_t>();
  for (int64_t i = first_row(); i < n; i += row_step()) {
    const int64_t c = centers[i * center_stride];
    const scalar_t* row = x + i * dims;
    const scalar_t* center = center_rows + c * dims;
    const acc_t si = kScaled ? x_scale[i] : acc_t(1);
    const acc_t sc = kScaled ? center_scale[c] : acc_t(1);
    const acc_t squared = warp_lane_sum<acc_t>(
        dims, lane, [&](int64_t d) { return squared_difference<kScaled>(row[d], center[d], si, sc); });
    if (lane == 0) {
      const acc_t min_i = lower_min(min_sq + i, squared);
      if (selectable[i] && min_i > best.value) {
        best = {min_i, i};
      }
    }
  }
  if (lane == 0) {
    warp_best[threadIdx.x / kWarp] = best;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kWarpsPerBlock; ++w) {
      if (beats(warp_best[w], best)) {
        best = warp_best[w];
      }
    }
    block_best[blockIdx.x] = best;
  }
}

// Second stage: the best of the blocks' bests goes to *index (and *value when not null); with
// `take` set it is a pick, and leaves that selectable set.
template <typename acc_t>
__global__ void best_of_blocks_kernel(
    const KCenterCandidate<acc_t>* __restrict__ block_best,
    int64_t count,
    int64_t* __restrict__ index,
    acc_t* __restrict__ value,
    bool* __restrict__ take) {
  __shared__ KCenterCandidate<acc_t> best[kPickThreads];
  KCenterCandidate<acc_t> mine = no_candidate<acc_t>();
  for (int64_t b = threadIdx.x; b < count; b += kPickThreads) {
    if (beats(block_best[b], mine)) {
      mine = block_best[b];
    }
  }
  best[threadIdx.x] = mine;
  __syncthreads();
  for (int half = kPickThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half && beats(best[threadIdx.x + half], best[threadIdx.x])) {
      best[threadIdx.x] = best[threadIdx.x + half];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    *index = best[0].index;
    if (value != nullptr) {
      *value = best[0].value;
    }
    if (take != nullptr) {
      CUDA_KERNEL_ASSERT(best[0].index >= 0);  // k <= selectable points was checked on the host
      take[best[0].index] = false;
    }
  }
}

}  // namespace kcenter_pass

// 1 / ||x_i|| per row, in the lane order of kcenter_greedy_math.h: the cosine scale every
// k-center backend supplies (kcenter_greedy_entry.h, kcenter_greedy_step_entry.h); backends inherit it.
template <typename scalar_t>
struct CudaRowInverseNorms {
  static at::Tensor row_inverse_norms(const at::Tensor& x) {
    using acc_t = at::opmath_type<scalar_t>;
    using namespace kcenter_pass;
    at::Tensor out = at::empty({x.size(0)}, x.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    if (x.size(0) > 0) {
      row_inverse_norms_kernel<scalar_t, acc_t>
          <<<warp_per_row_grid(x.size(0), kWarpsPerBlock), kBlockThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
              x.const_data_ptr<scalar_t>(), x.size(0), x.size(1), out.mutable_data_ptr<acc_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    return out;
  }
};

// Launches passes over one set of points (x[n, dims] with its scale, min_sq, selectable) against
// rows of center_rows; owns the blocks' partial bests.
template <typename scalar_t, bool kScaled>
class KCenterPasses {
 public:
  using acc_t = at::opmath_type<scalar_t>;
  using Candidate = KCenterCandidate<acc_t>;

  KCenterPasses(
      const at::Tensor& x,
      const at::Tensor& x_scale,
      const at::Tensor& center_rows,
      const at::Tensor& center_scale,
      at::Tensor& min_sq,
      const bool* selectable)
      : x_(x),
        x_scale_(kScaled ? x_scale.const_data_ptr<acc_t>() : nullptr),
        center_rows_(center_rows.const_data_ptr<scalar_t>()),
        center_scale_(kScaled ? center_scale.const_data_ptr<acc_t>() : nullptr),
        min_sq_(min_sq.mutable_data_ptr<acc_t>()),
        selectable_(selectable),
        blocks_(warp_per_row_grid(x.size(0), kcenter_pass::kWarpsPerBlock)),
        block_best_storage_(
            at::empty({blocks_ * static_cast<int64_t>(sizeof(Candidate))}, x.options().dtype(at::kByte))) {}

  // One pass with the centers centers[i * stride]; with `index` set, the farthest selectable
  // point is written there (its value too when `value` is set), and taken out of `take`.
  void run(const int64_t* centers, int64_t stride, int64_t* index, acc_t* value = nullptr, bool* take = nullptr) {
    using namespace kcenter_pass;
    const auto stream = c10::cuda::getCurrentCUDAStream();
    auto* block_best = reinterpret_cast<Candidate*>(block_best_storage_.mutable_data_ptr());
    update_and_block_argmax_kernel<scalar_t, acc_t, kScaled><<<blocks_, kBlockThreads, 0, stream>>>(
        x_.const_data_ptr<scalar_t>(), x_.size(0), x_.size(1), x_scale_, center_rows_, center_scale_, centers, stride,
        min_sq_, selectable_, block_best);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    if (index != nullptr) {
      best_of_blocks_kernel<acc_t><<<1, kPickThreads, 0, stream>>>(block_best, blocks_, index, value, take);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  }

 private:
  const at::Tensor& x_;
  const acc_t* x_scale_;
  const scalar_t* center_rows_;
  const acc_t* center_scale_;
  acc_t* min_sq_;
  const bool* selectable_;
  int64_t blocks_;
  at::Tensor block_best_storage_;
};

}  // namespace torch_al::ops
