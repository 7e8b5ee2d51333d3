// Fused k-center greedy step. In pure torch, one step with center c is
//   min_sq = torch.minimum(min_sq, ((x - x[c]) ** 2).sum(1))
//   pick = torch.where(selectable, min_sq, -1).argmax()   # first maximum: ties to the lower index
// (for the cosine metric the rows of x are first scaled by their inverse norms). Here it is one
// read of x: a warp per row computes the distance, lowers min_sq and keeps the farthest selectable
// row; blocks merge their warps' bests, and a one-block kernel merges the blocks' bests and
// writes the pick into device memory, where the next step reads its center: no host sync per pick.

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>

#include "../kcenter_greedy.h"
#include "../kcenter_greedy_entry.h"
#include "../kcenter_greedy_math.h"
#include "warp_lane_sum.cuh"

namespace torch_al::ops {

namespace {

constexpr int kWarp = 32;
static_assert(kWarp == kKCenterLanes, "a warp's lanes are the summation lanes of kcenter_greedy_math.h");
constexpr int kWarpsPerBlock = 8;
constexpr int kBlockThreads = kWarp * kWarpsPerBlock;
constexpr int kPickThreads = 256;

// Rows handled by warp `warp` of block `block`: a grid-stride loop, in increasing row order.
__device__ int64_t first_row() {
  return static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
}
__device__ int64_t row_step() {
  return static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
}

template <typename scalar_t, typename acc_t>
__global__ void row_inverse_norms_kernel(
    const scalar_t* __restrict__ x, int64_t n, int64_t dims, acc_t* __restrict__ scale) {
  const int lane = threadIdx.x % kWarp;
  for (int64_t i = first_row(); i < n; i += row_step()) {
    const scalar_t* row = x + i * dims;
    const acc_t squared =
        warp_lane_sum<acc_t>(dims, lane, [&](int64_t d) { return squared_value<acc_t>(row[d]); });
    if (lane == 0) {
      scale[i] = inverse_norm(squared);
    }
  }
}

template <typename scalar_t, typename acc_t, bool kScaled>
__global__ void update_and_block_argmax_kernel(
    const scalar_t* __restrict__ x,
    int64_t n,
    int64_t dims,
    const acc_t* __restrict__ scale,
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
    const scalar_t* center = x + c * dims;
    const acc_t si = kScaled ? scale[i] : acc_t(1);
    const acc_t sc = kScaled ? scale[c] : acc_t(1);
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

// Second stage: the best of the blocks' bests becomes the pick and leaves the selectable set.
template <typename acc_t>
__global__ void pick_kernel(
    const KCenterCandidate<acc_t>* __restrict__ block_best,
    int64_t count,
    int64_t* __restrict__ pick,
    bool* __restrict__ selectable) {
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
    CUDA_KERNEL_ASSERT(best[0].index >= 0);  // k <= selectable points was checked on the host
    *pick = best[0].index;
    selectable[best[0].index] = false;
  }
}

// The per-dtype kernels kcenter_greedy_with runs (see kcenter_greedy_entry.h).
template <typename scalar_t>
struct CudaKCenterGreedy {
  static at::Tensor row_inverse_norms(const at::Tensor& x) {
    using acc_t = at::opmath_type<scalar_t>;
    at::Tensor out = at::empty({x.size(0)}, x.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    if (x.size(0) > 0) {
      row_inverse_norms_kernel<scalar_t, acc_t>
          <<<warp_per_row_grid(x.size(0), kWarpsPerBlock), kBlockThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
              x.const_data_ptr<scalar_t>(), x.size(0), x.size(1), out.mutable_data_ptr<acc_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    return out;
  }

  // Runs the picks: min_sq[N] and indices[k] are filled in place, plan.selectable is consumed.
  template <bool kScaled>
  static void select_centers(
      const at::Tensor& x,
      const at::Tensor& inverse_norms,
      KCenterGreedyPlan& plan,
      at::Tensor& min_sq,
      at::Tensor& indices) {
    using acc_t = at::opmath_type<scalar_t>;
    using Candidate = KCenterCandidate<acc_t>;
    const int64_t n = x.size(0);
    const int64_t k = indices.size(0);
    const int64_t blocks = warp_per_row_grid(n, kWarpsPerBlock);
    at::Tensor block_best_storage =
        at::empty({blocks * static_cast<int64_t>(sizeof(Candidate))}, x.options().dtype(at::kByte));
    auto* block_best = reinterpret_cast<Candidate*>(block_best_storage.mutable_data_ptr());
    bool* selectable = plan.selectable.mutable_data_ptr<bool>();
    int64_t* picks = indices.mutable_data_ptr<int64_t>();
    const auto stream = c10::cuda::getCurrentCUDAStream();

    // One pass over x with the centers centers[i * stride]; with `pick` set, the farthest
    // selectable point is written there and taken out of the selectable set.
    auto step = [&](const int64_t* centers, int64_t stride, int64_t* pick) {
      update_and_block_argmax_kernel<scalar_t, acc_t, kScaled><<<blocks, kBlockThreads, 0, stream>>>(
          x.const_data_ptr<scalar_t>(), n, x.size(1),
          kScaled ? inverse_norms.const_data_ptr<acc_t>() : nullptr, centers, stride,
          min_sq.mutable_data_ptr<acc_t>(), selectable, block_best);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      if (pick != nullptr) {
        pick_kernel<acc_t><<<1, kPickThreads, 0, stream>>>(block_best, blocks, pick, selectable);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    };

    const int64_t num_initial = plan.initial_indices.size(0);
    const int64_t* initial = plan.initial_indices.const_data_ptr<int64_t>();
    int64_t* first_pick = k > 0 ? picks : nullptr;
    if (num_initial == 0 && k > 0) {
      indices.select(0, 0).fill_(plan.first);
      plan.selectable.select(0, plan.first).fill_(false);
    } else if (num_initial > 0 && num_initial <= kKCenterDirectInitialCenters) {
      for (int64_t j = 0; j < num_initial; ++j) {
        step(initial + j, 0, j + 1 == num_initial ? first_pick : nullptr);
      }
    } else if (num_initial > 0) {
      // Kernels on this stream finish with `nearest` before its memory can be reused.
      const auto nearest = nearest_initial_center(x, inverse_norms, plan.initial_indices);
      step(nearest.const_data_ptr<int64_t>(), 1, first_pick);
    }
    for (int64_t t = 0; t < k; ++t) {
      step(picks + t, 0, t + 1 < k ? picks + t + 1 : nullptr);
    }
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, CUDA, m) {
  m.impl("kcenter_greedy", &kcenter_greedy_with<CudaKCenterGreedy>);
}

}  // namespace torch_al::ops
