// coverage_greedy on CUDA: the two pair kernels, one thread per pair, on the current stream.

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/nonzero.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "ops/coverage/coverage_greedy_entry.h"
#include "ops/coverage/coverage_greedy_math.h"

namespace torch_al::ops {

namespace {

constexpr int kThreads = 256;

int64_t blocks_for(int64_t items) {
  return (items + kThreads - 1) / kThreads;
}

template <typename scalar_t>
__global__ void screen_kernel(
    const scalar_t* partial,
    const scalar_t* row_norms,
    const scalar_t* column_norms,
    const bool* column_mask,
    int64_t rows,
    int64_t width,
    double radius_sq,
    double band_factor,
    uint8_t* codes) {
  const int64_t item = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (item < rows * width) {
    const int64_t column = item % width;
    codes[item] = column_mask != nullptr && !column_mask[column]
        ? kOutside
        : screen_pair(partial[item], row_norms[item / width], column_norms[column], radius_sq, band_factor);
  }
}

template <typename scalar_t>
__global__ void exact_kernel(
    const scalar_t* points,
    const int64_t* a,
    const int64_t* b,
    int64_t pairs,
    int64_t dims,
    double radius_sq,
    bool* out) {
  const int64_t u = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (u < pairs) {
    out[u] = exact_square_distance(points + a[u] * dims, points + b[u] * dims, dims) <= radius_sq;
  }
}

// The CoverageScreen contract: a code per pair on the device, then ATen's reductions.
at::Tensor screen_cuda(
    const at::Tensor& partial,
    const at::Tensor& row_norms,
    const at::Tensor& column_norms,
    const at::Tensor& column_mask,
    double radius_sq,
    double band_factor,
    at::Tensor& row_counts,
    at::Tensor& column_counts,
    at::Tensor& inside) {
  const int64_t items = partial.numel();
  auto codes = at::empty(partial.sizes(), partial.options().dtype(at::kByte));
  if (items > 0) {
    AT_DISPATCH_FLOATING_TYPES(partial.scalar_type(), "coverage_greedy_screen", [&] {
      screen_kernel<scalar_t><<<blocks_for(items), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
          partial.const_data_ptr<scalar_t>(), row_norms.const_data_ptr<scalar_t>(),
          column_norms.const_data_ptr<scalar_t>(), column_mask.defined() ? column_mask.const_data_ptr<bool>() : nullptr,
          partial.size(0), partial.size(1), radius_sq, band_factor, codes.mutable_data_ptr<uint8_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  const auto sure = codes.eq(kInside);
  row_counts.add_(sure.sum(1));
  column_counts.add_(sure.sum(0));
  if (inside.defined()) {
    inside.copy_(sure);
  }
  return at::nonzero(codes.eq(kUnsure));
}

at::Tensor exact_cuda(const at::Tensor& points, const at::Tensor& rows, const at::Tensor& columns, double radius_sq) {
  auto inside = at::empty({rows.size(0)}, rows.options().dtype(at::kBool));
  const int64_t pairs = rows.size(0);
  if (pairs == 0) {
    return inside;
  }
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "coverage_greedy_exact", [&] {
    exact_kernel<scalar_t><<<blocks_for(pairs), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        points.const_data_ptr<scalar_t>(), rows.const_data_ptr<int64_t>(), columns.const_data_ptr<int64_t>(), pairs,
        points.size(1), radius_sq, inside.mutable_data_ptr<bool>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return inside;
}

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, CUDA, m) {
  m.impl("coverage_greedy", &coverage_greedy_kernel<screen_cuda, exact_cuda>);
}

}  // namespace torch_al::ops
