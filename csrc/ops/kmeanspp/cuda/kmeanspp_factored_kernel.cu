// Fused k-means++ (D^2 sampling) step over factored embeddings. In pure torch, one step with the
// newest center c and the draw u is
//   d2 = (norms + norms[c] - 2 * (a @ a[c]) * (b @ b[c])).clamp(min=0)    # norms = |a|^2 |b|^2
//   min_sq = torch.minimum(min_sq, d2)
//   cumulative = torch.where(selectable, min_sq, 0).cumsum(0)             # float64
//   pick = torch.searchsorted(cumulative, u * cumulative[-1], right=True)
// Here it is one read of a and b: a warp per row computes the two dot products and lowers min_sq;
// each block owns a contiguous run of rows and sums their weights in row order. A one-thread
// kernel then walks the blocks' sums to the block holding the threshold and that block's rows to
// the pick, and writes it into device memory, where the next step reads its center: no host sync
// per pick. The cumulative sum is grouped by block, so it may round differently from the CPU's
// running sum: a draw within float64 rounding of a row boundary can pick the neighbouring row.

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <torch/library.h>

#include <algorithm>

#include "ops/kmeanspp/kmeanspp_factored.h"
#include "ops/kmeanspp/kmeanspp_factored_entry.h"
#include "ops/kmeanspp/kmeanspp_factored_math.h"
#include "ops/lane_sums/warp_lane_sum.cuh"

namespace torch_al::ops {

namespace {

constexpr int kWarpsPerBlock = 8;
constexpr int kBlockThreads = kKMeansPPLanes * kWarpsPerBlock;

// A block's run of rows, summarised for the draw.
struct BlockWeights {
  double total;              // sum of the weights of its rows, in row order
  int64_t first_selectable;  // lowest selectable row, or n
  int64_t last_weighted;     // highest row with a positive weight, or -1
};

__device__ int64_t run_begin(int64_t rows_per_block) {
  return static_cast<int64_t>(blockIdx.x) * rows_per_block;
}

template <typename scalar_t>
__global__ void squared_norms_kernel(
    const scalar_t* __restrict__ a,
    const scalar_t* __restrict__ b,
    int64_t n,
    int64_t classes,
    int64_t dims,
    double* __restrict__ norms) {
  const int lane = threadIdx.x % kKMeansPPLanes;
  const int64_t step = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kKMeansPPLanes; i < n; i += step) {
    const scalar_t* a_row = a + i * classes;
    const scalar_t* b_row = b + i * dims;
    const double a_sq =
        warp_lane_sum<double>(classes, lane, [&](int64_t d) { return product_term(a_row[d], a_row[d]); });
    const double b_sq = warp_lane_sum<double>(dims, lane, [&](int64_t d) { return product_term(b_row[d], b_row[d]); });
    if (lane == 0) {
      norms[i] = mul_rn(a_sq, b_sq);
    }
  }
}

// Lowers min_sq with the center *center (skipped when center is null: the initial centers are
// already in min_sq) and summarises each block's run of rows.
template <typename scalar_t>
__global__ void add_center_kernel(
    const scalar_t* __restrict__ a,
    const scalar_t* __restrict__ b,
    int64_t n,
    int64_t classes,
    int64_t dims,
    const double* __restrict__ norms,
    const int64_t* __restrict__ center,
    int64_t rows_per_block,
    double* __restrict__ min_sq,
    const bool* __restrict__ selectable,
    BlockWeights* __restrict__ block_weights) {
  const int64_t begin = run_begin(rows_per_block);
  const int64_t end = min(n, begin + rows_per_block);
  if (center != nullptr) {
    const int lane = threadIdx.x % kKMeansPPLanes;
    const int64_t c = *center;
    const scalar_t* a_center = a + c * classes;
    const scalar_t* b_center = b + c * dims;
    for (int64_t i = begin + threadIdx.x / kKMeansPPLanes; i < end; i += kWarpsPerBlock) {
      const scalar_t* a_row = a + i * classes;
      const scalar_t* b_row = b + i * dims;
      const double a_dot =
          warp_lane_sum<double>(classes, lane, [&](int64_t d) { return product_term(a_row[d], a_center[d]); });
      const double b_dot =
          warp_lane_sum<double>(dims, lane, [&](int64_t d) { return product_term(b_row[d], b_center[d]); });
      if (lane == 0) {
        lower_min(min_sq + i, factored_squared_distance(norms[i], norms[c], a_dot, b_dot));
      }
    }
  }
  __syncthreads();  // the block's min_sq writes are visible to its thread 0
  if (threadIdx.x == 0) {
    BlockWeights summary{0.0, n, -1};
    for (int64_t i = begin; i < end; ++i) {
      const double weight = sampling_weight(selectable[i], min_sq[i]);
      summary.total = add_rn(summary.total, weight);
      summary.first_selectable = (summary.first_selectable == n && selectable[i]) ? i : summary.first_selectable;
      summary.last_weighted = weight > 0 ? i : summary.last_weighted;
    }
    block_weights[blockIdx.x] = summary;
  }
}

// The draw: walks the blocks' sums to the block whose run holds u * total, then its rows. The
// pick leaves the selectable set and becomes a center (min_sq 0).
__global__ void draw_kernel(
    const BlockWeights* __restrict__ block_weights,
    int64_t blocks,
    int64_t rows_per_block,
    int64_t n,
    const double* __restrict__ u,
    double* __restrict__ min_sq,
    bool* __restrict__ selectable,
    int64_t* __restrict__ pick,
    double* __restrict__ pick_sq) {
  double total = 0;
  int64_t first_selectable = n;
  int64_t last_weighted = -1;
  for (int64_t k = 0; k < blocks; ++k) {
    total = add_rn(total, block_weights[k].total);
    first_selectable = min(first_selectable, block_weights[k].first_selectable);
    last_weighted = max(last_weighted, block_weights[k].last_weighted);
  }
  int64_t chosen = first_selectable;
  if (total > 0) {
    const double threshold = draw_threshold(*u, total);
    chosen = last_weighted;  // u * total rounded up to total
    double running = 0;
    for (int64_t k = 0; k < blocks; ++k) {
      const double after = add_rn(running, block_weights[k].total);
      if (after > threshold) {
        chosen = block_weights[k].last_weighted;  // if rounding inside the run never crosses
        const int64_t end = min(n, (k + 1) * rows_per_block);
        for (int64_t i = k * rows_per_block; i < end; ++i) {
          const double weight = sampling_weight(selectable[i], min_sq[i]);
          running = add_rn(running, weight);
          if (weight > 0 && running > threshold) {
            chosen = i;
            break;
          }
        }
        break;
      }
      running = after;
    }
  }
  CUDA_KERNEL_ASSERT(chosen >= 0 && chosen < n);  // picks <= selectable rows was checked on the host
  *pick = chosen;
  *pick_sq = min_sq[chosen];
  selectable[chosen] = false;
  min_sq[chosen] = 0;
}

// The per-dtype kernels kmeanspp_factored_with runs (see kmeanspp_factored_entry.h).
template <typename scalar_t>
struct CudaKMeansPPFactored {
  static at::Tensor squared_norms(const at::Tensor& a, const at::Tensor& b) {
    const int64_t n = a.size(0);
    at::Tensor out = at::empty({n}, a.options().dtype(at::kDouble));
    if (n > 0) {
      squared_norms_kernel<scalar_t>
          <<<warp_per_row_grid(n, kWarpsPerBlock), kBlockThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
              a.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(), n, a.size(1), b.size(1),
              out.mutable_data_ptr<double>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    return out;
  }

  static void sample(
      const at::Tensor& a,
      const at::Tensor& b,
      const at::Tensor& squared_norms,
      const at::Tensor& uniforms,
      KMeansPPFactoredPlan& plan,
      at::Tensor& indices,
      at::Tensor& pick_sq,
      int64_t first_draw) {
    const int64_t n = a.size(0);
    const int64_t blocks = warp_per_row_grid(n, kWarpsPerBlock);
    const int64_t rows_per_block = (n + blocks - 1) / blocks;
    at::Tensor block_storage =
        at::empty({blocks * static_cast<int64_t>(sizeof(BlockWeights))}, a.options().dtype(at::kByte));
    auto* block_weights = reinterpret_cast<BlockWeights*>(block_storage.mutable_data_ptr());
    double* min_sq = plan.min_sq.mutable_data_ptr<double>();
    bool* selectable = plan.selectable.mutable_data_ptr<bool>();
    int64_t* picks = indices.mutable_data_ptr<int64_t>();
    double* picked_sq = pick_sq.mutable_data_ptr<double>();
    const double* draws = uniforms.const_data_ptr<double>();
    const auto stream = c10::cuda::getCurrentCUDAStream();
    for (int64_t t = first_draw; t < indices.size(0); ++t) {
      add_center_kernel<scalar_t><<<blocks, kBlockThreads, 0, stream>>>(
          a.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(), n, a.size(1), b.size(1),
          squared_norms.const_data_ptr<double>(), t > 0 ? picks + t - 1 : nullptr, rows_per_block, min_sq, selectable,
          block_weights);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      draw_kernel<<<1, 1, 0, stream>>>(
          block_weights, blocks, rows_per_block, n, draws + t, min_sq, selectable, picks + t, picked_sq + t);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, CUDA, m) {
  m.impl("kmeanspp_factored", &kmeanspp_factored_with<CudaKMeansPPFactored>);
}

}  // namespace torch_al::ops
