#include "ops/pfk/pfk_topk.h"

#include "ops/pfk/pfk_plan.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/aminmax.h>
#include <ATen/ops/stack.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

namespace torch_al::ops {

namespace {

constexpr std::array<c10::string_view, 3> kCombines = {"product", "fisher", "sum"};
constexpr std::array<c10::string_view, 2> kPrecisions = {"exact", "fast"};

// Checks one descriptor list: J tensors, 2-D, `rows` rows each, scale j of width widths[j] when
// widths is given.
void check_descriptor_list(
    const char* op,
    const char* name,
    at::TensorList list,
    size_t scales,
    int64_t rows,
    const char* rows_name,
    at::TensorList same_widths_as,
    const char* widths_name) {
  TORCH_CHECK(
      list.size() == scales,
      op, ": ", name, " has ", list.size(), " scales but ", widths_name, " has ", scales);
  for (size_t j = 0; j < list.size(); ++j) {
    const auto& t = list[j];
    TORCH_CHECK(
        t.dim() == 2 && t.size(0) == rows,
        op, ": ", name, "[", j, "] must be (", rows_name, "=", rows, ", C), got shape ", t.sizes());
    if (!same_widths_as.empty()) {
      TORCH_CHECK(
          t.size(1) == same_widths_as[j].size(1),
          op, ": ", name, "[", j, "] has ", t.size(1), " channels but ", widths_name, "[", j, "] has ",
          same_widths_as[j].size(1), " (shapes ", t.sizes(), " and ", same_widths_as[j].sizes(), ")");
    }
  }
}

void check_dtype_and_device(const char* op, const char* name, at::TensorList list, const at::Tensor& first) {
  for (size_t j = 0; j < list.size(); ++j) {
    TORCH_CHECK(
        list[j].scalar_type() == first.scalar_type(),
        op, ": ", name, "[", j, "] dtype ", list[j].scalar_type(), " must equal query_z[0] dtype ",
        first.scalar_type());
    TORCH_CHECK(
        list[j].device() == first.device(),
        op, ": ", name, "[", j, "] is on ", list[j].device(), " but query_z[0] is on ", first.device());
  }
}

}  // namespace

void check_pfk_topk_inputs(const char* op, const PfkArgs& args) {
  const auto& [query_z, pool_z, query_g, pool_g, pool_mask, k, combine, precision, check_finite] = args;
  TORCH_CHECK(!query_z.empty(), op, ": query_z must hold at least one scale, got an empty list");
  TORCH_CHECK(
      query_z[0].dim() == 2, op, ": query_z[0] must be (M, C), got shape ", query_z[0].sizes());
  const size_t scales = query_z.size();
  TORCH_CHECK(
      pool_z.size() == scales,
      op, ": pool_z has ", pool_z.size(), " scales but query_z has ", scales);
  TORCH_CHECK(pool_z[0].dim() == 2, op, ": pool_z[0] must be (N, C), got shape ", pool_z[0].sizes());
  const int64_t m = query_z[0].size(0);
  const int64_t n = pool_z[0].size(0);
  check_descriptor_list(op, "query_z", query_z, scales, m, "M", {}, "query_z");
  check_descriptor_list(op, "pool_z", pool_z, scales, n, "N", query_z, "query_z");
  TORCH_CHECK(
      query_g.size() == pool_g.size(),
      op, ": query_g and pool_g must both be empty or both hold ", scales, " scales, got ",
      query_g.size(), " and ", pool_g.size());
  if (!query_g.empty()) {
    check_descriptor_list(op, "query_g", query_g, scales, m, "M", {}, "query_z");
    check_descriptor_list(op, "pool_g", pool_g, scales, n, "N", query_g, "query_g");
  }
  const auto& first = query_z[0];
  TORCH_CHECK(
      first.scalar_type() == at::kFloat || first.scalar_type() == at::kDouble,
      op, ": descriptors must be float32 or float64, got query_z[0] of dtype ", first.scalar_type());
  check_dtype_and_device(op, "query_z", query_z, first);
  check_dtype_and_device(op, "pool_z", pool_z, first);
  check_dtype_and_device(op, "query_g", query_g, first);
  check_dtype_and_device(op, "pool_g", pool_g, first);
  if (pool_mask.has_value()) {
    const auto& mask = *pool_mask;
    TORCH_CHECK(
        mask.dim() == 1 && mask.size(0) == n,
        op, ": pool_mask must be (N=", n, ",), got shape ", mask.sizes());
    TORCH_CHECK(
        mask.scalar_type() == at::kBool,
        op, ": pool_mask must be torch.bool (True = excluded), got ", mask.scalar_type());
    TORCH_CHECK(
        mask.device() == first.device(),
        op, ": pool_mask is on ", mask.device(), " but query_z[0] is on ", first.device());
  }
  TORCH_CHECK(k >= 0, op, ": k must be >= 0, got ", k);
  TORCH_CHECK(
      std::find(kCombines.begin(), kCombines.end(), combine) != kCombines.end(),
      op, ": combine must be one of \"product\", \"fisher\", \"sum\", got \"", combine, "\"");
  TORCH_CHECK(
      std::find(kPrecisions.begin(), kPrecisions.end(), precision) != kPrecisions.end(),
      op, ": precision must be \"exact\" or \"fast\", got \"", precision, "\"");
}

namespace {

// The descriptors checked by one aminmax: a list's scales at once where they are column views
// of one store (a strided reduction per narrow scale is several times slower), else one scale;
// empty ones have nothing to check.
struct FiniteCheck {
  const char* name;
  at::TensorList scales;
  size_t first_scale;
  at::Tensor values;
};

std::vector<FiniteCheck> finite_checks(const PfkArgs& args) {
  std::vector<FiniteCheck> checks;
  const auto add = [&](const char* name, at::TensorList list) {
    if (list.empty()) {
      return;
    }
    if (auto joined = adjacent_columns(list); joined.defined() && list.size() > 1) {
      if (joined.numel() > 0) {
        checks.push_back({name, list, 0, joined});
      }
      return;
    }
    for (size_t j = 0; j < list.size(); ++j) {
      if (list[j].numel() > 0) {
        checks.push_back({name, list.slice(j, 1), j, list[j]});
      }
    }
  };
  add("query_z", args.query_z);
  add("pool_z", args.pool_z);
  add("query_g", args.query_g);
  add("pool_g", args.pool_g);
  return checks;
}

// Names the first scale of a failed check that holds NaN or inf.
void name_non_finite(const char* op, const FiniteCheck& check) {
  for (size_t j = 0; j < check.scales.size(); ++j) {
    const auto& scale = check.scales[j];
    const auto name = std::string(check.name) + "[" + std::to_string(check.first_scale + j) + "]";
    TORCH_CHECK(!scale.isnan().any().item<bool>(), op, ": ", name, " contains NaN");
    TORCH_CHECK(
        scale.isfinite().all().item<bool>(), op, ": ", name, " contains inf; descriptors must be finite");
  }
}

}  // namespace

void check_pfk_topk_finite(const char* op, const PfkArgs& args) {
  // min and max propagate NaN and expose ±inf, and reduce without a tensor-sized temporary.
  auto checks = finite_checks(args);
  std::vector<at::Tensor> extremes;
  for (const auto& check : checks) {
    auto [lowest, highest] = at::aminmax(check.values);
    extremes.push_back(at::stack({lowest, highest}));
  }
  if (extremes.empty()) {
    return;
  }
  const auto host = at::stack(extremes).to(at::kCPU, at::kDouble);  // the one host synchronisation
  const auto bounds = host.accessor<double, 2>();
  for (size_t c = 0; c < checks.size(); ++c) {
    if (!std::isfinite(bounds[c][0]) || !std::isfinite(bounds[c][1])) {
      name_non_finite(op, checks[c]);
    }
  }
}

std::tuple<at::Tensor, at::Tensor> pfk_topk(
    at::TensorList query_z,
    at::TensorList pool_z,
    at::TensorList query_g,
    at::TensorList pool_g,
    const std::optional<at::Tensor>& pool_mask,
    int64_t k,
    c10::string_view combine,
    c10::string_view precision,
    bool check_finite) {
  static auto op = c10::Dispatcher::singleton().findSchemaOrThrow("torch_al::pfk_topk", "").typed<decltype(pfk_topk)>();
  return op.call(query_z, pool_z, query_g, pool_g, pool_mask, k, combine, precision, check_finite);
}

TORCH_LIBRARY_FRAGMENT(torch_al, m) {
  m.set_python_module("torch_al._meta_registrations");
  m.def(
      "pfk_topk(Tensor[] query_z, Tensor[] pool_z, Tensor[] query_g, Tensor[] pool_g, "
      "Tensor? pool_mask, int k, str combine=\"product\", str precision=\"exact\", bool check_finite=True) "
      "-> (Tensor values, Tensor indices)");
}

}  // namespace torch_al::ops
