#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/library.h>

#include <vector>

namespace torch_al::ops {

namespace {

// The selection ops return picks (indices) and the scores that ranked them; neither is
// differentiable with respect to the descriptors. Their Autograd kernel runs the op below autograd,
// so outputs never require grad and inputs that require grad take no fallback path.
void below_autograd(const c10::OperatorHandle& op, c10::DispatchKeySet keys, torch::jit::Stack* stack) {
  const at::AutoDispatchBelowADInplaceOrView guard;
  op.redispatchBoxed(keys & c10::after_ADInplaceOrView_keyset, stack);
}

// The same for an op that writes one of its inputs (kcenter_greedy_step's min_sq): the
// ADInplaceOrView kernel it then reaches bumps that input's version counter, as in-place torch ops do.
void below_autograd_in_place(const c10::OperatorHandle& op, c10::DispatchKeySet keys, torch::jit::Stack* stack) {
  const at::AutoDispatchBelowAutograd guard;
  op.redispatchBoxed(keys & c10::after_autograd_keyset, stack);
}

// ADInplaceOrView kernel of an op that writes inputs (schema `Tensor(a!)`) and returns new
// tensors: the written inputs' version counters advance, so autograd refuses a backward through
// a value the op overwrote instead of computing a wrong gradient.
void bump_written_inputs(const c10::OperatorHandle& op, c10::DispatchKeySet keys, torch::jit::Stack* stack) {
  const auto& arguments = op.schema().arguments();
  const size_t first = stack->size() - arguments.size();
  std::vector<at::Tensor> written;
  for (size_t i = 0; i < arguments.size(); ++i) {
    const auto* alias = arguments[i].alias_info();
    if (alias != nullptr && alias->isWrite() && (*stack)[first + i].isTensor()) {
      written.push_back((*stack)[first + i].toTensor());
    }
  }
  {
    const at::AutoDispatchBelowADInplaceOrView guard;
    op.redispatchBoxed(keys & c10::after_ADInplaceOrView_keyset, stack);
  }
  for (const auto& tensor : written) {
    torch::autograd::impl::bump_version(tensor);
  }
}

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, Autograd, m) {
  for (const char* name :
       {"pfk_topk", "pfk_column_topk", "select_unique_ranked", "kcenter_greedy", "facility_location_greedy",
        "kmeanspp_factored", "class_line_order", "nearest_neighbours", "coverage_greedy"}) {
    m.impl(name, torch::CppFunction::makeFromBoxedFunction<&below_autograd>());
  }
  m.impl("kcenter_greedy_step", torch::CppFunction::makeFromBoxedFunction<&below_autograd_in_place>());
}

TORCH_LIBRARY_IMPL(torch_al, ADInplaceOrView, m) {
  m.impl("kcenter_greedy_step", torch::CppFunction::makeFromBoxedFunction<&bump_written_inputs>());
}

}  // namespace torch_al::ops
