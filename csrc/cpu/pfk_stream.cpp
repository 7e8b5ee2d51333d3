#include "pfk_stream.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "../pfk_topk_math.h"

namespace torch_al::ops {

namespace {

// A tile's (M, width) buffers should stay in a core's L2 between the matrix multiply that writes
// them and the epilogue that reads them.
constexpr int64_t kTileBytes = int64_t{1} << 19;
constexpr int64_t kMinTileWidth = 16;
constexpr int64_t kMaxTileWidth = 8192;

int64_t tile_width(int64_t rows, int64_t columns, int64_t element_size, int64_t workers) {
  const int64_t fits_cache = kTileBytes / (std::max<int64_t>(rows, 1) * element_size);
  const int64_t width = std::clamp(fits_cache, kMinTileWidth, kMaxTileWidth);
  // Every worker gets at least one tile.
  const int64_t share = (columns + workers - 1) / workers;
  return std::max<int64_t>(1, std::min(width, share));
}

// Running best-first top-k lists, `rows` of them, k entries each.
template <typename scalar_t>
struct TopKLists {
  scalar_t* values;
  int64_t* indices;
  int64_t k;
};

// Merges rows [0, rows) of a tile into the lists: R = base + lhs * rhs, masked columns skipped.
template <typename scalar_t, bool kBase, bool kRhs>
void merge_tile_rows(
    const scalar_t* base, const scalar_t* lhs, const scalar_t* rhs, int64_t rows, int64_t width,
    int64_t begin, const bool* mask, const TopKLists<scalar_t>& lists) {
  for (int64_t m = 0; m < rows; ++m) {
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

// best[n] = max_m R[m, n] over the tile's rows.
template <typename scalar_t, bool kBase, bool kRhs>
void column_maxima(
    const scalar_t* base, const scalar_t* lhs, const scalar_t* rhs, int64_t rows, int64_t width,
    scalar_t* best) {
  std::fill(best, best + width, -std::numeric_limits<scalar_t>::infinity());
  for (int64_t m = 0; m < rows; ++m) {
    const int64_t offset = m * width;
    for (int64_t n = 0; n < width; ++n) {
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
  if (reduction == PfkReduction::kPerQueryRow) {
    merge_tile_rows<scalar_t, kBase, kRhs>(base, lhs, rhs, rows, tile.width, tile.begin, mask, lists);
  } else {
    column_maxima<scalar_t, kBase, kRhs>(base, lhs, rhs, rows, tile.width, scratch);
    merge_tile_rows<scalar_t, false, false>(nullptr, scratch, nullptr, 1, tile.width, tile.begin, mask, lists);
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

std::tuple<at::Tensor, at::Tensor> pfk_stream_cpu(
    const PfkPlan& plan, const at::Tensor& mask, int64_t k, PfkReduction reduction,
    const at::TensorOptions& options) {
  const int64_t out_rows = reduction == PfkReduction::kPerQueryRow ? plan.rows : 1;
  const int64_t columns = plan.columns;
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  const int64_t width = tile_width(plan.rows, columns, options.dtype().itemsize(), threads);
  const int64_t num_tiles = columns == 0 ? 0 : (columns + width - 1) / width;
  // Each worker keeps its own lists over a contiguous run of tiles; they are merged at the end.
  const int64_t workers = std::max<int64_t>(1, std::min(threads, num_tiles));
  auto values = at::full({workers, out_rows, k}, -std::numeric_limits<double>::infinity(), options);
  auto indices = at::full({workers, out_rows, k}, -1, options.dtype(at::kLong));
  if (k == 0 || out_rows == 0 || num_tiles == 0) {
    return {values[0], indices[0]};
  }
  const bool* mask_data = mask.defined() ? mask.const_data_ptr<bool>() : nullptr;

  AT_DISPATCH_FLOATING_TYPES(options.dtype().toScalarType(), "pfk_stream_cpu", [&] {
    scalar_t* all_values = values.mutable_data_ptr<scalar_t>();
    int64_t* all_indices = indices.mutable_data_ptr<int64_t>();
    const int64_t list_size = out_rows * k;
    at::parallel_for(0, workers, 1, [&](int64_t first_worker, int64_t end_worker) {
      for (int64_t w = first_worker; w < end_worker; ++w) {
        const TopKLists<scalar_t> lists{all_values + w * list_size, all_indices + w * list_size, k};
        PfkTileWorkspace workspace(plan, width, options);
        std::vector<scalar_t> scratch(reduction == PfkReduction::kPerPoolColumn ? width : 0);
        for (int64_t t = w * num_tiles / workers; t < (w + 1) * num_tiles / workers; ++t) {
          const int64_t begin = t * width;
          const auto tile = workspace.compute(begin, std::min(width, columns - begin));
          reduce_tile_any_form<scalar_t>(tile, plan.rows, mask_data, reduction, scratch.data(), lists);
        }
      }
    });
    // The workers' lists hold disjoint columns; insertion under the total order merges them exactly.
    const int64_t grain = std::max<int64_t>(1, 4096 / (k * workers));
    at::parallel_for(0, out_rows, grain, [&](int64_t first_row, int64_t end_row) {
      for (int64_t m = first_row; m < end_row; ++m) {
        scalar_t* best_values = all_values + m * k;
        int64_t* best_indices = all_indices + m * k;
        for (int64_t w = 1; w < workers; ++w) {
          const int64_t offset = w * list_size + m * k;
          for (int64_t i = 0; i < k && all_indices[offset + i] >= 0; ++i) {
            insert_sorted(best_values, best_indices, k, all_values[offset + i], all_indices[offset + i]);
          }
        }
      }
    });
  });
  return {values[0].clone(), indices[0].clone()};
}

}  // namespace torch_al::ops
