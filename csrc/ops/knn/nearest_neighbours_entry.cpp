#include "ops/knn/nearest_neighbours_entry.h"

#include "ops/pfk/pfk_plan.h"
#include "ops/pfk/pfk_rescore.h"

#include <ATen/ops/aminmax.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/where.h>
#include <c10/core/DeviceGuard.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace torch_al::ops {

namespace {

constexpr const char* kOp = "nearest_neighbours";
// The floor of a norm under "cosine", so a zero row is at distance 1 from everything (cos = 0).
constexpr double kCosineNormFloor = 1e-8;
// Most pool elements gathered at once for the exact re-rank.
constexpr int64_t kGatherElements = int64_t{1} << 22;
constexpr double kInfinity = std::numeric_limits<double>::infinity();

// The checks that read the data, in one host synchronisation: the points are finite and every
// query index is a pool row or -1.
void check_values(const NearestNeighboursArgs& args) {
  std::vector<at::Tensor> extremes;
  const auto add = [&](const at::Tensor& tensor) {
    auto [lowest, highest] = at::aminmax(tensor);
    extremes.push_back(at::stack({lowest.to(at::kDouble), highest.to(at::kDouble)}));
  };
  const bool points = args.query.numel() > 0 && args.pool.numel() > 0;
  if (points) {
    add(args.query);
    add(args.pool);
  }
  const bool indices = args.query_index.has_value() && args.query_index->numel() > 0;
  if (indices) {
    add(*args.query_index);
  }
  if (extremes.empty()) {
    return;
  }
  const auto host = at::stack(extremes).to(at::kCPU);  // the one host synchronisation
  const auto bounds = host.accessor<double, 2>();
  if (points) {
    TORCH_CHECK(
        std::isfinite(bounds[0][0]) && std::isfinite(bounds[0][1]), kOp, ": query contains NaN or inf; points must be finite");
    TORCH_CHECK(
        std::isfinite(bounds[1][0]) && std::isfinite(bounds[1][1]), kOp, ": pool contains NaN or inf; points must be finite");
  }
  if (indices) {
    const int64_t last = points ? 2 : 0;
    const int64_t n = args.pool.size(0);
    TORCH_CHECK(
        bounds[last][0] >= -1 && bounds[last][1] < static_cast<double>(n),
        kOp, ": query_index must hold pool rows in [0, N=", n, ") or -1, got values in [",
        static_cast<int64_t>(bounds[last][0]), ", ", static_cast<int64_t>(bounds[last][1]), "]");
  }
}

// ||p||^2 per pool row as an (N, 1) column, summed from the squares (a norm squared is off in the
// last bit, which would break exact ties between integer points), a block of rows at a time so
// no (N, D) temporary exists.
at::Tensor square_norms(const at::Tensor& pool) {
  auto out = at::empty({pool.size(0), 1}, pool.options());
  const int64_t block = std::max<int64_t>(1, kGatherElements / std::max<int64_t>(1, pool.size(1)));
  for (int64_t first = 0; first < pool.size(0); first += block) {
    const int64_t count = std::min(block, pool.size(0) - first);
    const auto rows = pool.narrow(0, first, count);
    auto part = out.narrow(0, first, count);
    at::sum_out(part, rows.mul(rows), {1}, /*keepdim=*/true);
  }
  return out;
}

// The plan whose largest values are each query row's nearest pool rows (see the header).
PfkPlan screen_plan(const at::Tensor& query, const at::Tensor& pool, c10::string_view metric) {
  const auto ones = at::ones({query.size(0), 1}, query.options());
  auto norms = square_norms(pool);
  if (metric == "sqeuclidean") {
    return make_pfk_plan({query, ones}, {pool, norms.mul_(-0.5)}, {}, {}, "product");
  }
  const auto inverse_norms = norms.sqrt_().clamp_min_(kCosineNormFloor).reciprocal_();
  return make_pfk_plan({query}, {pool}, {ones}, {inverse_norms}, "product");
}

// The exact distances of query rows [first, first + count) to their candidate pool rows
// (count, c), from the difference (sqeuclidean) or the normalised product (cosine).
at::Tensor candidate_distances(
    const at::Tensor& query,
    const at::Tensor& pool,
    c10::string_view metric,
    int64_t first,
    const at::Tensor& columns) {
  const int64_t count = columns.size(0);
  const auto rows = pool.index_select(0, columns.flatten()).view({count, columns.size(1), pool.size(1)});
  const auto q = query.narrow(0, first, count).unsqueeze(1);
  if (metric == "sqeuclidean") {
    return rows.sub(q).square_().sum(2);
  }
  const auto dots = rows.mul(q).sum(2);
  const auto pool_norms = at::linalg_vector_norm(rows, 2, {2}).clamp_min_(kCosineNormFloor);
  const auto query_norms = at::linalg_vector_norm(q, 2, {2}).clamp_min_(kCosineNormFloor);
  return dots.div_(pool_norms.mul_(query_norms)).neg_().add_(1);
}

// The k nearest of each row's candidates by exact distance; a candidate that is the row's own
// pool row (query_index) is dropped.
std::tuple<at::Tensor, at::Tensor> rerank(const NearestNeighboursArgs& args, const at::Tensor& candidates) {
  const int64_t width = candidates.size(1);
  const int64_t rows = candidates.size(0);
  const int64_t chunk = std::max<int64_t>(1, kGatherElements / std::max<int64_t>(1, width * args.pool.size(1)));
  std::vector<at::Tensor> parts;
  for (int64_t first = 0; first < rows; first += chunk) {
    const int64_t count = std::min(chunk, rows - first);
    const auto columns = candidates.narrow(0, first, count).clamp_min(0);
    parts.push_back(candidate_distances(args.query, args.pool, args.metric, first, columns));
  }
  auto dropped = candidates.lt(0);
  if (args.query_index.has_value()) {
    dropped = dropped.logical_or_(candidates.eq(args.query_index->unsqueeze(1)));
  }
  // best_k_of_candidates ranks by largest value: the negated distance.
  const auto scores = at::where(dropped, -kInfinity, at::cat(parts, 0).neg_());
  const auto indices = at::where(dropped, -1, candidates);
  auto [values, kept] = best_k_of_candidates(scores, indices, args.k);
  return {values.neg_(), kept};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> nearest_neighbours_with(const NearestNeighboursArgs& args, PfkStream stream) {
  check_nearest_neighbours_inputs(args);
  const c10::DeviceGuard device_guard(args.query.device());
  if (args.check_finite) {
    check_values(args);
  }
  const int64_t rows = args.query.size(0);
  const int64_t columns = args.pool.size(0);
  const auto options = args.query.options();
  if (rows == 0 || args.k == 0 || columns == 0) {
    return {at::full({rows, args.k}, kInfinity, options), at::full({rows, args.k}, -1, options.dtype(at::kLong))};
  }
  const bool drops_own_row = args.query_index.has_value();
  const int64_t kept = pfk_screen_width(args.k + (drops_own_row ? 1 : 0), columns);
  auto values = at::full({rows, kept}, -kInfinity, options);
  auto indices = at::full({rows, kept}, -1, options.dtype(at::kLong));
  const auto plan = screen_plan(args.query.contiguous(), args.pool, args.metric);
  const auto mask = args.pool_mask.has_value() ? args.pool_mask->contiguous() : at::Tensor();
  stream(plan, mask, PfkReduction::kPerQueryRow, values, indices);
  // The screen kept at least k + 1 candidates where a row's own row may be dropped, so k remain.
  return rerank(args, indices);
}

}  // namespace torch_al::ops
