#include "ops/pfk/pfk_column_topk.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

namespace torch_al::ops {

std::tuple<at::Tensor, at::Tensor> pfk_column_topk(
    at::TensorList query_z,
    at::TensorList pool_z,
    at::TensorList query_g,
    at::TensorList pool_g,
    const std::optional<at::Tensor>& pool_mask,
    int64_t k,
    c10::string_view combine,
    c10::string_view precision,
    bool check_finite) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("torch_al::pfk_column_topk", "")
                       .typed<decltype(pfk_column_topk)>();
  return op.call(query_z, pool_z, query_g, pool_g, pool_mask, k, combine, precision, check_finite);
}

TORCH_LIBRARY_FRAGMENT(torch_al, m) {
  m.set_python_module("torch_al._meta_registrations");
  m.def(
      "pfk_column_topk(Tensor[] query_z, Tensor[] pool_z, Tensor[] query_g, Tensor[] pool_g, "
      "Tensor? pool_mask, int k, str combine=\"product\", str precision=\"exact\", bool check_finite=True) "
      "-> (Tensor values, Tensor indices)");
}

}  // namespace torch_al::ops
