#pragma once

// Arithmetic of the pool_features kernels, shared by the CPU and CUDA backends so that the CPU
// tests exercise the math the GPU runs.

#include <c10/macros/Macros.h>
#include <c10/util/ArrayRef.h>

#include <cstdint>

namespace torch_al::ops {

constexpr int kMaxPoolSpatialDims = 3;

// The trailing (spatial) dims of x, outermost first. Size-1 dims are dropped and dims that are
// contiguous with each other merged, so NCHW walks one stride-1 run and channels_last one
// stride-C run.
struct SpatialGeometry {
  int64_t sizes[kMaxPoolSpatialDims];
  int64_t strides[kMaxPoolSpatialDims];
  int ndim;
  int64_t count;
};

// Where pooled row n, channel c lands: out[rows[n], column + c], or out[n, c] without rows.
template <typename scalar_t>
struct PoolDestination {
  scalar_t* data;
  int64_t row_stride;
  int64_t col_stride;
  int64_t column;
  const int64_t* rows;
};

inline SpatialGeometry make_spatial_geometry(c10::IntArrayRef sizes, c10::IntArrayRef strides) {
  SpatialGeometry g{};
  g.ndim = 0;
  g.count = 1;
  for (size_t d = 0; d < sizes.size(); ++d) {
    g.count *= sizes[d];
    if (sizes[d] == 1) {
      continue;
    }
    const bool merges = g.ndim > 0 && g.strides[g.ndim - 1] == strides[d] * sizes[d];
    if (merges) {
      g.sizes[g.ndim - 1] *= sizes[d];
      g.strides[g.ndim - 1] = strides[d];
    } else {
      g.sizes[g.ndim] = sizes[d];
      g.strides[g.ndim] = strides[d];
      ++g.ndim;
    }
  }
  return g;
}

// True when the channel stride is the smallest one (channels_last), so a kernel should walk the
// channels innermost to read memory in order.
inline bool channels_vary_fastest(int64_t channel_stride, const SpatialGeometry& g) {
  return g.ndim > 0 && channel_stride < g.strides[g.ndim - 1];
}

C10_HOST_DEVICE inline int64_t spatial_offset(const SpatialGeometry& g, int64_t s) {
  int64_t offset = 0;
  for (int d = g.ndim - 1; d >= 0; --d) {
    offset += (s % g.sizes[d]) * g.strides[d];
    s /= g.sizes[d];
  }
  return offset;
}

// Sum of x_nc over the spatial positions begin, begin + step, ... (one thread's share). A single
// strided run (the common layouts) skips the index arithmetic and keeps four independent partial
// sums, so the CPU loop is not bound by the latency of one add chain.
template <typename acc_t, typename scalar_t>
C10_HOST_DEVICE inline acc_t spatial_partial_sum(
    const scalar_t* x_nc, const SpatialGeometry& g, int64_t begin, int64_t step) {
  if (g.ndim > 1) {
    acc_t sum = 0;
    for (int64_t s = begin; s < g.count; s += step) {
      sum += static_cast<acc_t>(x_nc[spatial_offset(g, s)]);
    }
    return sum;
  }
  const int64_t stride = g.ndim == 1 ? g.strides[0] : 0;
  acc_t sums[4] = {0, 0, 0, 0};
  int64_t s = begin;
  for (; s + 3 * step < g.count; s += 4 * step) {
    for (int lane = 0; lane < 4; ++lane) {
      sums[lane] += static_cast<acc_t>(x_nc[(s + lane * step) * stride]);
    }
  }
  for (; s < g.count; s += step) {
    sums[0] += static_cast<acc_t>(x_nc[s * stride]);
  }
  return (sums[0] + sums[1]) + (sums[2] + sums[3]);
}

// An empty spatial extent gives 0/0 = NaN, as torch.mean does.
template <typename acc_t>
C10_HOST_DEVICE inline acc_t spatial_mean(acc_t sum, int64_t count) {
  return sum / static_cast<acc_t>(count);
}

template <typename scalar_t>
C10_HOST_DEVICE inline int64_t destination_offset(const PoolDestination<scalar_t>& dst, int64_t n, int64_t c) {
  const int64_t row = dst.rows == nullptr ? n : dst.rows[n];
  return row * dst.row_stride + (dst.column + c) * dst.col_stride;
}

}  // namespace torch_al::ops
