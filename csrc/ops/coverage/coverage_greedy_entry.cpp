#include "ops/coverage/coverage_greedy_entry.h"

#include <ATen/Context.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/aminmax.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/full.h>
#include <ATen/ops/nonzero.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>
#include <c10/core/DeviceGuard.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/coverage/coverage_greedy_math.h"

namespace torch_al::ops {

namespace {

constexpr const char* kOp = "coverage_greedy";
// A block of 512 rows by 4096 pool rows: 8 MiB of float32 products and 2 MiB of codes, whatever N is.
constexpr int64_t kRowBlock = 512;
constexpr int64_t kColumnTile = 4096;

// Rows of the pool that query a pass: their indices, centred points and centred square norms.
struct RowBlock {
  int64_t first;  // the block's offset in the pass's row list
  at::Tensor indices;
  at::Tensor centred;
  at::Tensor norms;
};

// The exact verdicts on a block of rows against a tile of pool rows (those of the column mask):
// how many of the tile's rows lie in each row's ball, in how many of the block's balls each tile
// row lies, and, when asked, which.
struct BlockVerdicts {
  at::Tensor row_counts;     // int64 [Q]
  at::Tensor column_counts;  // int64 [W]
  at::Tensor inside;         // bool [Q, W], or undefined
};

// The exact decisions of blocks of rows against tiles of the pool (coverage_greedy_math.h).
class CoveragePasses {
 public:
  CoveragePasses(const at::Tensor& points, double radius, CoverageScreen screen, CoverageExact exact)
      : points_(points),
        mean_(points.mean(0, /*keepdim=*/true)),
        radius_sq_(radius * radius),
        band_factor_(coverage_band_factor(
            points.size(1),
            points.scalar_type() == at::kDouble ? std::numeric_limits<double>::epsilon() / 2
                                                : std::numeric_limits<float>::epsilon() / 2)),
        screen_(screen),
        exact_(exact) {
    norms_ = at::empty({points.size(0)}, points.options());
    for (int64_t begin = 0; begin < points.size(0); begin += kColumnTile) {
      const int64_t width = std::min(kColumnTile, points.size(0) - begin);
      norms_.narrow(0, begin, width).copy_(points.narrow(0, begin, width).sub(mean_).square_().sum(1));
    }
  }

  // visit(block, begin, width, verdicts) for every block of `rows` and tile of the pool, counting
  // only the pool rows of column_mask (bool [N]; undefined: all); `with_inside` asks for the
  // verdicts pair by pair.
  template <typename Visit>
  void for_each_block(const at::Tensor& rows, const at::Tensor& column_mask, bool with_inside, Visit visit) const {
    for (int64_t first = 0; first < rows.size(0); first += kRowBlock) {
      const auto indices = rows.narrow(0, first, std::min(kRowBlock, rows.size(0) - first));
      const RowBlock block{
          first, indices, points_.index_select(0, indices).sub_(mean_), norms_.index_select(0, indices)};
      for (int64_t begin = 0; begin < points_.size(0); begin += kColumnTile) {
        const int64_t width = std::min(kColumnTile, points_.size(0) - begin);
        const auto mask = column_mask.defined() ? column_mask.narrow(0, begin, width) : at::Tensor();
        visit(block, begin, width, verdicts(block, begin, width, mask, with_inside));
      }
    }
  }

 private:
  BlockVerdicts verdicts(
      const RowBlock& block, int64_t begin, int64_t width, const at::Tensor& mask, bool with_inside) const {
    const auto column_norms = norms_.narrow(0, begin, width);
    at::Tensor partial;
    {
      // A TF32 product would break the band's bound.
      const at::NoTF32Guard exact_products;
      partial =
          at::addmm(column_norms.unsqueeze(0), block.centred, points_.narrow(0, begin, width).sub(mean_).t(), 1, -2);
    }
    const auto long_options = partial.options().dtype(at::kLong);
    BlockVerdicts out{
        at::zeros({partial.size(0)}, long_options), at::zeros({width}, long_options),
        with_inside ? at::zeros(partial.sizes(), partial.options().dtype(at::kBool)) : at::Tensor()};
    const auto unsure = screen_(
        partial, block.norms, column_norms, mask, radius_sq_, band_factor_, out.row_counts, out.column_counts,
        out.inside);
    if (unsure.size(0) > 0) {
      const auto row = unsure.select(1, 0);
      const auto column = unsure.select(1, 1);
      const auto confirmed = exact_(points_, block.indices.index_select(0, row), column.add(begin), radius_sq_);
      const auto ones = confirmed.to(at::kLong);
      out.row_counts.index_add_(0, row, ones);
      out.column_counts.index_add_(0, column, ones);
      if (with_inside) {
        out.inside.index_put_({row, column}, confirmed);
      }
    }
    return out;
  }

  at::Tensor points_;
  at::Tensor mean_;
  at::Tensor norms_;
  double radius_sq_;
  double band_factor_;
  CoverageScreen screen_;
  CoverageExact exact_;
};

// The rows that start covered and the rows that may be picked, after the checks that read the
// data (finite points, index range, enough selectable rows) in one host synchronisation.
std::tuple<at::Tensor, at::Tensor> plan_coverage(
    const at::Tensor& points,
    int64_t count,
    const std::optional<at::Tensor>& initial,
    const std::optional<at::Tensor>& exclude) {
  const int64_t n = points.size(0);
  const auto double_options = points.options().dtype(at::kDouble);
  std::vector<at::Tensor> facts;
  if (points.numel() > 0) {
    auto [lowest, highest] = at::aminmax(points);
    facts.push_back(lowest.to(at::kDouble));
    facts.push_back(highest.to(at::kDouble));
  } else {
    facts.push_back(at::zeros({}, double_options));
    facts.push_back(at::zeros({}, double_options));
  }
  auto initial_mask = at::zeros({n}, points.options().dtype(at::kBool));
  const bool indices = initial.has_value() && initial->scalar_type() == at::kLong;
  if (indices && initial->numel() > 0) {
    auto [lowest, highest] = at::aminmax(*initial);
    facts.push_back(lowest.to(at::kDouble));
    facts.push_back(highest.to(at::kDouble));
    initial_mask.index_fill_(0, initial->clamp(0, std::max<int64_t>(n - 1, 0)), true);
  } else if (initial.has_value() && !indices) {
    initial_mask.copy_(*initial);
  }
  auto selectable = initial_mask.logical_not();
  if (exclude.has_value()) {
    selectable.logical_and_(exclude->logical_not());
  }
  facts.push_back(selectable.sum().to(at::kDouble));
  const auto host = at::stack(facts).to(at::kCPU);  // the one host synchronisation
  const auto fact = host.accessor<double, 1>();
  TORCH_CHECK(std::isfinite(fact[0]) && std::isfinite(fact[1]), kOp, ": points contains NaN or inf; points must be finite");
  if (indices && initial->numel() > 0) {
    TORCH_CHECK(
        fact[2] >= 0 && fact[3] < static_cast<double>(n),
        kOp, ": initial indices must lie in [0, N) with N=", n, ", got values in [", static_cast<int64_t>(fact[2]), ", ",
        static_cast<int64_t>(fact[3]), "]");
  }
  const auto selectable_count = static_cast<int64_t>(fact[facts.size() - 1]);
  TORCH_CHECK(
      count <= selectable_count,
      kOp, ": count=", count, " is larger than the number of selectable rows, ", selectable_count, " (N=", n,
      " minus initial and excluded rows)");
  return {initial_mask, selectable};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> coverage_greedy_with(
    const at::Tensor& points,
    double radius,
    int64_t count,
    const std::optional<at::Tensor>& initial,
    const std::optional<at::Tensor>& exclude,
    CoverageScreen screen,
    CoverageExact exact) {
  check_coverage_greedy_inputs(points, radius, count, initial, exclude);
  const c10::DeviceGuard device_guard(points.device());
  const auto [initial_mask, selectable] = plan_coverage(points, count, initial, exclude);
  const auto long_options = points.options().dtype(at::kLong);
  if (count == 0) {
    return {at::empty({0}, long_options), at::empty({0}, long_options)};
  }
  const CoveragePasses passes(points.contiguous(), radius, screen, exact);
  const int64_t n = points.size(0);

  auto uncovered = at::full({n}, true, points.options().dtype(at::kBool));
  const at::Tensor every_column;
  passes.for_each_block(
      at::nonzero(initial_mask).view(-1), every_column, false,
      [&](const RowBlock&, int64_t begin, int64_t width, const BlockVerdicts& verdicts) {
        uncovered.narrow(0, begin, width).logical_and_(verdicts.column_counts.eq(0));
      });

  // A selectable row's degree: the uncovered points in its ball. Every other row stays below 0
  // (decrements only lower it), so the largest degree, first among equals, is the pick.
  auto degree = at::full({n}, -1, long_options);
  const auto candidates = at::nonzero(selectable).view(-1);
  auto candidate_degree = at::zeros({candidates.size(0)}, long_options);
  passes.for_each_block(
      candidates, uncovered, false, [&](const RowBlock& block, int64_t, int64_t, const BlockVerdicts& verdicts) {
        candidate_degree.narrow(0, block.first, block.indices.size(0)).add_(verdicts.row_counts);
      });
  degree.index_copy_(0, candidates, candidate_degree);

  std::vector<int64_t> picks(count);
  std::vector<int64_t> gains(count);
  for (int64_t t = 0; t < count; ++t) {
    const auto [best, row] = degree.max(0);
    const auto host = at::stack({best, row}).to(at::kCPU);  // a host synchronisation per pick
    picks[t] = host[1].item<int64_t>();
    gains[t] = host[0].item<int64_t>();
    if (gains[t] > 0) {
      std::vector<at::Tensor> parts;
      passes.for_each_block(
          row.view({1}), uncovered, true, [&](const RowBlock&, int64_t begin, int64_t, const BlockVerdicts& verdicts) {
            parts.push_back(at::nonzero(verdicts.inside[0]).view(-1).add_(begin));
          });
      const auto newly = at::cat(parts);
      TORCH_CHECK(
          newly.size(0) == gains[t], kOp, ": internal error: row ", picks[t], " has degree ", gains[t], " but covers ",
          newly.size(0), " new points");
      uncovered.index_fill_(0, newly, false);
      passes.for_each_block(
          newly, every_column, false,
          [&](const RowBlock&, int64_t begin, int64_t width, const BlockVerdicts& verdicts) {
            degree.narrow(0, begin, width).sub_(verdicts.column_counts);
          });
    }
    degree.index_fill_(0, row.view({1}), -1);
  }
  const auto cpu_long = at::TensorOptions().dtype(at::kLong);
  // Copied: from_blob only borrows the vectors' memory.
  return {
      at::from_blob(picks.data(), {count}, cpu_long).to(points.device(), /*non_blocking=*/false, /*copy=*/true),
      at::from_blob(gains.data(), {count}, cpu_long).to(points.device(), /*non_blocking=*/false, /*copy=*/true)};
}

}  // namespace torch_al::ops
