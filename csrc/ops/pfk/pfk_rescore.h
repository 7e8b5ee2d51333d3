#pragma once

// precision "fast" of pfk_topk / pfk_column_topk: the streamed screen keeps more candidates than
// asked (pfk_screen_width), then each kept candidate's kernel value is recomputed exactly from
// the descriptors and the best k are chosen again, ties to the lower pool index. The result is
// the exact top-k whenever the exact top-k is among the screen's candidates: in particular when
// the k-th best exact value leads the (k' + 1)-th by more than twice the screen's error.

#include <ATen/core/Tensor.h>

#include <tuple>

#include "ops/pfk/pfk_plan.h"

namespace torch_al::ops {

// Columns the screen keeps for a final top-k over `columns` pool columns: k plus a margin of
// max(k, 16), at most the pool, never fewer than k.
int64_t pfk_screen_width(int64_t k, int64_t columns);

// The best k of the screen's candidates (R, k') per row (-1: none), by exact values:
// (values[R, k], indices[R, k]), R = M per query row or 1 per pool column.
std::tuple<at::Tensor, at::Tensor> pfk_rescore(
    const PfkPlan& plan, const at::Tensor& candidates, PfkReduction reduction, int64_t k);

// Per row, the best k of (values, indices) (R, c) by value, ties and equal -inf values to the
// lower index, empty entries (-1) last: (values[R, min(k, c)], indices[R, min(k, c)]).
std::tuple<at::Tensor, at::Tensor> best_k_of_candidates(const at::Tensor& values, const at::Tensor& indices, int64_t k);

}  // namespace torch_al::ops
