#include <torch/autograd.h>
#include <torch/library.h>

#include <vector>

#include "ops/pooling/pool_features.h"

namespace torch_al::ops {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class PoolFeaturesFunction : public torch::autograd::Function<PoolFeaturesFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->saved_data["input_shape"] = x.sym_sizes();
    return pool_features(x);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto input_shape = ctx->saved_data["input_shape"].toSymIntVector();
    return {detail::_pool_features_backward(grad_outputs[0], input_shape)};
  }
};

at::Tensor pool_features_autograd(const at::Tensor& x) {
  return PoolFeaturesFunction::apply(x);
}

// The store is a sink, not part of any graph: refuse a store that requires grad (as in-place ops
// on such leaves are refused) and bump its version so autograd sees the write.
void pool_features_into_autograd(
    const at::Tensor& x, at::Tensor& out, const std::optional<at::Tensor>& rows, int64_t column) {
  TORCH_CHECK(
      !out.requires_grad(),
      "pool_features_into: out must not require grad; the descriptor store is not differentiable");
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    pool_features_into(x, out, rows, column);
  }
  torch::autograd::impl::bump_version(out);
}

// d x = grad / |spatial|, broadcast over the spatial dims. Written with ATen ops so it runs on every
// backend, traces under torch.compile with symbolic shapes, and is itself differentiable.
at::Tensor pool_features_backward_composite(const at::Tensor& grad, c10::SymIntArrayRef input_shape) {
  c10::SymInt count = 1;
  std::vector<c10::SymInt> broadcast_shape(input_shape.begin(), input_shape.end());
  for (size_t d = 2; d < input_shape.size(); ++d) {
    count *= input_shape[d];
    broadcast_shape[d] = 1;
  }
  return grad.div(c10::Scalar(count)).view_symint(broadcast_shape).expand_symint(input_shape);
}

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, Autograd, m) {
  m.impl("pool_features", &pool_features_autograd);
  m.impl("pool_features_into", &pool_features_into_autograd);
}

TORCH_LIBRARY_IMPL(torch_al, CompositeImplicitAutograd, m) {
  m.impl("_pool_features_backward", &pool_features_backward_composite);
}

}  // namespace torch_al::ops
