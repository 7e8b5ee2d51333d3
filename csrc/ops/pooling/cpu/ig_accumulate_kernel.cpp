#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "ops/pooling/ig_accumulate.h"
#include "ops/pooling/ig_accumulate_math.h"

namespace torch_al::ops {

namespace {

// acc[b, c] += sum over (s, *spatial) of grad[s, b, c, ...] / (steps * |spatial|), read in memory
// order: channels innermost for channels_last maps and linear-layer gradients, else the path.
template <typename scalar_t>
void ig_accumulate_cpu(const at::Tensor& grad, int64_t steps, at::Tensor& acc) {
  using acc_t = at::opmath_type<scalar_t>;
  const auto path = make_path_geometry(grad.sizes(), grad.strides());
  const int64_t batch = grad.size(1);
  const int64_t channels = grad.size(2);
  const int64_t batch_stride = grad.stride(1);
  const int64_t channel_stride = grad.stride(2);
  const bool channels_inner = path_channels_vary_fastest(channel_stride, path);
  const scalar_t* base = grad.const_data_ptr<scalar_t>();
  acc_t* out = acc.mutable_data_ptr<acc_t>();
  const int64_t out_row_stride = acc.stride(0);
  const int64_t out_col_stride = acc.stride(1);
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, channels * path.steps * path.spatial.count));

  at::parallel_for(0, batch, grain, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> sums(channels);
    std::vector<acc_t> step_sums(channels_inner ? channels : 0);
    for (int64_t b = begin; b < end; ++b) {
      const scalar_t* grad_b = base + b * batch_stride;
      if (channels_inner) {
        // per-step subtotals, as path_partial_sum keeps them
        std::fill(sums.begin(), sums.end(), acc_t(0));
        for (int64_t s = 0; s < path.steps; ++s) {
          std::fill(step_sums.begin(), step_sums.end(), acc_t(0));
          for (int64_t p = 0; p < path.spatial.count; ++p) {
            const scalar_t* grad_bsp = grad_b + s * path.step_stride + spatial_offset(path.spatial, p);
            for (int64_t c = 0; c < channels; ++c) {
              step_sums[c] += static_cast<acc_t>(grad_bsp[c * channel_stride]);
            }
          }
          for (int64_t c = 0; c < channels; ++c) {
            sums[c] += step_sums[c];
          }
        }
      } else {
        for (int64_t c = 0; c < channels; ++c) {
          sums[c] = path_partial_sum<acc_t>(grad_b + c * channel_stride, path, 0, 1);
        }
      }
      for (int64_t c = 0; c < channels; ++c) {
        acc_t& target = out[b * out_row_stride + c * out_col_stride];
        target = ig_accumulated(target, sums[c], steps, path.spatial.count);
      }
    }
  });
}

void ig_accumulate_kernel(const at::Tensor& grad, int64_t steps, at::Tensor& acc) {
  check_ig_accumulate_inputs(grad, steps, acc);
  if (grad.size(0) == 0 || acc.numel() == 0) {
    return;  // an empty chunk or batch adds nothing; an empty spatial extent still adds NaN
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "ig_accumulate_cpu", [&] {
    ig_accumulate_cpu<scalar_t>(grad, steps, acc);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, CPU, m) {
  m.impl("ig_accumulate", &ig_accumulate_kernel);
}

}  // namespace torch_al::ops
