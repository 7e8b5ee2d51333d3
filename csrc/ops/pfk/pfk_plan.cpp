#include "ops/pfk/pfk_plan.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/mul.h>

#include <algorithm>

namespace torch_al::ops {

namespace {

PfkFactor make_factor(
    const std::vector<at::Tensor>& queries,
    const std::vector<at::Tensor>& pools,
    std::optional<at::ScalarType> screen_dtype) {
  PfkFactor factor;
  // The query side is small (M rows) and read by every tile: concatenate and pack it once.
  factor.query = queries.size() == 1 ? queries[0].contiguous() : at::cat(queries, 1);
  if (screen_dtype.has_value()) {
    factor.screen_query = factor.query.to(*screen_dtype);
  }
  factor.pool = pools;
  for (const auto& p : pools) {
    factor.width += p.size(1);
  }
  factor.joined = pools.size() == 1 ? pools[0] : adjacent_columns(pools);
  return factor;
}

std::vector<at::Tensor> joined(at::TensorList a, at::TensorList b) {
  std::vector<at::Tensor> out(a.begin(), a.end());
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

at::Tensor leading_view(at::Tensor& flat, int64_t rows, int64_t columns) {
  return flat.narrow(0, 0, rows * columns).view({rows, columns});
}

}  // namespace

at::Tensor adjacent_columns(at::TensorList scales) {
  const auto& first = scales[0];
  int64_t offset = first.storage_offset();
  for (const auto& scale : scales) {
    const bool next_slice = scale.is_alias_of(first) && scale.storage_offset() == offset &&
        scale.stride(0) == first.stride(0) && scale.stride(1) == 1;
    if (!next_slice) {
      return {};
    }
    offset += scale.size(1);
  }
  const int64_t width = offset - first.storage_offset();
  if (first.stride(0) < width) {
    return {};
  }
  return first.as_strided({first.size(0), width}, {first.stride(0), 1});
}

PfkPlan make_pfk_plan(
    at::TensorList query_z,
    at::TensorList pool_z,
    at::TensorList query_g,
    at::TensorList pool_g,
    c10::string_view combine,
    std::optional<at::ScalarType> screen_dtype) {
  PfkPlan plan;
  plan.rows = query_z[0].size(0);
  plan.columns = pool_z[0].size(0);
  plan.screen_dtype = screen_dtype;
  const auto make = [&](const std::vector<at::Tensor>& queries, const std::vector<at::Tensor>& pools) {
    return make_factor(queries, pools, screen_dtype);
  };
  const std::vector<at::Tensor> qz(query_z.begin(), query_z.end());
  const std::vector<at::Tensor> pz(pool_z.begin(), pool_z.end());
  if (query_g.empty()) {
    plan.terms.push_back({make(qz, pz), std::nullopt});
  } else if (combine == "sum") {
    // Σ_j (a_j + b_j) is one inner product of the concatenated [z, g] descriptors.
    plan.terms.push_back({make(joined(query_z, query_g), joined(pool_z, pool_g)), std::nullopt});
  } else if (combine == "product" || query_z.size() == 1) {
    const std::vector<at::Tensor> qg(query_g.begin(), query_g.end());
    const std::vector<at::Tensor> pg(pool_g.begin(), pool_g.end());
    plan.terms.push_back({make(qz, pz), make(qg, pg)});
  } else {  // fisher over several scales: the per-scale products do not factor
    for (size_t j = 0; j < query_z.size(); ++j) {
      plan.terms.push_back({make({query_z[j]}, {pool_z[j]}), make({query_g[j]}, {pool_g[j]})});
    }
  }
  return plan;
}

PfkTileWorkspace::PfkTileWorkspace(const PfkPlan& plan, int64_t max_width, const at::TensorOptions& options)
    : plan_(plan) {
  const int64_t tile_elements = plan.rows * max_width;
  int64_t packed_width = 0;
  int64_t screen_width = 0;
  bool has_rhs = false;
  const auto size_buffers_for = [&](const PfkFactor& factor) {
    screen_width = std::max(screen_width, factor.width);
    if (!factor.joined.defined() && !plan.screen_dtype.has_value()) {
      packed_width = std::max(packed_width, factor.width);
    }
  };
  for (const auto& term : plan.terms) {
    size_buffers_for(term.lhs);
    if (term.rhs.has_value()) {
      has_rhs = true;
      size_buffers_for(*term.rhs);
    }
  }
  if (plan.screen_dtype.has_value()) {
    screen_packed_ = at::empty({max_width * screen_width}, options.dtype(*plan.screen_dtype));
  }
  lhs_ = at::empty({tile_elements}, options);
  if (has_rhs) {
    rhs_ = at::empty({tile_elements}, options);
  }
  if (plan.terms.size() > 1) {
    base_ = at::empty({tile_elements}, options);
  }
  if (packed_width > 0) {
    packed_ = at::empty({max_width * packed_width}, options);
  }
}

at::Tensor PfkTileWorkspace::factor_product(const PfkFactor& factor, at::Tensor& buffer, int64_t begin, int64_t width) {
  auto out = leading_view(buffer, plan_.rows, width);
  if (plan_.screen_dtype.has_value()) {
    // Convert the tile's scales into one packed matrix of the screen's dtype, then multiply with
    // accumulation and output in the descriptors' dtype.
    auto screen_tile = leading_view(screen_packed_, width, factor.width);
    int64_t offset = 0;
    for (const auto& p : factor.pool) {
      screen_tile.narrow(1, offset, p.size(1)).copy_(p.narrow(0, begin, width));
      offset += p.size(1);
    }
    at::mm_out(out, factor.screen_query, screen_tile.t(), out.scalar_type());
    return out;
  }
  at::Tensor pool_tile;
  if (factor.joined.defined()) {
    pool_tile = factor.joined.narrow(0, begin, width);
  } else {
    pool_tile = leading_view(packed_, width, factor.width);
    std::vector<at::Tensor> slices;
    slices.reserve(factor.pool.size());
    for (const auto& p : factor.pool) {
      slices.push_back(p.narrow(0, begin, width));
    }
    at::cat_out(pool_tile, slices, 1);
  }
  at::mm_out(out, factor.query, pool_tile.t());
  return out;
}

PfkTile PfkTileWorkspace::compute(int64_t begin, int64_t width) {
  PfkTile tile;
  tile.begin = begin;
  tile.width = width;
  const size_t last = plan_.terms.size() - 1;
  for (size_t t = 0; t <= last; ++t) {
    const auto& term = plan_.terms[t];
    auto lhs = factor_product(term.lhs, lhs_, begin, width);
    at::Tensor rhs = term.rhs.has_value() ? factor_product(*term.rhs, rhs_, begin, width) : at::Tensor();
    if (t == last) {
      tile.lhs = lhs;
      tile.rhs = rhs;
      break;
    }
    // Earlier fisher scales fold into the base; the last one is fused into the epilogue.
    auto base = leading_view(base_, plan_.rows, width);
    if (t == 0) {
      at::mul_out(base, lhs, rhs);
    } else {
      base.addcmul_(lhs, rhs);
    }
  }
  if (last > 0) {
    tile.base = leading_view(base_, plan_.rows, width);
  }
  return tile;
}

}  // namespace torch_al::ops
