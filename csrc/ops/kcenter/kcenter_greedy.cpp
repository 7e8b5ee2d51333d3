#include "ops/kcenter/kcenter_greedy.h"

#include <ATen/Context.h>
#include <ATen/TensorOperators.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/nonzero.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>

#include "ops/input_checks/flagged_rows.h"
#include "ops/input_checks/initial_rows.h"

namespace torch_al::ops {

namespace {

constexpr const char* kOp = "kcenter_greedy";

// Elements of one (points x centers) block of the initial-set matrix product: 64 MiB in float32.
constexpr int64_t kBlockElements = int64_t{1} << 24;

}  // namespace

bool check_kcenter_greedy_inputs(
    const at::Tensor& x,
    int64_t k,
    const std::optional<at::Tensor>& initial,
    c10::string_view metric,
    const std::optional<at::Tensor>& exclude) {
  const bool cosine = check_kcenter_points(kOp, x, metric);
  TORCH_CHECK(k >= 0, kOp, ": k must be >= 0, got ", k);
  const int64_t n = x.size(0);
  check_initial_rows(kOp, initial, x, "x");
  if (exclude.has_value()) {
    const auto& ex = *exclude;
    TORCH_CHECK(
        ex.device() == x.device(), kOp, ": exclude is on ", ex.device(), " but x is on ", x.device());
    TORCH_CHECK(
        ex.dim() == 1 && ex.scalar_type() == at::kBool,
        kOp, ": exclude must be a 1-D bool mask, got shape ", ex.sizes(), " dtype ", ex.scalar_type());
    TORCH_CHECK(ex.size(0) == n, kOp, ": exclude has ", ex.size(0), " entries but x has N=", n);
  }
  return cosine;
}

bool check_kcenter_points(const char* op, const at::Tensor& x, c10::string_view metric) {
  TORCH_CHECK(x.dim() == 2, op, ": x must be 2-D (N, D), got shape ", x.sizes());
  TORCH_CHECK(
      at::isFloatingType(x.scalar_type()),
      op, ": x must be a floating tensor (float16, bfloat16, float32 or float64), got ", x.scalar_type());
  TORCH_CHECK(
      metric == "euclidean" || metric == "cosine", op, ": metric must be 'euclidean' or 'cosine', got '", metric, "'");
  return metric == "cosine";
}

KCenterGreedyPlan plan_kcenter_greedy(
    const at::Tensor& x,
    int64_t k,
    const std::optional<at::Tensor>& initial,
    std::optional<int64_t> first,
    const std::optional<at::Tensor>& exclude,
    const at::Tensor& inverse_norms) {
  const int64_t n = x.size(0);
  const int64_t first_pick = first.value_or(0);
  TORCH_CHECK(
      !first.has_value() || (first_pick >= 0 && first_pick < n),
      kOp, ": first must lie in [0, N) with N=", n, ", got ", first_pick);
  const auto long_options = x.options().dtype(at::kLong);

  const auto [covered, out_of_range] = initial_rows_mask(initial, n, x.options());
  auto selectable = covered.logical_not();
  if (exclude.has_value()) {
    selectable.logical_and_(exclude->logical_not());
  }

  const auto [nonfinite_rows, first_nonfinite] = count_and_first(at::isfinite(x).logical_not().any(1));
  at::Tensor bad_norms = at::zeros({}, long_options);
  at::Tensor first_bad_norm = bad_norms;
  if (inverse_norms.defined()) {
    std::tie(bad_norms, first_bad_norm) =
        count_and_first(at::isfinite(inverse_norms).logical_not().logical_or(inverse_norms.eq(0)));
  }
  const auto first_selectable = n > 0 ? selectable.select(0, first_pick).to(at::kLong) : at::zeros({}, long_options);
  const auto stats = at::stack({nonfinite_rows, first_nonfinite, out_of_range, bad_norms, first_bad_norm,
                                selectable.sum(at::kLong), covered.sum(at::kLong), first_selectable})
                         .cpu();
  const auto s = stats.accessor<int64_t, 1>();

  TORCH_CHECK(
      s[0] == 0, kOp, ": x must be finite, got ", s[0], " row(s) with NaN or inf; the first is row ", s[1]);
  TORCH_CHECK(
      s[2] == 0, kOp, ": initial indices must lie in [0, N) with N=", n, ", got ", s[2], " out of range");
  TORCH_CHECK(
      s[3] == 0, kOp, ": metric 'cosine' needs rows with a nonzero, finite norm; ", s[3],
      " row(s) fail, the first is row ", s[4]);
  const int64_t num_selectable = s[5];
  const int64_t num_initial = s[6];
  TORCH_CHECK(
      k <= num_selectable,
      kOp, ": k=", k, " is larger than the number of selectable points, ", num_selectable,
      " (N=", n, " minus initial and excluded points)");
  TORCH_CHECK(
      k == 0 || num_initial > 0 || s[7] == 1,
      kOp, ": the first pick, index ", first_pick, ", is excluded; pass another `first`");

  auto initial_indices = num_initial > 0 ? at::nonzero(covered).view({-1}) : at::empty({0}, long_options);
  return {selectable, initial_indices, first_pick};
}

at::Tensor nearest_center(
    const at::Tensor& x, const at::Tensor& x_scale, const at::Tensor& centers, const at::Tensor& center_scale) {
  const auto acc = kcenter_greedy_distance_dtype(x);
  const bool scaled = x_scale.defined();
  auto scaled_rows = [&](const at::Tensor& rows, const at::Tensor& scale) {
    auto converted = rows.to(acc);
    return scaled ? converted.mul(scale.unsqueeze(1)) : converted;
  };
  // Centring at the centers' mean removes any common offset before the expanded form is used.
  const auto centers_raw = scaled_rows(centers, center_scale);
  const auto mean = centers_raw.mean(0);
  const auto centred = centers_raw.sub(mean);
  const auto center_sq = centred.square().sum(1).unsqueeze(0);
  const auto centers_t = centred.t();

  const int64_t n = x.size(0);
  const int64_t block_rows = std::max<int64_t>(1, kBlockElements / std::max<int64_t>({centers.size(0), x.size(1), 1}));
  auto nearest = at::empty({n}, x.options().dtype(at::kLong));
  for (int64_t begin = 0; begin < n; begin += block_rows) {
    const int64_t end = std::min(n, begin + block_rows);
    const auto block = scaled_rows(x.slice(0, begin, end), scaled ? x_scale.slice(0, begin, end) : x_scale).sub(mean);
    // argmin_j |x - c_j|^2 = argmin_j (|c_j|^2 - 2 x.c_j): |x|^2 is the same for every j. The
    // product stays exact float32 whatever the user set for TF32: a rounded product can name
    // another nearest center, and the picks would no longer be exact farthest-first.
    const at::NoTF32Guard exact_products;
    nearest.slice(0, begin, end).copy_(at::addmm(center_sq, block, centers_t, 1, -2).argmin(1));
  }
  return nearest;
}

at::Tensor nearest_initial_center(
    const at::Tensor& x, const at::Tensor& inverse_norms, const at::Tensor& initial_indices) {
  const bool scaled = inverse_norms.defined();
  auto nearest = initial_indices.index_select(
      0,
      nearest_center(
          x, inverse_norms, x.index_select(0, initial_indices),
          scaled ? inverse_norms.index_select(0, initial_indices) : inverse_norms));
  // A center is its own nearest center, whatever the rounding of the product says.
  nearest.index_copy_(0, initial_indices, initial_indices);
  return nearest;
}

at::ScalarType kcenter_greedy_distance_dtype(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

void finish_min_dist(at::Tensor& min_sq, bool cosine) {
  if (cosine) {
    min_sq.mul_(0.5);
  } else {
    min_sq.sqrt_();
  }
}

std::tuple<at::Tensor, at::Tensor> kcenter_greedy(
    const at::Tensor& x,
    int64_t k,
    const std::optional<at::Tensor>& initial,
    std::optional<int64_t> first,
    c10::string_view metric,
    const std::optional<at::Tensor>& exclude) {
  static auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("torch_al::kcenter_greedy", "").typed<decltype(kcenter_greedy)>();
  return op.call(x, k, initial, first, metric, exclude);
}

TORCH_LIBRARY_FRAGMENT(torch_al, m) {
  m.set_python_module("torch_al._meta_registrations");
  m.def(
      "kcenter_greedy(Tensor x, int k, Tensor? initial=None, int? first=None, str metric=\"euclidean\", "
      "Tensor? exclude=None) -> (Tensor indices, Tensor min_dist)");
}

}  // namespace torch_al::ops
