#pragma once

#include <ATen/core/Tensor.h>

#include <c10/util/string_view.h>

#include <optional>
#include <tuple>

#include "macros.h"

namespace torch_al::ops {

// Greedy facility location (as in Suggestive annotation, Yang et al., MICCAI 2017): picks `count`
// rows of candidates[K, D], each the one with the largest marginal gain of
//   F(S) = sum over u in universe[N, D] of max(0, max over a in S of <a, u>)
// (ties to the lower candidate index). Each candidate's gain is kept up to date incrementally in
// float64 over the points each pick's cover raises, as a bound; the picks' gains are fresh sums
// streamed over tiles of the universe: the K x N similarity is never formed. Returns (picks[count] int64 in pick
// order, gains[count] in the dtype of the inputs: the marginal gain of each pick).
// With `initial` rows [L, D] the greedy starts from them as picks (their cover applied, never
// picked); kernel "gaussian" uses s(a, u) = exp(-gamma ||a - u||^2) for <a, u> (MaxHerding's
// generalised coverage, Bae et al., ECCV 2024); `weights` [N] >= 0 weigh each universe point's
// term (UHerding's uncertainty coverage, Bae et al., ICLR 2025).
TORCH_AL_API std::tuple<at::Tensor, at::Tensor> facility_location_greedy(
    const at::Tensor& candidates,
    const at::Tensor& universe,
    int64_t count,
    const std::optional<at::Tensor>& initial = std::nullopt,
    c10::string_view kernel = "dot",
    double gamma = 1.0,
    const std::optional<at::Tensor>& weights = std::nullopt);

// Shape, dtype, device, count, kernel and gamma checks, shared by every backend (the Python fake
// mirrors them).
void check_facility_location_greedy_inputs(
    const at::Tensor& candidates,
    const at::Tensor& universe,
    int64_t count,
    const std::optional<at::Tensor>& initial,
    c10::string_view kernel,
    double gamma,
    const std::optional<at::Tensor>& weights);

// NaN/inf in any input (naming the first bad row) or a negative weight: one host sync.
void check_facility_location_greedy_values(
    const at::Tensor& candidates,
    const at::Tensor& universe,
    const std::optional<at::Tensor>& initial,
    const std::optional<at::Tensor>& weights);

// The "gaussian" kernel's square norms: of the candidate rows [K + L], and of the universe in its
// tiles' point order [padded N] with +inf on the padding (so padding is similar to nothing).
std::tuple<at::Tensor, at::Tensor> gaussian_norms(
    const at::Tensor& rows, const at::Tensor& universe, const at::Tensor& tiles);

// universe[N, D] padded with zero rows to whole tiles of kFacilityTile points, in the panel layout
// of facility_location_greedy_math.h: [padded N / W, D, W]. Device-agnostic ATen code.
at::Tensor tile_universe(const at::Tensor& universe);

// The universe points' weights in their tiles' point order [padded N]: `weights` (or ones) with
// zeros on the padding.
at::Tensor tile_weights(const std::optional<at::Tensor>& weights, const at::Tensor& universe, const at::Tensor& tiles);

}  // namespace torch_al::ops
