#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "ops/pooling/pool_features_entry.h"
#include "ops/pooling/pool_features_math.h"

namespace torch_al::ops {

namespace {

// out[dst(n, c)] = x[n, c, ...].mean() over the spatial dims, read in memory order.
template <typename scalar_t>
void pool_rows_cpu(const at::Tensor& x, const PoolDestination<scalar_t>& dst) {
  using acc_t = at::opmath_type<scalar_t>;
  const auto g = make_spatial_geometry(x.sizes().slice(2), x.strides().slice(2));
  const int64_t channels = x.size(1);
  const int64_t row_stride = x.stride(0);
  const int64_t channel_stride = x.stride(1);
  const bool channels_inner = channels_vary_fastest(channel_stride, g);
  const scalar_t* base = x.const_data_ptr<scalar_t>();
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, channels * g.count));

  at::parallel_for(0, x.size(0), grain, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> sums(channels_inner ? channels : 0);
    for (int64_t n = begin; n < end; ++n) {
      const scalar_t* x_n = base + n * row_stride;
      if (channels_inner) {
        std::fill(sums.begin(), sums.end(), acc_t(0));
        for (int64_t s = 0; s < g.count; ++s) {
          const scalar_t* x_ns = x_n + spatial_offset(g, s);
          for (int64_t c = 0; c < channels; ++c) {
            sums[c] += static_cast<acc_t>(x_ns[c * channel_stride]);
          }
        }
        for (int64_t c = 0; c < channels; ++c) {
          dst.data[destination_offset(dst, n, c)] = static_cast<scalar_t>(spatial_mean(sums[c], g.count));
        }
      } else {
        for (int64_t c = 0; c < channels; ++c) {
          const acc_t sum = spatial_partial_sum<acc_t>(x_n + c * channel_stride, g, 0, 1);
          dst.data[destination_offset(dst, n, c)] = static_cast<scalar_t>(spatial_mean(sum, g.count));
        }
      }
    }
  });
}

void pool_into_cpu(const at::Tensor& x, at::Tensor& out, const int64_t* rows, int64_t column) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "pool_features_cpu", [&] {
    const PoolDestination<scalar_t> dst{out.mutable_data_ptr<scalar_t>(), out.stride(0), out.stride(1), column, rows};
    pool_rows_cpu<scalar_t>(x, dst);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, CPU, m) {
  m.impl("pool_features", [](const at::Tensor& x) { return pool_features_with(x, pool_into_cpu); });
  m.impl(
      "pool_features_into",
      [](const at::Tensor& x, at::Tensor& out, const std::optional<at::Tensor>& rows, int64_t column) {
        pool_features_into_with(x, out, rows, column, pool_into_cpu);
      });
}

}  // namespace torch_al::ops
