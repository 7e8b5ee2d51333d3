#pragma once

// The entry of nearest_neighbours, device-generic: the distance ranking is turned into a PFK plan
// and streamed by the backend's pfk_topk engine, then the screen's candidates are re-ranked by
// their exact distances.
//
// "sqeuclidean": ||q - p||^2 = ||q||^2 - 2 (q . p - ||p||^2 / 2), so per query row the nearest
// pool rows are those with the largest <[q, 1], [p, -||p||^2 / 2]>, a no-gradient plan of two
// scales (the pool read in place, plus an (N, 1) column). "cosine": the largest q . p / ||p||,
// a single-scale product plan with g = (1, 1 / ||p||). Neither product is the distance to the
// last bit (cancellation), so the screen keeps pfk_screen_width candidates per row, one more when
// the row's own pool row must be dropped, and their distances are recomputed from the difference.

#include <ATen/core/Tensor.h>

#include <tuple>

#include "ops/knn/nearest_neighbours.h"
#include "ops/pfk/pfk_entry.h"

namespace torch_al::ops {

std::tuple<at::Tensor, at::Tensor> nearest_neighbours_with(const NearestNeighboursArgs& args, PfkStream stream);

// The kernel each backend registers: nearest_neighbours_kernel<pfk_stream_cpu> on CPU, <pfk_stream_cuda> on CUDA.
template <PfkStream stream>
std::tuple<at::Tensor, at::Tensor> nearest_neighbours_kernel(
    const at::Tensor& query,
    const at::Tensor& pool,
    int64_t k,
    const std::optional<at::Tensor>& pool_mask,
    const std::optional<at::Tensor>& query_index,
    c10::string_view metric,
    bool check_finite) {
  return nearest_neighbours_with({query, pool, k, pool_mask, query_index, metric, check_finite}, stream);
}

}  // namespace torch_al::ops
