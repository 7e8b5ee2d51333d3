#include "ops/knn/nearest_neighbours.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

namespace torch_al::ops {

namespace {

constexpr const char* kOp = "nearest_neighbours";

void check_points(const char* name, const at::Tensor& points, const char* rows) {
  TORCH_CHECK(points.dim() == 2, kOp, ": ", name, " must be (", rows, ", D), got shape ", points.sizes());
  TORCH_CHECK(
      points.scalar_type() == at::kFloat || points.scalar_type() == at::kDouble,
      kOp, ": ", name, " must be float32 or float64, got ", points.scalar_type());
}

void check_on_device(const char* name, const at::Tensor& tensor, const at::Tensor& query) {
  TORCH_CHECK(
      tensor.device() == query.device(), kOp, ": ", name, " is on ", tensor.device(), " but query is on ", query.device());
}

}  // namespace

void check_nearest_neighbours_inputs(const NearestNeighboursArgs& args) {
  const auto& [query, pool, k, pool_mask, query_index, metric, check_finite] = args;
  check_points("query", query, "M");
  check_points("pool", pool, "N");
  TORCH_CHECK(
      pool.size(1) == query.size(1),
      kOp, ": pool has ", pool.size(1), " dimensions but query has ", query.size(1), " (shapes ", pool.sizes(), " and ",
      query.sizes(), ")");
  TORCH_CHECK(
      pool.scalar_type() == query.scalar_type(),
      kOp, ": pool dtype ", pool.scalar_type(), " must equal query dtype ", query.scalar_type());
  check_on_device("pool", pool, query);
  const int64_t n = pool.size(0);
  if (pool_mask.has_value()) {
    TORCH_CHECK(
        pool_mask->dim() == 1 && pool_mask->size(0) == n,
        kOp, ": pool_mask must be (N=", n, ",), got shape ", pool_mask->sizes());
    TORCH_CHECK(
        pool_mask->scalar_type() == at::kBool,
        kOp, ": pool_mask must be torch.bool (True = excluded), got ", pool_mask->scalar_type());
    check_on_device("pool_mask", *pool_mask, query);
  }
  if (query_index.has_value()) {
    TORCH_CHECK(
        query_index->dim() == 1 && query_index->size(0) == query.size(0),
        kOp, ": query_index must be (M=", query.size(0), ",), got shape ", query_index->sizes());
    TORCH_CHECK(
        query_index->scalar_type() == at::kLong,
        kOp, ": query_index must be int64 (a pool row, or -1), got ", query_index->scalar_type());
    check_on_device("query_index", *query_index, query);
  }
  TORCH_CHECK(k >= 0, kOp, ": k must be >= 0, got ", k);
  TORCH_CHECK(
      metric == "sqeuclidean" || metric == "cosine",
      kOp, ": metric must be \"sqeuclidean\" or \"cosine\", got \"", metric, "\"");
}

std::tuple<at::Tensor, at::Tensor> nearest_neighbours(
    const at::Tensor& query,
    const at::Tensor& pool,
    int64_t k,
    const std::optional<at::Tensor>& pool_mask,
    const std::optional<at::Tensor>& query_index,
    c10::string_view metric,
    bool check_finite) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("torch_al::nearest_neighbours", "")
                       .typed<decltype(nearest_neighbours)>();
  return op.call(query, pool, k, pool_mask, query_index, metric, check_finite);
}

TORCH_LIBRARY_FRAGMENT(torch_al, m) {
  m.set_python_module("torch_al._meta_registrations");
  m.def(
      "nearest_neighbours(Tensor query, Tensor pool, int k, Tensor? pool_mask=None, Tensor? query_index=None, "
      "str metric=\"sqeuclidean\", bool check_finite=True) -> (Tensor distances, Tensor indices)");
}

}  // namespace torch_al::ops
