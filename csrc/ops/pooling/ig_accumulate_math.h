#pragma once

// Arithmetic of the ig_accumulate kernels, shared by the CPU and CUDA backends so that the CPU
// tests exercise the math the GPU runs. The path steps are one more reduced dim in front of the
// spatial dims of pool_features, so its SpatialGeometry describes the rest.

#include <c10/macros/Macros.h>

#include <algorithm>
#include <cstdint>

#include "ops/pooling/pool_features_math.h"

namespace torch_al::ops {

// The reduced dims of grad[:, b, c]: S path steps, each a spatial map. Positions are numbered in
// the flat order i = s * spatial.count + p, which is how threads split them.
struct PathGeometry {
  SpatialGeometry spatial;
  int64_t steps;
  int64_t step_stride;
};

// sizes / strides of grad (S, B, C, *spatial).
inline PathGeometry make_path_geometry(c10::IntArrayRef sizes, c10::IntArrayRef strides) {
  PathGeometry path{};
  path.spatial = make_spatial_geometry(sizes.slice(3), strides.slice(3));
  path.steps = sizes[0];
  path.step_stride = strides[0];
  return path;
}

// True when the channel stride is below every reduced dim's stride (channels_last maps, or the
// (S, B, C) gradients of a linear layer), so a kernel should walk the channels innermost to read
// memory in order.
inline bool path_channels_vary_fastest(int64_t channel_stride, const PathGeometry& path) {
  bool any_reduced = false;
  int64_t smallest = 0;
  if (path.spatial.ndim > 0) {
    smallest = path.spatial.strides[path.spatial.ndim - 1];
    any_reduced = true;
  }
  if (path.steps > 1) {
    smallest = any_reduced ? std::min(smallest, path.step_stride) : path.step_stride;
    any_reduced = true;
  }
  return any_reduced && channel_stride < smallest;
}

// Sum of grad_bc over the flat positions begin, begin + stride, ... (one thread's share), added
// up per step first: a float32 running sum over all S x |spatial| terms (10^5 for a chunk of 128
// steps on a 28x28 map) would lose digits, per-step subtotals keep them.
template <typename acc_t, typename scalar_t>
C10_HOST_DEVICE inline acc_t path_partial_sum(
    const scalar_t* grad_bc, const PathGeometry& path, int64_t begin, int64_t stride) {
  const int64_t count = path.spatial.count;
  acc_t sum = 0;
  for (int64_t s = 0; s < path.steps; ++s) {
    // the first p with s * count + p = begin (mod stride)
    const int64_t first = ((begin - s * count) % stride + stride) % stride;
    sum += spatial_partial_sum<acc_t>(grad_bc + s * path.step_stride, path.spatial, first, stride);
  }
  return sum;
}

// acc + sum / (steps * |spatial|): the chunk's share of (1/K) sum_k mean_spatial(grad_k). An empty
// spatial extent adds 0/0 = NaN, as torch.mean does.
template <typename acc_t>
C10_HOST_DEVICE inline acc_t ig_accumulated(acc_t acc, acc_t sum, int64_t steps, int64_t spatial_count) {
  return acc + sum / (static_cast<acc_t>(steps) * static_cast<acc_t>(spatial_count));
}

}  // namespace torch_al::ops
