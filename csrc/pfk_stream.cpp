#include "pfk_stream.h"

#include <ATen/ops/full.h>
#include <c10/core/DeviceGuard.h>

#include <limits>

namespace torch_al::ops {

std::tuple<at::Tensor, at::Tensor> pfk_stream_with(
    const PfkArgs& args, PfkReduction reduction, PfkStream stream) {
  const bool per_row = reduction == PfkReduction::kPerQueryRow;
  const char* op = per_row ? "pfk_topk" : "pfk_column_topk";
  check_pfk_topk_inputs(op, args);
  const c10::DeviceGuard device_guard(args.query_z[0].device());
  check_pfk_topk_finite(op, args);
  const auto plan = make_pfk_plan(args.query_z, args.pool_z, args.query_g, args.pool_g, args.combine);
  const auto options = args.query_z[0].options();
  auto values = at::full(
      {per_row ? plan.rows : 1, args.k}, -std::numeric_limits<double>::infinity(), options);
  auto indices = at::full({per_row ? plan.rows : 1, args.k}, -1, options.dtype(at::kLong));
  if (values.numel() > 0 && plan.columns > 0) {
    const auto mask = args.pool_mask.has_value() ? args.pool_mask->contiguous() : at::Tensor();
    stream(plan, mask, reduction, values, indices);
  }
  if (per_row) {
    return {values, indices};
  }
  return {values.squeeze(0), indices.squeeze(0)};
}

}  // namespace torch_al::ops
