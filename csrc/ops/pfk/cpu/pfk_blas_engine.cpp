#include "ops/pfk/pfk_entry.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "ops/pfk/cpu/pfk_avx_scans.h"
#include "ops/pfk/cpu/pfk_brgemm_engine.h"
#include "ops/pfk/pfk_topk_math.h"

namespace torch_al::ops {

namespace {

// Tiles are multiplied one after the other by the multithreaded BLAS and reduced by
// at::parallel_for over rows. Running whole tiles per thread instead (each thread its own tile
// and top-k) was measured 5-30x slower on a loaded 2-core machine: BLAS calls nested in the
// parallel region oversubscribe the cores. A tile of ~512 KiB per factor stays in L2 between the
// product and the epilogue that reads it, and BLAS runs such tiles at or above its speed on the
// whole (M, N) product (a sweep of widths 64..16384 at M = 125 and 1250, L = 80 and 768).
constexpr int64_t kTileBytes = int64_t{1} << 19;
constexpr int64_t kMinTileWidth = 256;
constexpr int64_t kMaxTileWidth = 4096;
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

// Merges one tile row (pool columns begin .. begin + width) into a best-first list. Every column
// of this tile has a larger pool index than the entries already listed, so once the list is
// full a column enters exactly when its value exceeds the last one's: the threshold scan skips
// whole blocks of columns and the scalar insertion runs only in a block that holds a winner.
template <typename scalar_t, bool kBase, bool kRhs>
void merge_row(
    const TileRow<scalar_t>& row, int64_t width, int64_t begin, scalar_t* values, int64_t* indices, int64_t k) {
  int64_t n = 0;
  for (; n < width && indices[k - 1] < 0; ++n) {  // filling the list: every allowed column enters
    if (row.penalty[n] == 0) {
      insert_after_listed(values, indices, k, row_value<scalar_t, kBase, kRhs>(row, n), begin + n);
    }
  }
  scalar_t threshold = values[k - 1];
  const int64_t blocks_end = n + (width - n) / kScanBlock * kScanBlock;
  while (n < width) {
    n = first_block_beating<scalar_t, kBase, kRhs>(row, n, blocks_end, threshold, scan_with_avx2());
    const int64_t end = std::min(n + kScanBlock, width);
    for (int64_t j = n; j < end; ++j) {
      const scalar_t value = row_value<scalar_t, kBase, kRhs>(row, j);
      if (row.penalty[j] == 0 && value > threshold) {
        insert_after_listed(values, indices, k, value, begin + j);
        threshold = values[k - 1];
      }
    }
    n = end;
  }
}

// Merges rows [first_row, end_row) of a tile into the lists.
template <typename scalar_t, bool kBase, bool kRhs>
void merge_tile_rows(
    const scalar_t* base,
    const scalar_t* lhs,
    const scalar_t* rhs,
    int64_t first_row,
    int64_t end_row,
    int64_t width,
    int64_t begin,
    const scalar_t* penalty,
    const TopKLists<scalar_t>& lists) {
  for (int64_t m = first_row; m < end_row; ++m) {
    const auto row = tile_row<scalar_t, kBase, kRhs>(base, lhs, rhs, m * width, penalty);
    merge_row<scalar_t, kBase, kRhs>(
        row, width, begin, lists.values + m * lists.k, lists.indices + m * lists.k, lists.k);
  }
}

// best[n] = max_m R[m, n] over the tile's rows, for columns [first, end).
template <typename scalar_t, bool kBase, bool kRhs>
void column_maxima(
    const scalar_t* base,
    const scalar_t* lhs,
    const scalar_t* rhs,
    int64_t rows,
    int64_t width,
    int64_t first,
    int64_t end,
    scalar_t* best) {
  std::fill(best + first, best + end, -std::numeric_limits<scalar_t>::infinity());
  for (int64_t m = 0; m < rows; ++m) {
    const auto row = tile_row<scalar_t, kBase, kRhs>(base, lhs, rhs, m * width, nullptr);
    for (int64_t n = first; n < end; ++n) {
      const scalar_t value = row_value<scalar_t, kBase, kRhs>(row, n);
      best[n] = value > best[n] ? value : best[n];
    }
  }
}

template <typename scalar_t, bool kBase, bool kRhs>
void reduce_tile(
    const PfkTile& tile,
    int64_t rows,
    const scalar_t* penalty,
    PfkReduction reduction,
    scalar_t* scratch,
    const TopKLists<scalar_t>& lists) {
  const scalar_t* base = kBase ? tile.base.const_data_ptr<scalar_t>() : nullptr;
  const scalar_t* lhs = tile.lhs.const_data_ptr<scalar_t>();
  const scalar_t* rhs = kRhs ? tile.rhs.const_data_ptr<scalar_t>() : nullptr;
  const int64_t width = tile.width;
  if (reduction == PfkReduction::kPerQueryRow) {
    const int64_t grain = std::max<int64_t>(1, kEpilogueGrain / width);
    at::parallel_for(0, rows, grain, [&](int64_t first, int64_t end) {
      merge_tile_rows<scalar_t, kBase, kRhs>(base, lhs, rhs, first, end, width, tile.begin, penalty, lists);
    });
  } else {
    const int64_t grain = std::max<int64_t>(1, kEpilogueGrain / std::max<int64_t>(rows, 1));
    at::parallel_for(0, width, grain, [&](int64_t first, int64_t end) {
      column_maxima<scalar_t, kBase, kRhs>(base, lhs, rhs, rows, width, first, end, scratch);
    });
    merge_tile_rows<scalar_t, false, false>(nullptr, scratch, nullptr, 0, 1, width, tile.begin, penalty, lists);
  }
}

// Instantiates the epilogue for the tile's form so its inner loop carries no per-element branch.
template <typename scalar_t>
void reduce_tile_any_form(
    const PfkTile& tile,
    int64_t rows,
    const scalar_t* penalty,
    PfkReduction reduction,
    scalar_t* scratch,
    const TopKLists<scalar_t>& lists) {
  const bool has_base = tile.base.defined();
  const bool has_rhs = tile.rhs.defined();
  if (has_base) {
    reduce_tile<scalar_t, true, true>(tile, rows, penalty, reduction, scratch, lists);
  } else if (has_rhs) {
    reduce_tile<scalar_t, false, true>(tile, rows, penalty, reduction, scratch, lists);
  } else {
    reduce_tile<scalar_t, false, false>(tile, rows, penalty, reduction, scratch, lists);
  }
}

// Per column of the tile [begin, begin + width): 0, or -inf where the mask excludes it.
template <typename scalar_t>
void fill_penalty(const bool* mask, int64_t begin, int64_t width, scalar_t* penalty) {
  for (int64_t n = 0; n < width; ++n) {
    penalty[n] = mask != nullptr && mask[begin + n] ? -std::numeric_limits<scalar_t>::infinity() : scalar_t(0);
  }
}

}  // namespace

bool scan_with_avx2() {
#ifdef TORCH_AL_AVX2_SCAN
  static const bool allowed = [] {
    const auto capability = at::get_cpu_capability();
    return (capability == "AVX2" || capability == "AVX512") && __builtin_cpu_supports("avx2");
  }();
  return allowed;
#else
  return false;
#endif
}

void pfk_stream_cpu(
    const PfkPlan& plan, const at::Tensor& mask, PfkReduction reduction, at::Tensor& values, at::Tensor& indices) {
  if (pfk_brgemm_applies(plan, values.scalar_type())) {
    pfk_stream_brgemm(plan, mask, reduction, values, indices);
    return;
  }
  const auto options = values.options();
  const int64_t k = values.size(1);
  const int64_t width = tile_width(plan.rows, plan.columns, options.dtype().itemsize());
  PfkTileWorkspace workspace(plan, width, options);
  const bool* mask_data = mask.defined() ? mask.const_data_ptr<bool>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES(options.dtype().toScalarType(), "pfk_stream_cpu", [&] {
    const TopKLists<scalar_t> lists{values.mutable_data_ptr<scalar_t>(), indices.mutable_data_ptr<int64_t>(), k};
    std::vector<scalar_t> scratch(reduction == PfkReduction::kPerPoolColumn ? width : 0);
    std::vector<scalar_t> penalty(width);
    for (int64_t begin = 0; begin < plan.columns; begin += width) {
      const int64_t tile_columns = std::min(width, plan.columns - begin);
      const auto tile = workspace.compute(begin, tile_columns);
      fill_penalty(mask_data, begin, tile_columns, penalty.data());
      reduce_tile_any_form<scalar_t>(tile, plan.rows, penalty.data(), reduction, scratch.data(), lists);
    }
  });
}

}  // namespace torch_al::ops
