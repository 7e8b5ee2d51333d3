#include "../pfk_stream.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "../pfk_topk_math.h"

namespace torch_al::ops {

namespace {

// Tiles are multiplied one after the other by the multithreaded BLAS and reduced by
// at::parallel_for over rows. Running whole tiles per thread instead (each thread its own tile
// and top-k) was measured 5-30x slower on a loaded 2-core machine: BLAS calls nested in the
// parallel region oversubscribe the cores. Tiles of ~4 MiB keep the products near BLAS speed.
constexpr int64_t kTileBytes = int64_t{1} << 22;
constexpr int64_t kMinTileWidth = 64;
constexpr int64_t kMaxTileWidth = 16384;
// Rows (or columns) of a tile per parallel task in the epilogue.
constexpr int64_t kEpilogueGrain = 32768;

int64_t tile_width(int64_t rows, int64_t columns, int64_t element_size) {
  const int64_t width = kTileBytes / (std::max<int64_t>(rows, 1) * element_size);
  return std::max<int64_t>(1, std::min(std::clamp(width, kMinTileWidth, kMaxTileWidth), columns));
}

// Running best-first top-k lists, `rows` of them, k entries each.
template <typename scalar_t>
struct TopKLists {
  scalar_t* values;
  int64_t* indices;
  int64_t k;
};

// Merges rows [first_row, end_row) of a tile into the lists: R = base + lhs * rhs, masked columns
// skipped.
template <typename scalar_t, bool kBase, bool kRhs>
void merge_tile_rows(
    const scalar_t* base, const scalar_t* lhs, const scalar_t* rhs, int64_t first_row, int64_t end_row,
    int64_t width, int64_t begin, const bool* mask, const TopKLists<scalar_t>& lists) {
  for (int64_t m = first_row; m < end_row; ++m) {
    const int64_t offset = m * width;
    scalar_t* values = lists.values + m * lists.k;
    int64_t* indices = lists.indices + m * lists.k;
    for (int64_t n = 0; n < width; ++n) {
      if (mask != nullptr && mask[begin + n]) {
        continue;
      }
      const scalar_t value = pfk_value<scalar_t>(
          kBase ? base[offset + n] : scalar_t(0), lhs[offset + n], kRhs ? rhs[offset + n] : scalar_t(1));
      insert_sorted(values, indices, lists.k, value, begin + n);
    }
  }
}

// best[n] = max_m R[m, n] over the tile's rows, for columns [first, end).
template <typename scalar_t, bool kBase, bool kRhs>
void column_maxima(
    const scalar_t* base, const scalar_t* lhs, const scalar_t* rhs, int64_t rows, int64_t width,
    int64_t first, int64_t end, scalar_t* best) {
  std::fill(best + first, best + end, -std::numeric_limits<scalar_t>::infinity());
  for (int64_t m = 0; m < rows; ++m) {
    const int64_t offset = m * width;
    for (int64_t n = first; n < end; ++n) {
      const scalar_t value = pfk_value<scalar_t>(
          kBase ? base[offset + n] : scalar_t(0), lhs[offset + n], kRhs ? rhs[offset + n] : scalar_t(1));
      best[n] = value > best[n] ? value : best[n];
    }
  }
}

template <typename scalar_t, bool kBase, bool kRhs>
void reduce_tile(
    const PfkTile& tile, int64_t rows, const bool* mask, PfkReduction reduction, scalar_t* scratch,
    const TopKLists<scalar_t>& lists) {
  const scalar_t* base = kBase ? tile.base.const_data_ptr<scalar_t>() : nullptr;
  const scalar_t* lhs = tile.lhs.const_data_ptr<scalar_t>();
  const scalar_t* rhs = kRhs ? tile.rhs.const_data_ptr<scalar_t>() : nullptr;
  const int64_t width = tile.width;
  if (reduction == PfkReduction::kPerQueryRow) {
    const int64_t grain = std::max<int64_t>(1, kEpilogueGrain / width);
    at::parallel_for(0, rows, grain, [&](int64_t first, int64_t end) {
      merge_tile_rows<scalar_t, kBase, kRhs>(base, lhs, rhs, first, end, width, tile.begin, mask, lists);
    });
  } else {
    const int64_t grain = std::max<int64_t>(1, kEpilogueGrain / std::max<int64_t>(rows, 1));
    at::parallel_for(0, width, grain, [&](int64_t first, int64_t end) {
      column_maxima<scalar_t, kBase, kRhs>(base, lhs, rhs, rows, width, first, end, scratch);
    });
    merge_tile_rows<scalar_t, false, false>(nullptr, scratch, nullptr, 0, 1, width, tile.begin, mask, lists);
  }
}

// Instantiates the epilogue for the tile's form so its inner loop carries no per-element branch.
template <typename scalar_t>
void reduce_tile_any_form(
    const PfkTile& tile, int64_t rows, const bool* mask, PfkReduction reduction, scalar_t* scratch,
    const TopKLists<scalar_t>& lists) {
  const bool has_base = tile.base.defined();
  const bool has_rhs = tile.rhs.defined();
  if (has_base) {
    reduce_tile<scalar_t, true, true>(tile, rows, mask, reduction, scratch, lists);
  } else if (has_rhs) {
    reduce_tile<scalar_t, false, true>(tile, rows, mask, reduction, scratch, lists);
  } else {
    reduce_tile<scalar_t, false, false>(tile, rows, mask, reduction, scratch, lists);
  }
}

}  // namespace

void pfk_stream_cpu(
    const PfkPlan& plan, const at::Tensor& mask, PfkReduction reduction, at::Tensor& values,
    at::Tensor& indices) {
  const auto options = values.options();
  const int64_t k = values.size(1);
  const int64_t width = tile_width(plan.rows, plan.columns, options.dtype().itemsize());
  PfkTileWorkspace workspace(plan, width, options);
  const bool* mask_data = mask.defined() ? mask.const_data_ptr<bool>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES(options.dtype().toScalarType(), "pfk_stream_cpu", [&] {
    const TopKLists<scalar_t> lists{values.mutable_data_ptr<scalar_t>(), indices.mutable_data_ptr<int64_t>(), k};
    std::vector<scalar_t> scratch(reduction == PfkReduction::kPerPoolColumn ? width : 0);
    for (int64_t begin = 0; begin < plan.columns; begin += width) {
      const auto tile = workspace.compute(begin, std::min(width, plan.columns - begin));
      reduce_tile_any_form<scalar_t>(tile, plan.rows, mask_data, reduction, scratch.data(), lists);
    }
  });
}

}  // namespace torch_al::ops
