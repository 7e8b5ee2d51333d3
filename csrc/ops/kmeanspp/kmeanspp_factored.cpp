#include "ops/kmeanspp/kmeanspp_factored.h"

#include <ATen/TensorOperators.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/full.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/minimum.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/nonzero.h>
#include <ATen/ops/stack.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <utility>

#include "ops/input_checks/flagged_rows.h"
#include "ops/input_checks/initial_rows.h"

namespace torch_al::ops {

namespace {

constexpr const char* kOp = "kmeanspp_factored";

// Elements of one float64 (rows x centers) tile of the initial-center distances: 32 MiB.
constexpr int64_t kTileElements = int64_t{1} << 22;
constexpr int64_t kCentersPerTile = 2048;

void check_finite_factor(const char* name, const at::Tensor& factor) {
  const auto [rows, first] = count_and_first(at::isfinite(factor).logical_not().any(1));
  const int64_t count = rows.item<int64_t>();
  TORCH_CHECK(
      count == 0, kOp, ": ", name, " must be finite, got ", count, " row(s) with NaN or inf; the first is row ",
      first.item<int64_t>());
}

// min over the centers of |e_i - e_c|^2, for every row i, by matrix products over tiles.
at::Tensor initial_min_sq(
    const at::Tensor& a, const at::Tensor& b, const at::Tensor& squared_norms, const at::Tensor& centers) {
  const int64_t n = a.size(0);
  auto min_sq = at::full({n}, std::numeric_limits<double>::infinity(), squared_norms.options());
  const int64_t width = std::max<int64_t>({a.size(1) + b.size(1), std::min(centers.size(0), kCentersPerTile), 1});
  const int64_t rows_per_tile = std::max<int64_t>(1, kTileElements / width);
  for (int64_t c0 = 0; c0 < centers.size(0); c0 += kCentersPerTile) {
    const auto tile = centers.slice(0, c0, std::min(centers.size(0), c0 + kCentersPerTile));
    const auto a_centers_t = a.index_select(0, tile).to(at::kDouble).t();
    const auto b_centers_t = b.index_select(0, tile).to(at::kDouble).t();
    const auto center_norms = squared_norms.index_select(0, tile).unsqueeze(0);
    for (int64_t r0 = 0; r0 < n; r0 += rows_per_tile) {
      const int64_t r1 = std::min(n, r0 + rows_per_tile);
      const auto a_dots = at::mm(a.slice(0, r0, r1).to(at::kDouble), a_centers_t);
      const auto b_dots = at::mm(b.slice(0, r0, r1).to(at::kDouble), b_centers_t);
      const auto squared =
          (squared_norms.slice(0, r0, r1).unsqueeze(1) + center_norms - 2 * a_dots * b_dots).clamp_min_(0).amin(1);
      auto rows = min_sq.slice(0, r0, r1);
      rows.copy_(at::minimum(rows, squared));
    }
  }
  return min_sq;
}

}  // namespace

void check_kmeanspp_factored_inputs(
    const at::Tensor& a, const at::Tensor& b, const at::Tensor& uniforms, const std::optional<at::Tensor>& initial) {
  TORCH_CHECK(a.dim() == 2, kOp, ": a must be 2-D (N, C), got shape ", a.sizes());
  TORCH_CHECK(b.dim() == 2, kOp, ": b must be 2-D (N, D), got shape ", b.sizes());
  TORCH_CHECK(
      a.size(0) == b.size(0), kOp, ": a and b must have the same number of rows N, got a of shape ", a.sizes(),
      " and b of shape ", b.sizes());
  TORCH_CHECK(
      a.scalar_type() == at::kFloat || a.scalar_type() == at::kDouble,
      kOp, ": a must be float32 or float64, got ", a.scalar_type());
  TORCH_CHECK(
      b.scalar_type() == a.scalar_type(), kOp, ": b dtype ", b.scalar_type(), " must equal a dtype ", a.scalar_type());
  TORCH_CHECK(b.device() == a.device(), kOp, ": b is on ", b.device(), " but a is on ", a.device());
  TORCH_CHECK(
      uniforms.dim() == 1 && uniforms.scalar_type() == at::kDouble,
      kOp, ": uniforms must be a 1-D float64 tensor (one draw per pick), got shape ", uniforms.sizes(), " dtype ",
      uniforms.scalar_type());
  TORCH_CHECK(
      uniforms.device() == a.device(), kOp, ": uniforms is on ", uniforms.device(), " but a is on ", a.device());
  check_initial_rows(kOp, initial, a, "a");
}

KMeansPPFactoredPlan plan_kmeanspp_factored(
    const at::Tensor& a,
    const at::Tensor& b,
    const at::Tensor& uniforms,
    const std::optional<at::Tensor>& initial,
    const at::Tensor& squared_norms) {
  const int64_t n = a.size(0);
  const int64_t picks = uniforms.size(0);

  const auto [covered, out_of_range] = initial_rows_mask(initial, n, a.options());

  // A NaN or inf in a row makes its squared norm non-finite, so the norms alone clear the common
  // case; the factors are searched only to name the culprit.
  const auto [bad_norms, first_bad_norm] = count_and_first(at::isfinite(squared_norms).logical_not());
  const auto [bad_draws, first_bad_draw] = count_and_first(uniforms.ge(0).logical_and(uniforms.lt(1)).logical_not());
  const auto stats =
      at::stack({bad_norms, first_bad_norm, bad_draws, first_bad_draw, out_of_range, covered.sum(at::kLong)}).cpu();
  const auto s = stats.accessor<int64_t, 1>();
  if (s[0] > 0) {
    check_finite_factor("a", a);
    check_finite_factor("b", b);
  }
  TORCH_CHECK(
      s[0] == 0, kOp, ": |a_i|^2 |b_i|^2 overflows float64 in ", s[0], " row(s); the first is row ", s[1]);
  TORCH_CHECK(
      s[2] == 0, kOp, ": uniforms must lie in [0, 1), got ", s[2], " draw(s) outside; the first is uniforms[", s[3],
      "]");
  TORCH_CHECK(
      s[4] == 0, kOp, ": initial indices must lie in [0, N) with N=", n, ", got ", s[4], " out of range");
  const int64_t num_initial = s[5];
  TORCH_CHECK(
      picks <= n - num_initial,
      kOp, ": ", picks, " picks (one per uniform) are more than the ", n - num_initial,
      " rows that are not initial centers (N=", n, " minus ", num_initial, " initial)");

  auto min_sq = num_initial > 0
      ? initial_min_sq(a, b, squared_norms, at::nonzero(covered).view({-1})).masked_fill_(covered, 0)
      : at::full({n}, std::numeric_limits<double>::infinity(), squared_norms.options());
  return {covered.logical_not(), min_sq, num_initial > 0};
}

std::tuple<at::Tensor, at::Tensor> kmeanspp_factored(
    const at::Tensor& a, const at::Tensor& b, const at::Tensor& uniforms, const std::optional<at::Tensor>& initial) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("torch_al::kmeanspp_factored", "")
                       .typed<decltype(kmeanspp_factored)>();
  return op.call(a, b, uniforms, initial);
}

TORCH_LIBRARY_FRAGMENT(torch_al, m) {
  m.set_python_module("torch_al._meta_registrations");
  m.def(
      "kmeanspp_factored(Tensor a, Tensor b, Tensor uniforms, Tensor? initial=None) "
      "-> (Tensor indices, Tensor pick_sq)");
}

}  // namespace torch_al::ops
