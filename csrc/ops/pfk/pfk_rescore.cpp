#include "ops/pfk/pfk_rescore.h"

#include <ATen/Context.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/full.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/where.h>

#include <algorithm>
#include <limits>
#include <vector>

namespace torch_al::ops {

namespace {

constexpr int64_t kMinScreenMargin = 16;
// Most pool-descriptor elements gathered at once for the per-row re-score.
constexpr int64_t kGatherElements = int64_t{1} << 24;

// query[m] · pool[columns[m, j]] for the factor's query rows [first, first + count), exactly:
// columns is (count, c), or (1, c) shared by every row.
at::Tensor factor_values(const PfkFactor& factor, int64_t first, int64_t count, const at::Tensor& columns) {
  const auto flat = columns.flatten();
  std::vector<at::Tensor> gathered;
  gathered.reserve(factor.pool.size());
  for (const auto& p : factor.pool) {
    gathered.push_back(p.index_select(0, flat));
  }
  const auto pool_rows = gathered.size() == 1 ? gathered[0] : at::cat(gathered, 1);  // (count·c or c, L)
  const auto query = factor.query.narrow(0, first, count);
  if (columns.size(0) == 1) {
    return at::mm(query, pool_rows.t());
  }
  return at::bmm(pool_rows.view({count, columns.size(1), factor.width}), query.unsqueeze(2)).squeeze(2);
}

// R[m, columns[m, j]] of rows [first, first + count) under the plan's combine, a non-finite value as -inf.
at::Tensor exact_values(const PfkPlan& plan, int64_t first, int64_t count, const at::Tensor& columns) {
  at::Tensor total;
  for (const auto& term : plan.terms) {
    auto value = factor_values(term.lhs, first, count, columns);
    if (term.rhs.has_value()) {
      value = value.mul(factor_values(*term.rhs, first, count, columns));
    }
    total = total.defined() ? total.add(value) : value;
  }
  return at::where(total.isfinite(), total, -std::numeric_limits<double>::infinity());
}

int64_t widest_factor(const PfkPlan& plan) {
  int64_t widest = 1;
  for (const auto& term : plan.terms) {
    widest = std::max(widest, term.lhs.width);
    if (term.rhs.has_value()) {
      widest = std::max(widest, term.rhs->width);
    }
  }
  return widest;
}

}  // namespace

// A stable sort by index, then a stable sort by value.
std::tuple<at::Tensor, at::Tensor> best_k_of_candidates(
    const at::Tensor& values, const at::Tensor& indices, int64_t k) {
  const auto index_key = at::where(indices.lt(0), std::numeric_limits<int64_t>::max(), indices);
  const auto by_index = std::get<1>(at::sort(index_key, /*stable=*/true, /*dim=*/1, /*descending=*/false));
  const auto sorted_values = values.gather(1, by_index);
  const auto sorted_indices = indices.gather(1, by_index);
  const auto by_value = std::get<1>(at::sort(sorted_values, /*stable=*/true, /*dim=*/1, /*descending=*/true));
  const auto kept = by_value.narrow(1, 0, std::min(k, by_value.size(1)));
  return {sorted_values.gather(1, kept), sorted_indices.gather(1, kept)};
}

int64_t pfk_screen_width(int64_t k, int64_t columns) {
  return std::max(k, std::min(columns, k + std::max(k, kMinScreenMargin)));
}

std::tuple<at::Tensor, at::Tensor> pfk_rescore(
    const PfkPlan& plan, const at::Tensor& candidates, PfkReduction reduction, int64_t k) {
  const at::NoTF32Guard exact_products;
  const auto columns = candidates.clamp_min(0);
  const int64_t width = candidates.size(1);
  at::Tensor values;
  if (reduction == PfkReduction::kPerPoolColumn) {
    const auto& options = plan.terms[0].lhs.query.options();
    values = plan.rows > 0 ? exact_values(plan, 0, plan.rows, columns).amax(0, /*keepdim=*/true)
                           : at::full({1, width}, -std::numeric_limits<double>::infinity(), options);
  } else {
    const int64_t chunk = std::max<int64_t>(1, kGatherElements / (width * widest_factor(plan)));
    std::vector<at::Tensor> parts;
    for (int64_t first = 0; first < plan.rows; first += chunk) {
      const int64_t count = std::min(chunk, plan.rows - first);
      parts.push_back(exact_values(plan, first, count, columns.narrow(0, first, count)));
    }
    values = at::cat(parts, 0);
  }
  values = at::where(candidates.lt(0), -std::numeric_limits<double>::infinity(), values);
  return best_k_of_candidates(values, candidates, k);
}

}  // namespace torch_al::ops
