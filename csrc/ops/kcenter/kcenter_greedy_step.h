#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/string_view.h>

#include <tuple>

#include "macros.h"

namespace torch_al::ops {

// One farthest-first step of k-center greedy against center rows given explicitly, for callers
// whose centers live elsewhere (another process's shard): lowers min_sq[i] (in place) to the squared
// distance of x[i] to its nearest row of centers[S, D] when that is smaller, then returns the
// farthest point with selectable[i] set: (value, a 0-dim tensor of min_sq's dtype: its min squared
// distance; index, a 0-dim int64 tensor), ties to the lower index; (-1, -1) when none is selectable.
// The distances are bit for bit those of kcenter_greedy on the same rows: S <= 16 centers are
// applied one pass each, more through the same nearest-center product. min_sq is float32 (float64
// for float64 x), contiguous, +inf for "no center yet". metric "cosine" works on rows scaled to
// unit norm (kcenter_greedy's min_dist is then min_sq / 2), recomputing x's norms on each call.
// No value checks (no host sync): a point whose distance is NaN (NaN in x or the centers, a zero
// row under cosine) keeps min_sq NaN and is never returned, while an inf coordinate makes its
// point the farthest: validate once, e.g. with torch.isfinite.
TORCH_AL_API std::tuple<at::Tensor, at::Tensor> kcenter_greedy_step(
    const at::Tensor& x,
    const at::Tensor& centers,
    at::Tensor& min_sq,
    const at::Tensor& selectable,
    c10::string_view metric = "euclidean");

// Shape, dtype and device checks shared by every backend (the Python fake mirrors them). Returns
// whether metric is cosine.
bool check_kcenter_greedy_step_inputs(
    const at::Tensor& x,
    const at::Tensor& centers,
    const at::Tensor& min_sq,
    const at::Tensor& selectable,
    c10::string_view metric);

}  // namespace torch_al::ops
