// Epilogue of the streaming PFK ops on CUDA. For a tile of pool columns [begin, begin + width),
// with the products already in (M, width) buffers, the pure-torch definition is
//   R = base + lhs * rhs;  R[:, mask[begin:begin + width]] = excluded
//   values, indices = topk(cat([values, R]), k) per row, ties to the lower pool index
// Per pool column it is R.amax(0) into an (N,) vector over all tiles, then one stable sort.
// Nothing of size M x N is ever written, and no step waits on the host.

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full_like.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/where.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <limits>

#include "ops/cuda_occupancy/resident_warps.cuh"
#include "ops/pfk/pfk_entry.h"
#include "ops/pfk/pfk_topk_math.h"

namespace torch_al::ops {

namespace {

constexpr int kWarp = 32;
constexpr unsigned kAllLanes = 0xffffffffu;
constexpr int kWarpsPerBlock = 8;
// Tile buffers of M x width elements: large enough to keep cuBLAS busy, bounded whatever N is.
constexpr int64_t kTileElements = int64_t{1} << 24;
constexpr int64_t kMinTileWidth = 1024;
// Fewest columns one warp scans when a row's tile is split between warps: below that the merge
// of the splits costs more than the extra warps save.
constexpr int64_t kMinSplitWidth = 1024;
// Most entries of the split lists (rows x splits x k), whatever the shapes.
constexpr int64_t kMaxSplitEntries = int64_t{1} << 22;

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

template <typename scalar_t>
struct Candidate {
  scalar_t value;
  int64_t index;  // -1: nothing (a masked column, a lane past the end, an empty list slot)
};

template <typename scalar_t>
__device__ __forceinline__ Candidate<scalar_t> nothing() {
  return {-static_cast<scalar_t>(INFINITY), -1};
}

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

// The candidates of row m are the tile's columns, masked ones left out.
template <typename scalar_t, bool kBase, bool kRhs>
struct TileSource {
  using scalar_type = scalar_t;
  TileArgs<scalar_t> tile;
  const bool* mask;

  __device__ __forceinline__ Candidate<scalar_t> at(int64_t row, int64_t n) const {
    const int64_t column = tile.begin + n;
    if (mask != nullptr && mask[column]) {
      return nothing<scalar_t>();
    }
    return {tile_value<scalar_t, kBase, kRhs>(tile, row * tile.width + n), column};
  }
};

// The candidates of row m are the entries of its split lists, laid out contiguously.
template <typename scalar_t>
struct SplitListsSource {
  using scalar_type = scalar_t;
  const scalar_t* values;
  const int64_t* indices;
  int64_t row_stride;

  __device__ __forceinline__ Candidate<scalar_t> at(int64_t row, int64_t n) const {
    return {values[row * row_stride + n], indices[row * row_stride + n]};
  }
};

// Where a warp's list starts from (init, row stride k; null: empty) and where it ends (out, at
// (row * splits + split) * k). init may equal out: the list then updates in place.
template <typename scalar_t>
struct ListArgs {
  const scalar_t* init_values;
  const int64_t* init_indices;
  scalar_t* out_values;
  int64_t* out_indices;
  int64_t k;
};

// k = 1: every lane keeps its own best candidate, and a shuffle tree picks the warp's.
template <typename scalar_t>
struct LaneArgmax {
  using scalar_type = scalar_t;
  Candidate<scalar_t> best;
  int lane;

  __device__ LaneArgmax(const ListArgs<scalar_t>& args, int64_t row, int64_t /*slot*/, int lane_) : lane(lane_) {
    best = args.init_values != nullptr && lane == 0 ? Candidate<scalar_t>{args.init_values[row], args.init_indices[row]}
                                                    : nothing<scalar_t>();
  }

  __device__ __forceinline__ void offer(const Candidate<scalar_t>& c) {
    if (beats(c.value, c.index, best.value, best.index)) {
      best = c;
    }
  }

  __device__ void finish(scalar_t* values, int64_t* indices) {
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
      const Candidate<scalar_t> other{
          __shfl_xor_sync(kAllLanes, best.value, offset), __shfl_xor_sync(kAllLanes, best.index, offset)};
      offer(other);
    }
    if (lane == 0) {
      values[0] = best.value;
      indices[0] = best.index;
    }
  }
};

// 1 < k <= 32: lane i holds entry i of the best-first list, in registers. An insertion is one
// ballot (the entries that beat the candidate are a prefix: its length is the position) and one
// shuffle of the entries behind it.
template <typename scalar_t>
struct WarpRegisterList {
  using scalar_type = scalar_t;
  Candidate<scalar_t> entry;
  int lane;
  int k;

  __device__ WarpRegisterList(const ListArgs<scalar_t>& args, int64_t row, int64_t /*slot*/, int lane_)
      : lane(lane_), k(static_cast<int>(args.k)) {
    entry = args.init_values != nullptr && lane < k
        ? Candidate<scalar_t>{args.init_values[row * k + lane], args.init_indices[row * k + lane]}
        : nothing<scalar_t>();
  }

  // Every lane offers its candidate; only those beating the k-th entry are inserted.
  __device__ __forceinline__ void offer(const Candidate<scalar_t>& c) {
    const scalar_t last_value = __shfl_sync(kAllLanes, entry.value, k - 1);
    const int64_t last_index = __shfl_sync(kAllLanes, entry.index, k - 1);
    unsigned hits = __ballot_sync(kAllLanes, beats(c.value, c.index, last_value, last_index));
    while (hits != 0) {
      const int source = __ffs(hits) - 1;
      hits &= hits - 1;
      insert({__shfl_sync(kAllLanes, c.value, source), __shfl_sync(kAllLanes, c.index, source)});
    }
  }

  __device__ void insert(const Candidate<scalar_t>& c) {
    const unsigned ahead = __ballot_sync(kAllLanes, lane < k && beats(entry.value, entry.index, c.value, c.index));
    const int position = __popc(ahead);
    const Candidate<scalar_t> previous{
        __shfl_up_sync(kAllLanes, entry.value, 1), __shfl_up_sync(kAllLanes, entry.index, 1)};
    if (position >= k || lane >= k) {
      return;  // the list is full of better entries, or this lane holds none of it
    }
    if (lane == position) {
      entry = c;
    } else if (lane > position) {
      entry = previous;
    }
  }

  __device__ void finish(scalar_t* values, int64_t* indices) {
    if (lane < k) {
      values[lane] = entry.value;
      indices[lane] = entry.index;
    }
  }
};

// k > 32: the list lives in its output slot in global memory (cached), and the warp shifts it
// together on an insertion, 32 entries a step.
template <typename scalar_t>
struct WarpMemoryList {
  using scalar_type = scalar_t;
  scalar_t* values;
  int64_t* indices;
  int64_t k;
  int lane;

  __device__ WarpMemoryList(const ListArgs<scalar_t>& args, int64_t row, int64_t slot, int lane_)
      : values(args.out_values + slot * args.k), indices(args.out_indices + slot * args.k), k(args.k), lane(lane_) {
    const scalar_t* init_values = args.init_values != nullptr ? args.init_values + row * k : nullptr;
    if (init_values != values) {
      for (int64_t i = lane; i < k; i += kWarp) {
        values[i] = init_values != nullptr ? init_values[i] : -static_cast<scalar_t>(INFINITY);
        indices[i] = init_values != nullptr ? args.init_indices[row * k + i] : -1;
      }
    }
    __syncwarp();
  }

  __device__ __forceinline__ void offer(const Candidate<scalar_t>& c) {
    unsigned hits = __ballot_sync(kAllLanes, beats(c.value, c.index, values[k - 1], indices[k - 1]));
    while (hits != 0) {
      const int source = __ffs(hits) - 1;
      hits &= hits - 1;
      insert({__shfl_sync(kAllLanes, c.value, source), __shfl_sync(kAllLanes, c.index, source)});
    }
  }

  __device__ void insert(const Candidate<scalar_t>& c) {
    int64_t position = 0;
    if (lane == 0) {
      position = count_beating_sorted(values, indices, k, c.value, c.index);
    }
    position = __shfl_sync(kAllLanes, position, 0);
    // From the back, so every entry is read before the step behind it overwrites it.
    for (int64_t top = k - 1; top > position; top -= kWarp) {
      const int64_t i = top - lane;
      const bool moves = i > position;
      Candidate<scalar_t> previous{};
      if (moves) {
        previous = {values[i - 1], indices[i - 1]};
      }
      __syncwarp();
      if (moves) {
        values[i] = previous.value;
        indices[i] = previous.index;
      }
      __syncwarp();
    }
    if (lane == 0 && position < k) {
      values[position] = c.value;
      indices[position] = c.index;
    }
    __syncwarp();
  }

  __device__ void finish(scalar_t*, int64_t*) {}  // already in place
};

// One warp per (row, split): the warp streams the split's candidates through its list, 32 at a
// time (consecutive lanes read consecutive columns), and writes the list to its slot.
template <typename List, typename Source>
__global__ void select_kernel(
    Source source,
    int64_t rows,
    int64_t count,
    int64_t splits,
    int64_t split_width,
    ListArgs<typename List::scalar_type> lists) {
  using scalar_t = typename List::scalar_type;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = static_cast<int>(threadIdx.x % kWarp);
  const int64_t row = warp / splits;
  if (row >= rows) {
    return;  // the whole warp
  }
  const int64_t split = warp % splits;
  const int64_t first = split * split_width;
  const int64_t end = first + split_width < count ? first + split_width : count;
  List list(lists, row, warp, lane);
  for (int64_t group = first; group < end; group += kWarp) {
    const int64_t n = group + lane;
    list.offer(n < end ? source.at(row, n) : nothing<scalar_t>());
  }
  list.finish(lists.out_values + warp * lists.k, lists.out_indices + warp * lists.k);
}

// Selects per row over `count` candidates of `source` with rows x splits warps.
template <typename scalar_t, typename Source>
void select_rows(
    const Source& source,
    int64_t rows,
    int64_t count,
    int64_t splits,
    const ListArgs<scalar_t>& lists,
    cudaStream_t stream) {
  const int64_t split_width = ceil_div(ceil_div(count, splits), kWarp) * kWarp;
  const auto blocks = static_cast<unsigned>(ceil_div(rows * splits, kWarpsPerBlock));
  constexpr int threads = kWarp * kWarpsPerBlock;
  if (lists.k == 1) {
    select_kernel<LaneArgmax<scalar_t>>
        <<<blocks, threads, 0, stream>>>(source, rows, count, splits, split_width, lists);
  } else if (lists.k <= kWarp) {
    select_kernel<WarpRegisterList<scalar_t>>
        <<<blocks, threads, 0, stream>>>(source, rows, count, splits, split_width, lists);
  } else {
    select_kernel<WarpMemoryList<scalar_t>>
        <<<blocks, threads, 0, stream>>>(source, rows, count, splits, split_width, lists);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Warps per row of a tile: enough for one full wave of warps on the device when M is small.
int64_t split_count(int64_t rows, int64_t width, int64_t k) {
  int64_t splits = ceil_div(resident_warps(), std::max<int64_t>(rows, 1));
  splits = std::min(splits, std::max<int64_t>(1, width / kMinSplitWidth));
  splits = std::min(splits, std::max<int64_t>(1, kMaxSplitEntries / std::max<int64_t>(rows * k, 1)));
  return std::max<int64_t>(splits, 1);
}

// Per query row: every (row, split) warp selects its split of the tile; with several splits a
// second warp per row merges the split lists into the running list.
template <typename scalar_t, bool kBase, bool kRhs>
void select_tile_rows(
    const TileArgs<scalar_t>& tile,
    int64_t rows,
    const bool* mask,
    int64_t splits,
    at::Tensor& values,
    at::Tensor& indices,
    at::Tensor& split_values,
    at::Tensor& split_indices,
    cudaStream_t stream) {
  const int64_t k = values.size(1);
  scalar_t* running_values = values.mutable_data_ptr<scalar_t>();
  int64_t* running_indices = indices.mutable_data_ptr<int64_t>();
  const TileSource<scalar_t, kBase, kRhs> columns{tile, mask};
  if (splits == 1) {
    select_rows<scalar_t>(
        columns, rows, tile.width, 1, {running_values, running_indices, running_values, running_indices, k}, stream);
    return;
  }
  scalar_t* listed_values = split_values.mutable_data_ptr<scalar_t>();
  int64_t* listed_indices = split_indices.mutable_data_ptr<int64_t>();
  select_rows<scalar_t>(
      columns, rows, tile.width, splits, {nullptr, nullptr, listed_values, listed_indices, k}, stream);
  const SplitListsSource<scalar_t> listed{listed_values, listed_indices, splits * k};
  select_rows<scalar_t>(
      listed, rows, splits * k, 1, {running_values, running_indices, running_values, running_indices, k}, stream);
}

// best[begin + n] = max_m R[m, n], or NaN for a masked column: one thread per column, so each
// row's reads coalesce.
template <typename scalar_t, bool kBase, bool kRhs>
__global__ void column_maxima_kernel(TileArgs<scalar_t> tile, int64_t rows, const bool* mask, scalar_t* best) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; n < tile.width; n += stride) {
    const int64_t column = tile.begin + n;
    if (mask != nullptr && mask[column]) {
      best[column] = static_cast<scalar_t>(NAN);
      continue;
    }
    scalar_t column_best = -static_cast<scalar_t>(INFINITY);
    for (int64_t m = 0; m < rows; ++m) {
      const scalar_t value = tile_value<scalar_t, kBase, kRhs>(tile, m * tile.width + n);
      column_best = value > column_best ? value : column_best;
    }
    best[column] = column_best;
  }
}

template <typename scalar_t, bool kBase, bool kRhs>
void column_maxima(
    const TileArgs<scalar_t>& tile, int64_t rows, const bool* mask, scalar_t* best, cudaStream_t stream) {
  constexpr int threads = kWarp * kWarpsPerBlock;
  const auto blocks = static_cast<unsigned>(std::min<int64_t>(ceil_div(tile.width, threads), 65535));
  column_maxima_kernel<scalar_t, kBase, kRhs><<<blocks, threads, 0, stream>>>(tile, rows, mask, best);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// The k largest column maxima, ties to the lower column, masked columns (NaN) never: an
// ascending stable sort of -best puts them in that order, NaN last.
void take_column_topk(const at::Tensor& best, at::Tensor& values, at::Tensor& indices) {
  const auto [sorted, order] = at::sort(best.neg(), /*stable=*/true, /*dim=*/0, /*descending=*/false);
  const int64_t kept = std::min(values.size(1), best.size(0));
  const auto top = sorted.narrow(0, 0, kept);
  const auto masked = top.isnan();
  values.narrow(1, 0, kept).copy_(at::where(masked, -std::numeric_limits<double>::infinity(), top.neg()));
  indices.narrow(1, 0, kept).copy_(at::where(masked, -1, order.narrow(0, 0, kept)));
}

template <typename scalar_t, bool kBase, bool kRhs>
void reduce_tile(
    const PfkTile& tile,
    int64_t rows,
    const bool* mask,
    PfkReduction reduction,
    int64_t splits,
    scalar_t* best,
    at::Tensor& values,
    at::Tensor& indices,
    at::Tensor& split_values,
    at::Tensor& split_indices) {
  const auto stream = c10::cuda::getCurrentCUDAStream().stream();
  const TileArgs<scalar_t> args{
      kBase ? tile.base.const_data_ptr<scalar_t>() : nullptr, tile.lhs.const_data_ptr<scalar_t>(),
      kRhs ? tile.rhs.const_data_ptr<scalar_t>() : nullptr, tile.width, tile.begin};
  if (reduction == PfkReduction::kPerQueryRow) {
    select_tile_rows<scalar_t, kBase, kRhs>(
        args, rows, mask, splits, values, indices, split_values, split_indices, stream);
  } else {
    column_maxima<scalar_t, kBase, kRhs>(args, rows, mask, best, stream);
  }
}

}  // namespace

void pfk_stream_cuda(
    const PfkPlan& plan, const at::Tensor& mask, PfkReduction reduction, at::Tensor& values, at::Tensor& indices) {
  const auto options = values.options();
  const int64_t k = values.size(1);
  const int64_t width = std::clamp<int64_t>(
      kTileElements / std::max<int64_t>(plan.rows, 1), kMinTileWidth, std::max<int64_t>(plan.columns, kMinTileWidth));
  PfkTileWorkspace workspace(plan, width, options);
  const bool per_row = reduction == PfkReduction::kPerQueryRow;
  const int64_t splits = per_row ? split_count(plan.rows, std::min(width, plan.columns), k) : 1;
  const int64_t split_entries = splits > 1 ? plan.rows * splits * k : 0;
  auto split_values = at::empty({split_entries}, options);
  auto split_indices = at::empty({split_entries}, options.dtype(at::kLong));
  auto best = at::empty({per_row ? 0 : plan.columns}, options);
  const bool* mask_data = mask.defined() ? mask.const_data_ptr<bool>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES(options.dtype().toScalarType(), "pfk_stream_cuda", [&] {
    scalar_t* best_data = per_row ? nullptr : best.mutable_data_ptr<scalar_t>();
    for (int64_t begin = 0; begin < plan.columns; begin += width) {
      const auto tile = workspace.compute(begin, std::min(width, plan.columns - begin));
      const auto reduce = tile.base.defined() ? reduce_tile<scalar_t, true, true>
          : tile.rhs.defined()                ? reduce_tile<scalar_t, false, true>
                                              : reduce_tile<scalar_t, false, false>;
      reduce(tile, plan.rows, mask_data, reduction, splits, best_data, values, indices, split_values, split_indices);
    }
  });
  if (!per_row) {
    take_column_topk(best, values, indices);
  }
}

}  // namespace torch_al::ops
