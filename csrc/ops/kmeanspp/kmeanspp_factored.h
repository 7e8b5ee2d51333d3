#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

#include "macros.h"

namespace torch_al::ops {

// k-means++ seeding (D^2 sampling; Arthur & Vassilvitskii 2007) over the implicit embeddings
// e_i = a_i (x) b_i (outer product, C * D values) given only the factors a[N, C] and b[N, D]:
//   |e_i - e_j|^2 = |a_i|^2 |b_i|^2 + |a_j|^2 |b_j|^2 - 2 (a_i . a_j)(b_i . b_j), clamped at 0,
// so the N x (C * D) embeddings are never formed. Deterministic given its inputs: pick t takes the
// draw uniforms[t] in [0, 1) and returns the first selectable row whose float64 cumulative sum of
// w_i (w_i = min squared distance to the centers, 0 for centers) exceeds uniforms[t] * total.
// With no initial centers the first pick is the row of largest |e_i| (BADGE's released code; ties
// to the lower index) and uniforms[0] is not used. When every remaining w_i is 0 the pick is the
// lowest-index row not yet a center. `initial` (bool mask [N] or index list) are centers from the
// start and are never picked. Returns (indices[P] int64 in pick order, pick_sq[P] float64: the
// pick's squared distance to its nearest center just before it was picked, inf with no center).
TORCH_AL_API std::tuple<at::Tensor, at::Tensor> kmeanspp_factored(
    const at::Tensor& a,
    const at::Tensor& b,
    const at::Tensor& uniforms,
    const std::optional<at::Tensor>& initial = std::nullopt);

// Shape, dtype and device checks shared by every backend (the Python fake mirrors them).
void check_kmeanspp_factored_inputs(
    const at::Tensor& a, const at::Tensor& b, const at::Tensor& uniforms, const std::optional<at::Tensor>& initial);

// What every backend needs once the inputs are validated.
struct KMeansPPFactoredPlan {
  at::Tensor selectable;  // bool [N]: not an initial center; picks are cleared from it
  at::Tensor min_sq;      // float64 [N]: squared distance to the nearest initial center (inf: none)
  bool has_initial;       // false: the first pick is the largest-norm row
};

// Value checks that need the data (finite factors and norms, uniforms in [0, 1), initial indices
// in range, P <= N - #initial), in one host sync; then the initial centers' distances, streamed in
// tiles of rows and centers (matrix products in float64: O(tile) extra memory). Device-agnostic.
// squared_norms[N] (float64) holds |a_i|^2 |b_i|^2.
KMeansPPFactoredPlan plan_kmeanspp_factored(
    const at::Tensor& a,
    const at::Tensor& b,
    const at::Tensor& uniforms,
    const std::optional<at::Tensor>& initial,
    const at::Tensor& squared_norms);

}  // namespace torch_al::ops
