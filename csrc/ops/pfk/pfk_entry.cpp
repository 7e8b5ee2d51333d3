#include "ops/pfk/pfk_entry.h"

#include "ops/pfk/pfk_rescore.h"

#include <ATen/ops/full.h>
#include <c10/core/DeviceGuard.h>

#include <limits>

namespace torch_al::ops {

std::tuple<at::Tensor, at::Tensor> pfk_stream_with(const PfkArgs& args, PfkReduction reduction, PfkStream stream) {
  const bool per_row = reduction == PfkReduction::kPerQueryRow;
  const char* op = per_row ? "pfk_topk" : "pfk_column_topk";
  check_pfk_topk_inputs(op, args);
  const c10::DeviceGuard device_guard(args.query_z[0].device());
  if (args.check_finite) {
    check_pfk_topk_finite(op, args);
  }
  const auto& first = args.query_z[0];
  const bool fast = args.precision == "fast";
  // Only CUDA has a float32 product faster than the exact one (tensor cores): elsewhere the
  // screen is exact and the re-score merely confirms it (MKL's bfloat16 GEMM is slower here).
  const auto screen_dtype = fast && first.is_cuda() && first.scalar_type() == at::kFloat
      ? std::optional<at::ScalarType>(at::kBFloat16)
      : std::nullopt;
  const auto plan = make_pfk_plan(args.query_z, args.pool_z, args.query_g, args.pool_g, args.combine, screen_dtype);
  const int64_t kept = fast ? pfk_screen_width(args.k, plan.columns) : args.k;
  const auto options = first.options();
  auto values = at::full({per_row ? plan.rows : 1, kept}, -std::numeric_limits<double>::infinity(), options);
  auto indices = at::full({per_row ? plan.rows : 1, kept}, -1, options.dtype(at::kLong));
  if (values.numel() > 0 && plan.columns > 0) {
    const auto mask = args.pool_mask.has_value() ? args.pool_mask->contiguous() : at::Tensor();
    stream(plan, mask, reduction, values, indices);
    if (fast) {
      std::tie(values, indices) = pfk_rescore(plan, indices, reduction, args.k);
    }
  }
  values = values.narrow(1, 0, args.k).contiguous();
  indices = indices.narrow(1, 0, args.k).contiguous();
  if (per_row) {
    return {values, indices};
  }
  return {values.squeeze(0), indices.squeeze(0)};
}

}  // namespace torch_al::ops
