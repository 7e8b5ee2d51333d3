#pragma once

// The entry of coverage_greedy, device-generic: the greedy loop and the block products in ATen;
// each backend brings the two kernels that decide pairs (coverage_greedy_math.h).

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

#include "ops/coverage/coverage_greedy.h"

namespace torch_al::ops {

// Screens a block of pairs: partial[Q, W] (the points' dtype) with row_norms[Q] and
// column_norms[W] by screen_pair, over the columns where column_mask[W] (bool; undefined: all).
// Each surely inside pair adds 1 to row_counts[q] and column_counts[w] (int64, zeroed by the
// caller) and, when `inside` (bool [Q, W], false-filled) is defined, sets inside[q][w]. Returns
// the unsure pairs as an int64 (U, 2) tensor of (q, w), in any order.
using CoverageScreen = at::Tensor (*)(
    const at::Tensor& partial,
    const at::Tensor& row_norms,
    const at::Tensor& column_norms,
    const at::Tensor& column_mask,
    double radius_sq,
    double band_factor,
    at::Tensor& row_counts,
    at::Tensor& column_counts,
    at::Tensor& inside);

// inside[U] (bool) = exact_square_distance(points[rows[u]], points[columns[u]]) <= radius_sq.
using CoverageExact =
    at::Tensor (*)(const at::Tensor& points, const at::Tensor& rows, const at::Tensor& columns, double radius_sq);

std::tuple<at::Tensor, at::Tensor> coverage_greedy_with(
    const at::Tensor& points,
    double radius,
    int64_t count,
    const std::optional<at::Tensor>& initial,
    const std::optional<at::Tensor>& exclude,
    CoverageScreen screen,
    CoverageExact exact);

// The kernel each backend registers with its two kernels.
template <CoverageScreen screen, CoverageExact exact>
std::tuple<at::Tensor, at::Tensor> coverage_greedy_kernel(
    const at::Tensor& points,
    double radius,
    int64_t count,
    const std::optional<at::Tensor>& initial,
    const std::optional<at::Tensor>& exclude) {
  return coverage_greedy_with(points, radius, count, initial, exclude, screen, exact);
}

}  // namespace torch_al::ops
