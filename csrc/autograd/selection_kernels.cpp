#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

namespace torch_al::ops {

namespace {

// The selection ops return picks (indices) and the scores that ranked them; neither is
// differentiable with respect to the descriptors. Their Autograd kernel runs the op below autograd,
// so outputs never require grad and inputs that require grad take no fallback path.
void below_autograd(const c10::OperatorHandle& op, c10::DispatchKeySet keys, torch::jit::Stack* stack) {
  const at::AutoDispatchBelowADInplaceOrView guard;
  op.redispatchBoxed(keys & c10::after_ADInplaceOrView_keyset, stack);
}

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, Autograd, m) {
  for (const char* name : {"pfk_topk", "pfk_column_topk", "select_unique_ranked", "kcenter_greedy",
                           "facility_location_greedy", "kmeanspp_factored"}) {
    m.impl(name, torch::CppFunction::makeFromBoxedFunction<&below_autograd>());
  }
}

}  // namespace torch_al::ops
