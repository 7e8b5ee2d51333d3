#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

#include "macros.h"

namespace torch_al::ops {

// ProbCover's greedy (Yehuda et al., NeurIPS 2022) on the points[N, D] themselves: each of `count`
// picks is the selectable row whose ball {x : ||x - row|| <= radius} holds the most points not yet
// covered (ties to the lower row); its ball then counts as covered. Rows of `initial` (a bool mask
// of N or int64 row indices: the labeled set) start with their balls covered and are never picked;
// rows of `exclude` (a bool mask) are never picked but still count as points to cover. Once no ball
// holds an uncovered point, the picks go on with gain 0 in row order. Exact: the degrees are the
// integers a dense greedy counts (coverage_greedy_math.h), kept by decrements from the newly covered
// points' balls, never an N x N matrix or an edge list. Returns (picks[count] int64 in pick order,
// gains[count] int64: the points each pick newly covers).
TORCH_AL_API std::tuple<at::Tensor, at::Tensor> coverage_greedy(
    const at::Tensor& points,
    double radius,
    int64_t count,
    const std::optional<at::Tensor>& initial,
    const std::optional<at::Tensor>& exclude);

// Shape, dtype, device and argument checks that need no data, shared by every backend (the Python
// fake mirrors them).
void check_coverage_greedy_inputs(
    const at::Tensor& points,
    double radius,
    int64_t count,
    const std::optional<at::Tensor>& initial,
    const std::optional<at::Tensor>& exclude);

}  // namespace torch_al::ops
