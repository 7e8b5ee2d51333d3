#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/string_view.h>

#include <optional>
#include <tuple>

#include "macros.h"

namespace torch_al::ops {

// Per query row m, the k pool rows nearest to it under `metric` ("sqeuclidean": ||q - p||^2,
// "cosine": 1 - cos(q, p)), nearest first, ties to the lower pool index, padded with (inf, -1)
// where fewer than k rows are allowed. pool_mask (N,) bool excludes pool rows (True); query_index
// (M,) int64 names the pool row each query row is (-1: none), which is then not its own neighbour.
// The pool is streamed through pfk_topk's engines (never the M x N matrix); the kept candidates'
// distances are then recomputed exactly and ranked again (nearest_neighbours_entry.h).
// Returns (distances[M, k], indices[M, k] int64).
TORCH_AL_API std::tuple<at::Tensor, at::Tensor> nearest_neighbours(
    const at::Tensor& query,
    const at::Tensor& pool,
    int64_t k,
    const std::optional<at::Tensor>& pool_mask = std::nullopt,
    const std::optional<at::Tensor>& query_index = std::nullopt,
    c10::string_view metric = "sqeuclidean",
    bool check_finite = true);

// The schema's arguments, borrowed for one call.
struct NearestNeighboursArgs {
  const at::Tensor& query;
  const at::Tensor& pool;
  int64_t k;
  const std::optional<at::Tensor>& pool_mask;
  const std::optional<at::Tensor>& query_index;
  c10::string_view metric;
  bool check_finite;
};

// Validation every backend runs first (the Python fake mirrors it): shapes, dtypes, devices, the
// mask, the query index's shape and range, k >= 0, the metric's name.
void check_nearest_neighbours_inputs(const NearestNeighboursArgs& args);

}  // namespace torch_al::ops
