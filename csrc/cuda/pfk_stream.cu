// Epilogue of the streaming PFK ops on CUDA. For a tile of pool columns [begin, begin + width),
// with the products already in (M, width) buffers, the pure-torch definition is
//   R = base + lhs * rhs;  R[:, mask[begin:begin + width]] = excluded
//   values, indices = topk(cat([values, R]), k) per row, ties to the lower pool index
// (per pool column: R.amax(0) first, as one row). Nothing of size M x N is ever written.

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <limits>

#include "../pfk_topk_math.h"
#include "../pfk_stream.h"

namespace torch_al::ops {

namespace {

constexpr int kThreads = 256;
// Columns a block scans between two merges; also the staging capacity, so it never overflows.
constexpr int kChunk = 1024;
constexpr int64_t kMaxBlocks = 65535;
// Tile buffers of M x width elements: large enough to keep cuBLAS busy, bounded whatever N is.
constexpr int64_t kTileElements = int64_t{1} << 24;

template <typename scalar_t>
struct TileArgs {
  const scalar_t* base;
  const scalar_t* lhs;
  const scalar_t* rhs;
  int64_t width;
  int64_t begin;
};

template <typename scalar_t, bool kBase, bool kRhs>
__device__ __forceinline__ scalar_t tile_value(const TileArgs<scalar_t>& tile, int64_t offset) {
  return pfk_value<scalar_t>(
      kBase ? tile.base[offset] : scalar_t(0), tile.lhs[offset], kRhs ? tile.rhs[offset] : scalar_t(1));
}

// How many of the `count` staged (unsorted) candidates beat (value, index).
template <typename scalar_t>
__device__ int64_t count_beating_staged(
    const scalar_t* values, const int64_t* indices, int count, scalar_t value, int64_t index) {
  int64_t beaten_by = 0;
  for (int s = 0; s < count; ++s) {
    beaten_by += beats(values[s], indices[s], value, index) ? 1 : 0;
  }
  return beaten_by;
}

// One block per query row. Each chunk of columns stages the candidates that beat the row's
// current k-th entry in shared memory, then every staged and listed entry computes its rank in
// the union (a merge by counting: the order is total, so ranks are distinct and the result does
// not depend on the order in which threads staged) and writes itself to the spare list if the
// rank is < k. The lists then swap roles.
template <typename scalar_t, bool kBase, bool kRhs>
__global__ void merge_tile_rows_kernel(
    TileArgs<scalar_t> tile,
    int64_t rows,
    const bool* __restrict__ mask,
    scalar_t* values,
    int64_t* indices,
    scalar_t* spare_values,
    int64_t* spare_indices,
    int64_t k) {
  __shared__ scalar_t staged_values[kChunk];
  __shared__ int64_t staged_indices[kChunk];
  __shared__ int staged;
  for (int64_t m = blockIdx.x; m < rows; m += gridDim.x) {
    scalar_t* current_values = values + m * k;
    int64_t* current_indices = indices + m * k;
    scalar_t* next_values = spare_values + m * k;
    int64_t* next_indices = spare_indices + m * k;
    const int64_t row_offset = m * tile.width;
    for (int64_t chunk = 0; chunk < tile.width; chunk += kChunk) {
      if (threadIdx.x == 0) {
        staged = 0;
      }
      __syncthreads();
      const scalar_t last_value = current_values[k - 1];
      const int64_t last_index = current_indices[k - 1];
      const int64_t chunk_end = chunk + kChunk < tile.width ? chunk + kChunk : tile.width;
      for (int64_t n = chunk + threadIdx.x; n < chunk_end; n += blockDim.x) {
        const int64_t column = tile.begin + n;
        if (mask != nullptr && mask[column]) {
          continue;
        }
        const scalar_t value = tile_value<scalar_t, kBase, kRhs>(tile, row_offset + n);
        if (beats(value, column, last_value, last_index)) {
          const int slot = atomicAdd(&staged, 1);
          staged_values[slot] = value;
          staged_indices[slot] = column;
        }
      }
      __syncthreads();
      const int count = staged;
      if (count > 0) {  // block-uniform
        for (int s = threadIdx.x; s < count; s += blockDim.x) {
          const scalar_t value = staged_values[s];
          const int64_t index = staged_indices[s];
          const int64_t rank = count_beating_staged(staged_values, staged_indices, count, value, index) +
              count_beating_sorted(current_values, current_indices, k, value, index);
          if (rank < k) {
            next_values[rank] = value;
            next_indices[rank] = index;
          }
        }
        for (int64_t r = threadIdx.x; r < k; r += blockDim.x) {
          const scalar_t value = current_values[r];
          const int64_t index = current_indices[r];
          const int64_t rank = r + count_beating_staged(staged_values, staged_indices, count, value, index);
          if (rank < k) {
            next_values[rank] = value;
            next_indices[rank] = index;
          }
        }
        scalar_t* swap_values = current_values;
        int64_t* swap_indices = current_indices;
        current_values = next_values;
        current_indices = next_indices;
        next_values = swap_values;
        next_indices = swap_indices;
      }
      __syncthreads();  // every thread has read `staged` and written its ranks
    }
    if (current_values != values + m * k) {  // the row's result ended in the spare list
      for (int64_t r = threadIdx.x; r < k; r += blockDim.x) {
        values[m * k + r] = current_values[r];
        indices[m * k + r] = current_indices[r];
      }
    }
    __syncthreads();
  }
}

// best[n] = max_m R[m, n]: one thread per column, so each row's reads coalesce.
template <typename scalar_t, bool kBase, bool kRhs>
__global__ void column_maxima_kernel(TileArgs<scalar_t> tile, int64_t rows, scalar_t* best) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; n < tile.width; n += stride) {
    scalar_t column_best = -static_cast<scalar_t>(INFINITY);
    for (int64_t m = 0; m < rows; ++m) {
      const scalar_t value = tile_value<scalar_t, kBase, kRhs>(tile, m * tile.width + n);
      column_best = value > column_best ? value : column_best;
    }
    best[n] = column_best;
  }
}

template <typename scalar_t, bool kBase, bool kRhs>
void reduce_tile(
    const PfkTile& tile, int64_t rows, const bool* mask, PfkReduction reduction, scalar_t* best,
    at::Tensor& values, at::Tensor& indices, at::Tensor& spare_values, at::Tensor& spare_indices) {
  auto stream = c10::cuda::getCurrentCUDAStream();
  TileArgs<scalar_t> args{
      kBase ? tile.base.const_data_ptr<scalar_t>() : nullptr, tile.lhs.const_data_ptr<scalar_t>(),
      kRhs ? tile.rhs.const_data_ptr<scalar_t>() : nullptr, tile.width, tile.begin};
  const int64_t k = values.size(1);
  const auto merge = [&](const auto& merged_args, int64_t merged_rows, auto kernel) {
    const auto blocks = static_cast<unsigned>(std::min(merged_rows, kMaxBlocks));
    kernel<<<blocks, kThreads, 0, stream>>>(
        merged_args, merged_rows, mask, values.mutable_data_ptr<scalar_t>(),
        indices.mutable_data_ptr<int64_t>(), spare_values.mutable_data_ptr<scalar_t>(),
        spare_indices.mutable_data_ptr<int64_t>(), k);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  };
  if (reduction == PfkReduction::kPerQueryRow) {
    merge(args, rows, merge_tile_rows_kernel<scalar_t, kBase, kRhs>);
    return;
  }
  const auto blocks = static_cast<unsigned>(std::min((tile.width + kThreads - 1) / kThreads, kMaxBlocks));
  column_maxima_kernel<scalar_t, kBase, kRhs><<<blocks, kThreads, 0, stream>>>(args, rows, best);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  merge(TileArgs<scalar_t>{nullptr, best, nullptr, tile.width, tile.begin}, 1,
        merge_tile_rows_kernel<scalar_t, false, false>);
}

}  // namespace

void pfk_stream_cuda(
    const PfkPlan& plan, const at::Tensor& mask, PfkReduction reduction, at::Tensor& values,
    at::Tensor& indices) {
  const auto options = values.options();
  auto spare_values = at::empty_like(values);
  auto spare_indices = at::empty_like(indices);
  const int64_t width = std::clamp<int64_t>(
      kTileElements / std::max<int64_t>(plan.rows, 1), kChunk, std::max<int64_t>(plan.columns, kChunk));
  PfkTileWorkspace workspace(plan, width, options);
  const bool per_column = reduction == PfkReduction::kPerPoolColumn;
  auto best = at::empty({per_column ? width : 0}, options);
  const bool* mask_data = mask.defined() ? mask.const_data_ptr<bool>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES(options.dtype().toScalarType(), "pfk_stream_cuda", [&] {
    scalar_t* best_data = per_column ? best.mutable_data_ptr<scalar_t>() : nullptr;
    for (int64_t begin = 0; begin < plan.columns; begin += width) {
      const auto tile = workspace.compute(begin, std::min(width, plan.columns - begin));
      const auto reduce = tile.base.defined() ? reduce_tile<scalar_t, true, true>
          : tile.rhs.defined()                ? reduce_tile<scalar_t, false, true>
                                              : reduce_tile<scalar_t, false, false>;
      reduce(tile, plan.rows, mask_data, reduction, best_data, values, indices, spare_values, spare_indices);
    }
  });
}

}  // namespace torch_al::ops
