#include "ops/pfk/cpu/pfk_brgemm_engine.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <ATen/native/CPUBlas.h>

#include <ATen/ops/zeros.h>

#include <algorithm>
#include <array>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "ops/pfk/cpu/pfk_avx_scans.h"
#include "ops/pfk/pfk_topk_math.h"

namespace torch_al::ops {

namespace {

// Blocks of 128 pool rows by 64 query rows (32 KiB per factor, in L2 from the GEMM to the
// epilogue): among 16..256 x 32..128 the kernel ran fastest about here over L = 80 and 768 and
// M = 128 and 1264 (158-222 GFLOP/s on one Zen 5 core; 64 x 64: 128-216). The lane masks of the
// epilogue hold one bit per query row of a block.
constexpr int64_t kPoolBlock = 128;
constexpr int64_t kQueryBlock = 64;
constexpr float kInfinity = std::numeric_limits<float>::infinity();
// The threshold of a list still filling: every value compares unordered with it, so it enters.
constexpr float kFilling = std::numeric_limits<float>::quiet_NaN();

// Adjacent pool scales read in place as one (N, width) matrix of row stride `stride`; they meet
// the query channels [channel, channel + width).
struct PoolRun {
  const float* data;
  int64_t stride;
  int64_t channel;
  int64_t width;
};

// A similarity factor as the blocks read it: the query side transposed once per call, (L, M) with
// rows `query_stride` apart (the GEMM's right operand), and the pool runs (its left operand).
struct BlockFactor {
  at::Tensor query_t;
  int64_t query_stride;
  std::vector<PoolRun> runs;
};

struct BlockTerm {
  BlockFactor lhs;
  std::optional<BlockFactor> rhs;
};

bool readable_in_place(const at::Tensor& scale) {
  return scale.size(1) == 0 ||
      ((scale.size(1) == 1 || scale.stride(1) == 1) && (scale.size(0) <= 1 || scale.stride(0) >= scale.size(1)));
}

bool readable_in_place(const PfkFactor& factor) {
  return factor.width > 0 &&
      std::all_of(factor.pool.begin(), factor.pool.end(), [](const at::Tensor& p) { return readable_in_place(p); });
}

// The pool scales grouped into maximal runs of adjacent column slices, so one GEMM covers each run.
std::vector<PoolRun> pool_runs(const std::vector<at::Tensor>& pool) {
  const at::TensorList scales(pool);
  std::vector<PoolRun> runs;
  int64_t channel = 0;
  size_t first = 0;
  while (first < scales.size()) {
    at::Tensor run = scales[first];
    size_t end = first + 1;
    for (; end < scales.size(); ++end) {
      auto longer = adjacent_columns(scales.slice(first, end + 1 - first));
      if (!longer.defined()) {
        break;
      }
      run = longer;
    }
    if (run.size(1) > 0) {
      const int64_t stride = run.size(0) <= 1 ? run.size(1) : run.stride(0);
      runs.push_back({run.const_data_ptr<float>(), stride, channel, run.size(1)});
    }
    channel += run.size(1);
    first = end;
  }
  return runs;
}

// Rows of the transposed query padded to whole cache lines: the GEMM kernel's vector loads of a
// query block then never straddle two lines (unpadded, M = 125 ran 1.2x slower).
constexpr int64_t kLineFloats = 16;

BlockFactor block_factor(const PfkFactor& factor) {
  const int64_t queries = factor.query.size(0);
  const int64_t stride = (queries + kLineFloats - 1) / kLineFloats * kLineFloats;
  auto query_t = at::zeros({factor.width, stride}, factor.query.options());
  query_t.narrow(1, 0, queries).copy_(factor.query.t());
  return {query_t, stride, pool_runs(factor.pool)};
}

std::vector<BlockTerm> block_terms(const PfkPlan& plan) {
  std::vector<BlockTerm> terms;
  for (const auto& term : plan.terms) {
    terms.push_back(
        {block_factor(term.lhs), term.rhs.has_value() ? std::optional(block_factor(*term.rhs)) : std::nullopt});
  }
  return terms;
}

// Which block: pool rows [pool_begin, pool_begin + rows) by query rows [query_begin, query_begin + cols).
struct BlockSpan {
  int64_t pool_begin;
  int64_t rows;
  int64_t query_begin;
  int64_t cols;
};

// out[n * kQueryBlock + m] = <pool row pool_begin + n, query row query_begin + m> over the
// factor's channels.
void factor_block(const BlockFactor& factor, const BlockSpan& span, float* out) {
  const float* query_t = factor.query_t.const_data_ptr<float>();
  bool accumulate = false;
  // The last block's padding columns (zeros) are multiplied too: whole vectors beat masked ones.
  const int64_t columns = std::min(kQueryBlock, factor.query_stride - span.query_begin);
  for (const auto& run : factor.runs) {
    at::native::cpublas::brgemm(
        span.rows, columns, run.width, run.stride, factor.query_stride, kQueryBlock, accumulate,
        run.data + span.pool_begin * run.stride, query_t + run.channel * factor.query_stride + span.query_begin, out,
        /*is_vnni=*/false);
    accumulate = true;
  }
}

// Best-first top-k lists of one thread, `rows` lists of k, and each list's entry threshold.
struct Lists {
  Lists(int64_t rows, int64_t k)
      : values(rows * k, -kInfinity), indices(rows * k, -1), thresholds(rows, kFilling), k(k) {}

  // Offers (value, index) to list r; `index` exceeds every index the list holds.
  void offer(int64_t r, float value, int64_t index) {
    float* list_values = values.data() + r * k;
    int64_t* list_indices = indices.data() + r * k;
    insert_after_listed(list_values, list_indices, k, value, index);
    thresholds[r] = list_indices[k - 1] < 0 ? kFilling : list_values[k - 1];
  }

  std::vector<float> values;
  std::vector<int64_t> indices;
  std::vector<float> thresholds;
  int64_t k;
};

// The scratch one thread reuses for every block: (kPoolBlock, kQueryBlock) blocks on cache lines.
struct alignas(64) BlockScratch {
  std::array<float, kPoolBlock * kQueryBlock> base;
  std::array<float, kPoolBlock * kQueryBlock> lhs;
  std::array<float, kPoolBlock * kQueryBlock> rhs;
  // Per pool row of the block, its best value over the query rows so far (pfk_column_topk).
  std::array<float, kPoolBlock> best;
};

// Computes the block's R = base + lhs * rhs into the scratch and returns its pieces as
// TileRow<float>{base, lhs, rhs} (base and rhs null when absent). Earlier fisher scales fold into
// the base; the last term is fused into the epilogue, as in the BLAS tiles.
TileRow<float> compute_block(const std::vector<BlockTerm>& terms, const BlockSpan& span, BlockScratch& scratch) {
  const size_t last = terms.size() - 1;
  for (size_t t = 0;; ++t) {
    factor_block(terms[t].lhs, span, scratch.lhs.data());
    if (terms[t].rhs.has_value()) {
      factor_block(*terms[t].rhs, span, scratch.rhs.data());
    }
    if (t == last) {
      break;
    }
    for (int64_t n = 0; n < span.rows; ++n) {
      for (int64_t i = n * kQueryBlock; i < n * kQueryBlock + span.cols; ++i) {
        const float product = scratch.lhs[i] * scratch.rhs[i];
        scratch.base[i] = t == 0 ? product : scratch.base[i] + product;
      }
    }
  }
  return {
      last > 0 ? scratch.base.data() : nullptr, scratch.lhs.data(),
      terms[last].rhs.has_value() ? scratch.rhs.data() : nullptr, nullptr};
}

bool masked(const bool* mask, int64_t index) {
  return mask != nullptr && mask[index];
}

// pfk_topk: each pool row of the block offers its value to every query row whose list it may enter.
// Pool rows come in increasing index, so past a full list's threshold a value enters exactly when
// it is larger.
template <bool kBase, bool kRhs>
void merge_block_per_query(
    const TileRow<float>& block, const BlockSpan& span, const bool* mask, bool avx2, Lists& lists) {
  for (int64_t n = 0; n < span.rows; ++n) {
    if (masked(mask, span.pool_begin + n)) {
      continue;
    }
    const auto row = tile_row<float, kBase, kRhs>(block.base, block.lhs, block.rhs, n * kQueryBlock, nullptr);
    uint64_t lanes =
        lanes_may_enter<float, kBase, kRhs>(row, lists.thresholds.data() + span.query_begin, span.cols, avx2);
    while (lanes != 0) {
      const int m = __builtin_ctzll(lanes);
      lanes &= lanes - 1;
      lists.offer(span.query_begin + m, row_value<float, kBase, kRhs>(row, m), span.pool_begin + n);
    }
  }
}

// pfk_column_topk, first half: best[n] = max over the block's query rows of R[n, m], folded over
// the query blocks of one pool block.
template <bool kBase, bool kRhs>
void fold_block_per_column(const TileRow<float>& block, const BlockSpan& span, bool avx2, float* best) {
  for (int64_t n = 0; n < span.rows; ++n) {
    const auto row = tile_row<float, kBase, kRhs>(block.base, block.lhs, block.rhs, n * kQueryBlock, nullptr);
    best[n] = row_max<float, kBase, kRhs>(row, span.cols, best[n], avx2);
  }
}

template <bool kBase, bool kRhs>
void reduce_block(
    const TileRow<float>& block,
    const BlockSpan& span,
    PfkReduction reduction,
    const bool* mask,
    bool avx2,
    BlockScratch& scratch,
    Lists& lists) {
  if (reduction == PfkReduction::kPerQueryRow) {
    merge_block_per_query<kBase, kRhs>(block, span, mask, avx2, lists);
  } else {
    fold_block_per_column<kBase, kRhs>(block, span, avx2, scratch.best.data());
  }
}

// Instantiates the epilogue for the block's form so its inner loop carries no per-element branch.
void reduce_block_any_form(
    const TileRow<float>& block,
    const BlockSpan& span,
    PfkReduction reduction,
    const bool* mask,
    bool avx2,
    BlockScratch& scratch,
    Lists& lists) {
  if (block.base != nullptr) {
    reduce_block<true, true>(block, span, reduction, mask, avx2, scratch, lists);
  } else if (block.rhs != nullptr) {
    reduce_block<false, true>(block, span, reduction, mask, avx2, scratch, lists);
  } else {
    reduce_block<false, false>(block, span, reduction, mask, avx2, scratch, lists);
  }
}

bool all_masked(const bool* mask, int64_t begin, int64_t rows) {
  return mask != nullptr && std::all_of(mask + begin, mask + begin + rows, [](bool m) { return m; });
}

// One thread's share: pool blocks [first, end), every query block of each before the next.
void stream_pool_blocks(
    const std::vector<BlockTerm>& terms,
    const PfkPlan& plan,
    const bool* mask,
    PfkReduction reduction,
    int64_t first,
    int64_t end,
    Lists& lists) {
  const bool avx2 = scan_with_avx2();
  const auto scratch_holder = std::make_unique<BlockScratch>();
  BlockScratch& scratch = *scratch_holder;
  for (int64_t b = first; b < end; ++b) {
    const int64_t pool_begin = b * kPoolBlock;
    const int64_t rows = std::min(kPoolBlock, plan.columns - pool_begin);
    if (all_masked(mask, pool_begin, rows)) {
      continue;
    }
    std::fill(scratch.best.begin(), scratch.best.end(), -kInfinity);
    for (int64_t query_begin = 0; query_begin < plan.rows; query_begin += kQueryBlock) {
      const BlockSpan span{pool_begin, rows, query_begin, std::min(kQueryBlock, plan.rows - query_begin)};
      const auto block = compute_block(terms, span, scratch);
      reduce_block_any_form(block, span, reduction, mask, avx2, scratch, lists);
    }
    if (reduction == PfkReduction::kPerPoolColumn) {
      for (int64_t n = 0; n < rows; ++n) {
        if (!masked(mask, pool_begin + n) && !(scratch.best[n] <= lists.thresholds[0])) {
          lists.offer(0, scratch.best[n], pool_begin + n);
        }
      }
    }
  }
  at::native::cpublas::brgemm_release(/*is_vnni=*/false);
}

// Merges one thread's best-first lists into the output's, keeping the k best of each pair under
// `beats` (the threads' pool ranges are disjoint, so no index is listed twice).
void merge_lists(const Lists& part, float* values, int64_t* indices, int64_t rows) {
  const int64_t k = part.k;
  at::parallel_for(0, rows, std::max<int64_t>(1, 4096 / k), [&](int64_t first, int64_t end) {
    std::vector<float> merged_values(k);
    std::vector<int64_t> merged_indices(k);
    for (int64_t r = first; r < end; ++r) {
      float* out_values = values + r * k;
      int64_t* out_indices = indices + r * k;
      const float* in_values = part.values.data() + r * k;
      const int64_t* in_indices = part.indices.data() + r * k;
      int64_t i = 0;
      int64_t j = 0;
      for (int64_t t = 0; t < k; ++t) {
        const bool take_in = beats(in_values[j], in_indices[j], out_values[i], out_indices[i]);
        merged_values[t] = take_in ? in_values[j] : out_values[i];
        merged_indices[t] = take_in ? in_indices[j++] : out_indices[i++];
      }
      std::copy(merged_values.begin(), merged_values.end(), out_values);
      std::copy(merged_indices.begin(), merged_indices.end(), out_indices);
    }
  });
}

bool blocks_beat_blas_here() {
  static const bool faster = at::hasMKLDNN() && at::get_cpu_capability() == "AVX512";
  return faster;
}

}  // namespace

bool pfk_brgemm_applies(const PfkPlan& plan, at::ScalarType dtype) {
  if (dtype != at::kFloat || plan.screen_dtype.has_value() || !blocks_beat_blas_here()) {
    return false;
  }
  return std::all_of(plan.terms.begin(), plan.terms.end(), [](const PfkTerm& term) {
    return readable_in_place(term.lhs) && (!term.rhs.has_value() || readable_in_place(*term.rhs));
  });
}

void pfk_stream_brgemm(
    const PfkPlan& plan, const at::Tensor& mask, PfkReduction reduction, at::Tensor& values, at::Tensor& indices) {
  const auto terms = block_terms(plan);
  const bool* mask_data = mask.defined() ? mask.const_data_ptr<bool>() : nullptr;
  const int64_t lists_rows = values.size(0);
  const int64_t k = values.size(1);
  const int64_t pool_blocks = (plan.columns + kPoolBlock - 1) / kPoolBlock;
  std::mutex parts_mutex;
  std::vector<Lists> parts;
  at::parallel_for(0, pool_blocks, 1, [&](int64_t first, int64_t end) {
    Lists lists(lists_rows, k);
    stream_pool_blocks(terms, plan, mask_data, reduction, first, end, lists);
    const std::lock_guard<std::mutex> lock(parts_mutex);
    parts.push_back(std::move(lists));
  });
  for (const auto& part : parts) {
    merge_lists(part, values.mutable_data_ptr<float>(), indices.mutable_data_ptr<int64_t>(), lists_rows);
  }
}

}  // namespace torch_al::ops
