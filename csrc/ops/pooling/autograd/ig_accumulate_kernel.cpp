#include <torch/autograd.h>
#include <torch/library.h>

#include "ops/pooling/ig_accumulate.h"

namespace torch_al::ops {

namespace {

// The accumulator is a sink, not part of any graph: refuse one that requires grad (as in-place
// ops on such leaves are refused) and bump its version so autograd sees the write.
void ig_accumulate_autograd(const at::Tensor& grad, int64_t steps, at::Tensor& acc) {
  TORCH_CHECK(
      !acc.requires_grad(),
      "ig_accumulate: acc must not require grad; the attention accumulator is not differentiable");
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    ig_accumulate(grad, steps, acc);
  }
  torch::autograd::impl::bump_version(acc);
}

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, Autograd, m) {
  m.impl("ig_accumulate", &ig_accumulate_autograd);
}

}  // namespace torch_al::ops
