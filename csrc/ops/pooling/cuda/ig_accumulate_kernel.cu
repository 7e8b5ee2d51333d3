// Fused integrated-gradient accumulation. Pure-torch definition:
//   acc += grad.float().mean(dim=spatial).sum(dim=0) / steps
// with one read of grad, no temporaries, and each acc[b, c] owned by one warp (or one block
// column), so the result is deterministic and needs no atomics.

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "ops/pooling/cuda/channel_sums.cuh"
#include "ops/pooling/ig_accumulate.h"
#include "ops/pooling/ig_accumulate_math.h"

namespace torch_al::ops {

namespace {

// acc[b, c] += the mean of grad[:, b, c, *spatial] over the path positions / steps; acc may be
// any strided view, e.g. columns of a descriptor store.
template <typename scalar_t, typename acc_t>
struct IgSummand {
  const scalar_t* __restrict__ grad;
  int64_t batch_stride;
  int64_t channel_stride;
  PathGeometry path;
  int64_t steps;
  acc_t* __restrict__ acc;
  int64_t acc_row_stride;
  int64_t acc_col_stride;

  __device__ acc_t partial_sum(int64_t b, int64_t c, int64_t first, int64_t step) const {
    return path_partial_sum<acc_t>(grad + b * batch_stride + c * channel_stride, path, first, step);
  }
  __device__ void store(int64_t b, int64_t c, acc_t sum) const {
    acc_t& target = acc[b * acc_row_stride + c * acc_col_stride];
    target = ig_accumulated(target, sum, steps, path.spatial.count);
  }
};

void ig_accumulate_kernel(const at::Tensor& grad, int64_t steps, at::Tensor& acc) {
  check_ig_accumulate_inputs(grad, steps, acc);
  const c10::cuda::CUDAGuard device_guard(grad.device());
  if (grad.size(0) == 0 || acc.numel() == 0) {
    return;  // an empty chunk or batch adds nothing; an empty spatial extent still adds NaN
  }
  const auto path = make_path_geometry(grad.sizes(), grad.strides());
  const bool channels_inner = path_channels_vary_fastest(grad.stride(2), path);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "ig_accumulate_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const IgSummand<scalar_t, acc_t> summand{
        grad.const_data_ptr<scalar_t>(), grad.stride(1), grad.stride(2), path, steps,
        acc.mutable_data_ptr<acc_t>(),   acc.stride(0),  acc.stride(1)};
    launch_channel_sums<acc_t>("ig_accumulate", grad.size(1), grad.size(2), channels_inner, summand, stream);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, CUDA, m) {
  m.impl("ig_accumulate", &ig_accumulate_kernel);
}

}  // namespace torch_al::ops
