#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/string_view.h>

#include <optional>
#include <tuple>

#include "macros.h"

namespace torch_al::ops {

// k-center greedy (Sener & Savarese, ICLR 2018): k farthest-first picks from x[N, D], each the
// not-yet-covered, not-excluded point farthest from its nearest center (ties to the lower index).
// Returns (indices[k] int64 in pick order, min_dist[N] float32 (float64 for float64 x): every
// point's distance to its nearest center). `initial` (bool mask [N] or index list) starts
// covered; with an empty initial set the first pick is `first` (default 0; ignored when the
// initial set is not empty). metric is "euclidean" (plain distance) or "cosine" (1 - cosine
// similarity). `exclude` (bool mask [N]) marks points that may not be picked but still count in
// min_dist.
TORCH_AL_API std::tuple<at::Tensor, at::Tensor> kcenter_greedy(
    const at::Tensor& x,
    int64_t k,
    const std::optional<at::Tensor>& initial = std::nullopt,
    std::optional<int64_t> first = std::nullopt,
    c10::string_view metric = "euclidean",
    const std::optional<at::Tensor>& exclude = std::nullopt);

// Shape, dtype, device and option checks, shared by every backend (the Python fake mirrors
// them), so eager, compiled and C++ callers see the same errors. Returns whether metric is cosine.
bool check_kcenter_greedy_inputs(
    const at::Tensor& x,
    int64_t k,
    const std::optional<at::Tensor>& initial,
    c10::string_view metric,
    const std::optional<at::Tensor>& exclude);

// The checks of the points x[N, D] and the metric that kcenter_greedy and kcenter_greedy_step
// share, with `op` naming the op in the messages. Returns whether metric is cosine.
bool check_kcenter_points(const char* op, const at::Tensor& x, c10::string_view metric);

// What every backend needs once the inputs are validated.
struct KCenterGreedyPlan {
  at::Tensor selectable;       // bool [N]: neither initial nor excluded; picks are cleared from it
  at::Tensor initial_indices;  // int64 [S], ascending, distinct
  int64_t first;               // the first pick when S == 0 (and k > 0)
};

// Value checks that need the data (finite x, usable cosine norms, initial indices in range,
// k <= selectable points, a selectable `first`), gathered into one host sync per call.
// inverse_norms is the cosine row scale (undefined for the Euclidean metric).
KCenterGreedyPlan plan_kcenter_greedy(
    const at::Tensor& x,
    int64_t k,
    const std::optional<at::Tensor>& initial,
    std::optional<int64_t> first,
    const std::optional<at::Tensor>& exclude,
    const at::Tensor& inverse_norms);

// For a large set of centers[S, D] (rows, with their cosine scale; undefined scales for the
// Euclidean metric): the index (into centers) of each row of x's nearest center, by a blocked
// matrix product on data centred at the centers' mean (the expanded |x|^2 - 2 x.c + |c|^2 form
// then keeps its precision under a large common offset). Kernels recompute the exact distance to
// that center directly. Device-agnostic ATen code.
at::Tensor nearest_center(
    const at::Tensor& x, const at::Tensor& x_scale, const at::Tensor& centers, const at::Tensor& center_scale);

// nearest_center for centers that are rows of x: the index (into x) of each point's nearest initial
// center; an initial point is its own.
at::Tensor nearest_initial_center(
    const at::Tensor& x, const at::Tensor& inverse_norms, const at::Tensor& initial_indices);

// The dtype distances are accumulated and returned in: float64 for float64 x, else float32.
at::ScalarType kcenter_greedy_distance_dtype(const at::Tensor& x);

// Turns the running min squared distances into min_dist: sqrt for Euclidean, half for cosine
// (|x/|x| - c/|c||^2 / 2 = 1 - cos). In place.
void finish_min_dist(at::Tensor& min_sq, bool cosine);

}  // namespace torch_al::ops
