#include "ops/facility_location/facility_location_greedy.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/full.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/lt.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/where.h>
#include <torch/library.h>

#include <cmath>
#include <limits>

#include "ops/facility_location/facility_location_greedy_math.h"

namespace torch_al::ops {

namespace {

constexpr const char* kOp = "facility_location_greedy";

// (rows holding a NaN or inf, first such row or N) of x[N, D], as two int64 scalars.
std::pair<at::Tensor, at::Tensor> nonfinite_rows(const at::Tensor& x) {
  const auto bad = at::isfinite(x).logical_not().any(1);
  const int64_t n = x.size(0);
  const auto rows = at::arange(n, x.options().dtype(at::kLong));
  const auto sentinel = at::full({1}, n, rows.options());
  return {bad.sum(at::kLong), at::cat({at::where(bad, rows, n), sentinel}).min()};
}

// universe, initial and weights: the dtype and the device of candidates.
void check_like_candidates(const char* name, const at::Tensor& rows, const at::Tensor& candidates) {
  TORCH_CHECK(
      rows.scalar_type() == candidates.scalar_type(), kOp, ": ", name, " must have the dtype of candidates, ",
      candidates.scalar_type(), ", got ", rows.scalar_type());
  TORCH_CHECK(
      rows.device() == candidates.device(),
      kOp, ": ", name, " is on ", rows.device(), " but candidates are on ", candidates.device());
}

}  // namespace

void check_facility_location_greedy_inputs(
    const at::Tensor& candidates,
    const at::Tensor& universe,
    int64_t count,
    const std::optional<at::Tensor>& initial,
    c10::string_view kernel,
    double gamma,
    const std::optional<at::Tensor>& weights) {
  TORCH_CHECK(candidates.dim() == 2, kOp, ": candidates must be 2-D (K, D), got shape ", candidates.sizes());
  TORCH_CHECK(universe.dim() == 2, kOp, ": universe must be 2-D (N, D), got shape ", universe.sizes());
  const auto dtype = candidates.scalar_type();
  TORCH_CHECK(
      dtype == at::kFloat || dtype == at::kDouble,
      kOp, ": candidates must be float32 or float64, got ", dtype);
  check_like_candidates("universe", universe, candidates);
  TORCH_CHECK(
      universe.size(1) == candidates.size(1),
      kOp, ": universe must have D=", candidates.size(1), " columns like candidates ", candidates.sizes(),
      ", got shape ", universe.sizes());
  TORCH_CHECK(
      count >= 0 && count <= candidates.size(0),
      kOp, ": count must lie in [0, K] with K=", candidates.size(0), " candidates, got ", count);
  if (initial.has_value()) {
    TORCH_CHECK(
        initial->dim() == 2 && initial->size(1) == candidates.size(1),
        kOp, ": initial must be (L, D=", candidates.size(1), ") rows, got shape ", initial->sizes());
    check_like_candidates("initial", *initial, candidates);
  }
  TORCH_CHECK(
      kernel == "dot" || kernel == "gaussian", kOp, ": kernel must be \"dot\" or \"gaussian\", got \"", kernel, "\"");
  TORCH_CHECK(
      kernel == "dot" || (std::isfinite(gamma) && gamma > 0),
      kOp, ": gamma must be finite and > 0 for the gaussian kernel, got ", gamma);
  if (weights.has_value()) {
    TORCH_CHECK(
        weights->dim() == 1 && weights->size(0) == universe.size(0),
        kOp, ": weights must be 1-D with one entry per universe point (N=", universe.size(0), "), got shape ",
        weights->sizes());
    check_like_candidates("weights", *weights, candidates);
  }
}

void check_facility_location_greedy_values(
    const at::Tensor& candidates,
    const at::Tensor& universe,
    const std::optional<at::Tensor>& initial,
    const std::optional<at::Tensor>& weights) {
  const auto [bad_candidates, first_candidate] = nonfinite_rows(candidates);
  const auto [bad_points, first_point] = nonfinite_rows(universe);
  const auto [bad_initial, first_initial] = nonfinite_rows(initial.has_value() ? *initial : candidates.narrow(0, 0, 0));
  // A weight is bad when it is NaN, inf or negative: the same count and first index as a row.
  const auto weight_rows = weights.has_value() ? weights->unsqueeze(1) : candidates.new_zeros({0, 1});
  const auto [bad_weights, first_weight] =
      nonfinite_rows(at::where(weight_rows.lt(0), std::numeric_limits<double>::quiet_NaN(), weight_rows));
  const auto stats = at::stack({bad_candidates, first_candidate, bad_points, first_point, bad_initial, first_initial,
                                bad_weights, first_weight})
                         .cpu();
  const auto s = stats.accessor<int64_t, 1>();
  TORCH_CHECK(
      s[0] == 0, kOp, ": candidates must be finite, got ", s[0], " row(s) with NaN or inf; the first is row ", s[1]);
  TORCH_CHECK(
      s[2] == 0, kOp, ": universe must be finite, got ", s[2], " row(s) with NaN or inf; the first is row ", s[3]);
  TORCH_CHECK(
      s[4] == 0, kOp, ": initial must be finite, got ", s[4], " row(s) with NaN or inf; the first is row ", s[5]);
  TORCH_CHECK(
      s[6] == 0, kOp, ": weights must be finite and >= 0, got ", s[6], " bad weight(s); the first is at ", s[7]);
}

std::tuple<at::Tensor, at::Tensor> gaussian_norms(
    const at::Tensor& rows, const at::Tensor& universe, const at::Tensor& tiles) {
  const int64_t padded = tiles.size(0) * tiles.size(2);
  const auto point_norms = at::constant_pad_nd(
      universe.square().sum(1), {0, padded - universe.size(0)}, std::numeric_limits<double>::infinity());
  return {rows.square().sum(1), point_norms.contiguous()};
}

at::Tensor tile_universe(const at::Tensor& universe) {
  const int64_t n = universe.size(0);
  const int64_t dims = universe.size(1);
  const int64_t tiles = (n + kFacilityTile - 1) / kFacilityTile;
  const int64_t width = 64 / universe.element_size();  // facility_panel_width
  const auto padded = at::constant_pad_nd(universe, {0, 0, 0, tiles * kFacilityTile - n}, 0);
  return padded.reshape({tiles * kFacilityTile / width, width, dims}).transpose(1, 2).contiguous();
}

at::Tensor tile_weights(const std::optional<at::Tensor>& weights, const at::Tensor& universe, const at::Tensor& tiles) {
  const int64_t padded = tiles.size(0) * tiles.size(2);
  const auto given = weights.has_value() ? *weights : at::ones({universe.size(0)}, universe.options());
  return at::constant_pad_nd(given, {0, padded - universe.size(0)}, 0).contiguous();
}

std::tuple<at::Tensor, at::Tensor> facility_location_greedy(
    const at::Tensor& candidates,
    const at::Tensor& universe,
    int64_t count,
    const std::optional<at::Tensor>& initial,
    c10::string_view kernel,
    double gamma,
    const std::optional<at::Tensor>& weights) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("torch_al::facility_location_greedy", "")
                       .typed<decltype(facility_location_greedy)>();
  return op.call(candidates, universe, count, initial, kernel, gamma, weights);
}

TORCH_LIBRARY_FRAGMENT(torch_al, m) {
  m.set_python_module("torch_al._meta_registrations");
  m.def(
      "facility_location_greedy(Tensor candidates, Tensor universe, int count, Tensor? initial=None, "
      "str kernel=\"dot\", float gamma=1.0, Tensor? weights=None) -> (Tensor picks, Tensor gains)");
}

}  // namespace torch_al::ops
