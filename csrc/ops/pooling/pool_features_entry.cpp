#include "ops/pooling/pool_features_entry.h"

#include <ATen/ops/empty.h>
#include <c10/core/DeviceGuard.h>

namespace torch_al::ops {

at::Tensor pool_features_with(const at::Tensor& x, PoolInto pool_into) {
  check_pool_features_inputs("pool_features", x);
  const c10::DeviceGuard device_guard(x.device());
  auto out = at::empty({x.size(0), x.size(1)}, x.options());
  if (x.size(0) > 0 && x.size(1) > 0) {
    pool_into(x, out, nullptr, 0);
  }
  return out;
}

void pool_features_into_with(
    const at::Tensor& x, at::Tensor& out, const std::optional<at::Tensor>& rows, int64_t column, PoolInto pool_into) {
  check_pool_features_into_inputs(x, out, rows, column);
  const c10::DeviceGuard device_guard(x.device());
  if (rows.has_value()) {
    check_pool_features_into_rows(*rows, out.size(0));
  }
  if (x.size(0) > 0 && x.size(1) > 0) {
    const auto rows_contiguous = rows.has_value() ? rows->contiguous() : at::Tensor();
    pool_into(x, out, rows.has_value() ? rows_contiguous.const_data_ptr<int64_t>() : nullptr, column);
  }
}

}  // namespace torch_al::ops
