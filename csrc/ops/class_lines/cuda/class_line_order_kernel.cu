// class_line_order on CUDA: one thread per row writes its key, as an int64 that sorts ascending as
// the key sorts descending, and flags a non-finite probability; ATen's stable sort (a radix sort on
// the device) orders the keys.

#include <ATen/ops/arange.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>

#include "ops/class_lines/class_line_order.h"
#include "ops/class_lines/class_line_order_entry.h"
#include "ops/class_lines/class_line_order_math.h"

namespace torch_al::ops {

namespace {

constexpr int kThreads = 256;

template <typename scalar_t>
__global__ void signed_keys_kernel(
    const scalar_t* rows, int64_t n, int64_t classes, int64_t k, int64_t* keys, int* nonfinite) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const scalar_t* row = rows + i * classes;
    double top = static_cast<double>(row[0]);
    for (int64_t j = 0; j < classes; ++j) {
      const double value = static_cast<double>(row[j]);
      if (!isfinite(value)) {
        *nonfinite = 1;  // every writer writes 1: no race on the value
      }
      top = fmax(top, value);
    }
    const uint64_t key = descending_radix_key(one_vs_rest_key(static_cast<double>(row[k]), top));
    keys[i] = static_cast<int64_t>(key ^ (uint64_t{1} << 63));  // unsigned order as signed order
  }
}

// The per-dtype kernel class_line_order_with runs (see class_line_order_entry.h).
template <typename scalar_t>
struct CudaClassLineOrder {
  static void order(const at::Tensor& probabilities, int64_t k, at::Tensor& order, at::Tensor& position) {
    const int64_t n = probabilities.size(0);
    auto keys = at::empty({n}, order.options());
    auto nonfinite = at::zeros({}, order.options().dtype(at::kInt));
    const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, int64_t{1} << 16);
    signed_keys_kernel<scalar_t><<<blocks, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        probabilities.const_data_ptr<scalar_t>(), n, probabilities.size(1), k, keys.mutable_data_ptr<int64_t>(),
        nonfinite.mutable_data_ptr<int>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    TORCH_CHECK(  // the one host synchronisation
        nonfinite.item<int>() == 0,
        "class_line_order: probabilities must be finite (a NaN or inf has no place on a line)");
    order.copy_(std::get<1>(at::sort(keys, /*stable=*/true, /*dim=*/0, /*descending=*/false)));
    position.scatter_(0, order, at::arange(n, order.options()));
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, CUDA, m) {
  m.impl("class_line_order", &class_line_order_with<CudaClassLineOrder>);
}

}  // namespace torch_al::ops
