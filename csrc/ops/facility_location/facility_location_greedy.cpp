#include "ops/facility_location/facility_location_greedy.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/full.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/where.h>
#include <torch/library.h>

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

}  // namespace

void check_facility_location_greedy_inputs(const at::Tensor& candidates, const at::Tensor& universe, int64_t count) {
  TORCH_CHECK(candidates.dim() == 2, kOp, ": candidates must be 2-D (K, D), got shape ", candidates.sizes());
  TORCH_CHECK(universe.dim() == 2, kOp, ": universe must be 2-D (N, D), got shape ", universe.sizes());
  const auto dtype = candidates.scalar_type();
  TORCH_CHECK(
      dtype == at::kFloat || dtype == at::kDouble,
      kOp, ": candidates must be float32 or float64, got ", dtype);
  TORCH_CHECK(
      universe.scalar_type() == dtype,
      kOp, ": universe must have the dtype of candidates, ", dtype, ", got ", universe.scalar_type());
  TORCH_CHECK(
      universe.device() == candidates.device(),
      kOp, ": universe is on ", universe.device(), " but candidates are on ", candidates.device());
  TORCH_CHECK(
      universe.size(1) == candidates.size(1),
      kOp, ": universe must have D=", candidates.size(1), " columns like candidates ", candidates.sizes(),
      ", got shape ", universe.sizes());
  TORCH_CHECK(
      count >= 0 && count <= candidates.size(0),
      kOp, ": count must lie in [0, K] with K=", candidates.size(0), " candidates, got ", count);
}

void check_facility_location_greedy_values(const at::Tensor& candidates, const at::Tensor& universe) {
  const auto [bad_candidates, first_candidate] = nonfinite_rows(candidates);
  const auto [bad_points, first_point] = nonfinite_rows(universe);
  const auto stats = at::stack({bad_candidates, first_candidate, bad_points, first_point}).cpu();
  const auto s = stats.accessor<int64_t, 1>();
  TORCH_CHECK(
      s[0] == 0, kOp, ": candidates must be finite, got ", s[0], " row(s) with NaN or inf; the first is row ", s[1]);
  TORCH_CHECK(
      s[2] == 0, kOp, ": universe must be finite, got ", s[2], " row(s) with NaN or inf; the first is row ", s[3]);
}

at::Tensor tile_universe(const at::Tensor& universe) {
  const int64_t n = universe.size(0);
  const int64_t dims = universe.size(1);
  const int64_t tiles = (n + kFacilityTile - 1) / kFacilityTile;
  const int64_t width = 64 / universe.element_size();  // facility_panel_width
  const auto padded = at::constant_pad_nd(universe, {0, 0, 0, tiles * kFacilityTile - n}, 0);
  return padded.reshape({tiles * kFacilityTile / width, width, dims}).transpose(1, 2).contiguous();
}

std::tuple<at::Tensor, at::Tensor> facility_location_greedy(
    const at::Tensor& candidates, const at::Tensor& universe, int64_t count) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("torch_al::facility_location_greedy", "")
                       .typed<decltype(facility_location_greedy)>();
  return op.call(candidates, universe, count);
}

TORCH_LIBRARY_FRAGMENT(torch_al, m) {
  m.set_python_module("torch_al._meta_registrations");
  m.def("facility_location_greedy(Tensor candidates, Tensor universe, int count) -> (Tensor picks, Tensor gains)");
}

}  // namespace torch_al::ops
