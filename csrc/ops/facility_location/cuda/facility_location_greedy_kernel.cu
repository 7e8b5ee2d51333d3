// Facility-location gains, cover and mass drops on the GPU; the greedy's heap stays on the host
// (facility_location_greedy_entry.h). In pure torch, with cover[N] >= 0 the best similarity of
// each universe point to the picks so far (0 before the first pick) and w[N] its weight,
//   gains = (w * (candidates[rows] @ universe.T - cover).clamp(min=0)).sum(1)
//   new   = torch.maximum(cover, universe @ candidates[pick]); risen = new > cover
//   drops = (w[risen] * ((S - cover[risen]).clamp(min=0) - (S - new[risen]).clamp(min=0))).double().sum(1),
//           S = candidates[rows] @ universe[risen].T
// For the gains a block takes one tile of kFacilityTile universe points (a thread per point) and
// kCandidatesPerBlock candidates: each thread forms its point's similarities, the block sums each
// candidate's terms in the lane order of facility_location_greedy_math.h (a warp per candidate)
// and writes one partial per (candidate, tile); the host adds a candidate's partials in tile order.
// The drops are summed in float64 in any order (atomics): only bounds are built from them.
// Host syncs: one per call of gains() (the partials coming back), two per cover() (the risen
// points counted, the drops coming back), one per masses().

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/full_like.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/nonzero.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "ops/facility_location/facility_location_greedy.h"
#include "ops/facility_location/facility_location_greedy_entry.h"
#include "ops/facility_location/facility_location_greedy_math.h"

namespace torch_al::ops {

namespace {

constexpr int kWarp = 32;
static_assert(kWarp == kFacilityLanes, "a warp's lanes are the summation lanes of facility_location_greedy_math.h");
constexpr int kTileThreads = static_cast<int>(kFacilityTile);
constexpr int kCandidatesPerBlock = kTileThreads / kWarp;  // a warp sums one candidate's terms
constexpr int kCoverThreads = 256;
constexpr int kDropThreads = 256;
constexpr int64_t kDropPointBlocks = 64;  // blocks along the points, per candidate

template <typename scalar_t>
__global__ void tile_gains_kernel(
    const scalar_t* __restrict__ candidates,
    int64_t dims,
    const int64_t* __restrict__ rows,
    int64_t count,
    const scalar_t* __restrict__ tiles,
    const scalar_t* __restrict__ cover,
    const scalar_t* __restrict__ weights,
    int64_t num_tiles,
    FacilityKernel<scalar_t> kernel,
    scalar_t* __restrict__ partials) {
  __shared__ scalar_t terms[kCandidatesPerBlock][kFacilityTile];
  const int64_t tile = blockIdx.x;
  const int64_t first = static_cast<int64_t>(blockIdx.y) * kCandidatesPerBlock;
  const int valid = static_cast<int>(min(static_cast<int64_t>(kCandidatesPerBlock), count - first));
  const int point = threadIdx.x;
  const scalar_t* points = tiles + universe_offset<scalar_t>(tile * kFacilityTile + point, 0, dims);
  const scalar_t* row[kCandidatesPerBlock];
  scalar_t similarity[kCandidatesPerBlock];
  for (int r = 0; r < kCandidatesPerBlock; ++r) {
    row[r] = candidates + rows[first + min(r, valid - 1)] * dims;
    similarity[r] = 0;
  }
  for (int64_t d = 0; d < dims; ++d) {
    const scalar_t u = points[d * facility_panel_width<scalar_t>];
    for (int r = 0; r < kCandidatesPerBlock; ++r) {
      similarity[r] = dot_step(similarity[r], row[r][d], u);
    }
  }
  const scalar_t point_cover = cover[tile * kFacilityTile + point];
  const scalar_t point_weight = weights[tile * kFacilityTile + point];
  const scalar_t point_norm = kernel.gaussian() ? kernel.point_norms[tile * kFacilityTile + point] : scalar_t(0);
  for (int r = 0; r < kCandidatesPerBlock; ++r) {
    const scalar_t value = kernel(similarity[r], rows[first + min(r, valid - 1)], point_norm);
    terms[r][point] = weighted_gain(value, point_cover, point_weight);
  }
  __syncthreads();
  const int warp = point / kWarp;
  const int lane = point % kWarp;
  if (warp < valid) {
    scalar_t partial = 0;
    for (int w = 0; w < kFacilityTile; w += kWarp) {
      partial = add_rn(partial, terms[warp][w + lane]);
    }
    for (int half = kWarp / 2; half > 0; half /= 2) {
      partial = add_rn(partial, __shfl_down_sync(0xffffffffu, partial, half));
    }
    if (lane == 0) {
      partials[(first + warp) * num_tiles + tile] = partial;
    }
  }
}

template <typename scalar_t>
__global__ void cover_kernel(
    const scalar_t* __restrict__ pick_row,
    int64_t pick,
    FacilityKernel<scalar_t> kernel,
    int64_t dims,
    const scalar_t* __restrict__ tiles,
    int64_t padded_points,
    scalar_t* __restrict__ cover,
    scalar_t* __restrict__ before,
    bool* __restrict__ risen) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < padded_points; p += step) {
    const scalar_t* points = tiles + universe_offset<scalar_t>(p, 0, dims);
    scalar_t similarity = 0;
    for (int64_t d = 0; d < dims; ++d) {
      similarity = dot_step(similarity, pick_row[d], points[d * facility_panel_width<scalar_t>]);
    }
    similarity = kernel(similarity, pick, kernel.gaussian() ? kernel.point_norms[p] : scalar_t(0));
    before[p] = cover[p];
    risen[p] = similarity > cover[p];
    cover[p] = raise_cover(cover[p], similarity);
  }
}

// drops[i] += the coverage_drop()s of candidate rows[i] (blockIdx.x) over points[M, D] (row-major),
// the points split over blockIdx.y, each block's sum added atomically.
template <typename scalar_t>
__global__ void drop_kernel(
    const scalar_t* __restrict__ candidates,
    int64_t dims,
    const int64_t* __restrict__ rows,
    const scalar_t* __restrict__ points,
    const scalar_t* __restrict__ before,
    const scalar_t* __restrict__ after,
    const scalar_t* __restrict__ weights,
    const scalar_t* __restrict__ point_norms,
    FacilityKernel<scalar_t> kernel,
    int64_t num_points,
    double* __restrict__ drops) {
  __shared__ double block_sums[kDropThreads];
  const scalar_t* row = candidates + rows[blockIdx.x] * dims;
  double drop = 0;
  const int64_t step = static_cast<int64_t>(gridDim.y) * blockDim.x;
  for (int64_t p = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x; p < num_points; p += step) {
    scalar_t similarity = 0;
    for (int64_t d = 0; d < dims; ++d) {
      similarity = dot_step(similarity, row[d], points[p * dims + d]);
    }
    similarity = kernel(similarity, rows[blockIdx.x], point_norms != nullptr ? point_norms[p] : scalar_t(0));
    drop += coverage_drop(similarity, before[p], after[p], weights[p]);
  }
  block_sums[threadIdx.x] = drop;
  __syncthreads();
  for (int half = kDropThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      block_sums[threadIdx.x] += block_sums[threadIdx.x + half];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    atomicAdd(drops + blockIdx.x, block_sums[0]);
  }
}

// The per-dtype kernels facility_location_greedy_with runs (see facility_location_greedy_entry.h).
template <typename scalar_t>
class CudaFacilityLocation {
 public:
  // A block's warps sum one candidate each: fresh gains cost about the same for 1 or this many.
  static constexpr int64_t kReevaluationBatch = kCandidatesPerBlock;

  CudaFacilityLocation(
      const at::Tensor& candidates,
      const at::Tensor& tiles,
      const at::Tensor& point_weights,
      const at::Tensor& candidate_norms,
      const at::Tensor& point_norms,
      double gamma)
      : candidates_(candidates),
        tiles_(tiles),
        point_weights_(point_weights),
        num_tiles_(tiles.size(0) * tiles.size(2) / kFacilityTile),
        cover_(at::zeros({num_tiles_ * kFacilityTile}, candidates.options())),
        host_rows_(
            at::empty(
                {kFacilityInitialChunk}, candidates.options().dtype(at::kLong).device(at::kCPU).pinned_memory(true))),
        device_rows_(at::empty({kFacilityInitialChunk}, candidates.options().dtype(at::kLong))),
        points_(tiles.transpose(1, 2).reshape({-1, candidates.size(1)}).contiguous()),
        before_(at::zeros_like(cover_)),
        risen_(at::zeros(cover_.sizes(), cover_.options().dtype(at::kBool))),
        point_norms_(point_norms),
        kernel_{
            candidate_norms.defined() ? candidate_norms.const_data_ptr<scalar_t>() : nullptr,
            point_norms.defined() ? point_norms.const_data_ptr<scalar_t>() : nullptr, gamma} {}

  void gains(const std::vector<int64_t>& rows, std::vector<scalar_t>& out) {
    const int64_t count = static_cast<int64_t>(rows.size());
    out.assign(count, scalar_t(0));
    if (count == 0 || num_tiles_ == 0) {
      return;
    }
    // The pinned buffer is free again: the previous call waited for its kernel.
    std::copy(rows.begin(), rows.end(), host_rows_.mutable_data_ptr<int64_t>());
    auto device_rows = device_rows_.slice(0, 0, count);
    device_rows.copy_(host_rows_.slice(0, 0, count), /*non_blocking=*/true);
    auto partials = at::empty({count, num_tiles_}, candidates_.options());
    const dim3 grid(num_tiles_, (count + kCandidatesPerBlock - 1) / kCandidatesPerBlock);
    tile_gains_kernel<scalar_t><<<grid, kTileThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        candidates_.const_data_ptr<scalar_t>(), candidates_.size(1), device_rows.const_data_ptr<int64_t>(), count,
        tiles_.const_data_ptr<scalar_t>(), cover_.const_data_ptr<scalar_t>(), point_weights_.const_data_ptr<scalar_t>(),
        num_tiles_, kernel_, partials.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const auto host = partials.cpu();  // the one host sync of this round
    for (int64_t i = 0; i < count; ++i) {
      out[i] = sum_tile_partials(host.const_data_ptr<scalar_t>() + i * num_tiles_, num_tiles_);
    }
  }

  int64_t masses(const std::vector<int64_t>& rows, std::vector<double>& out) {
    const auto uncovered = at::full_like(cover_, std::numeric_limits<scalar_t>::infinity());
    sum_drops(rows, points_, point_weights_, point_norms_, cover_, uncovered, out);
    return points_.size(0);
  }

  int64_t cover(int64_t pick, const std::vector<int64_t>& rows, std::vector<double>& drops) {
    const int64_t padded_points = num_tiles_ * kFacilityTile;
    drops.assign(rows.size(), 0.0);
    if (padded_points == 0) {
      return 0;
    }
    const int64_t blocks = std::min<int64_t>((padded_points + kCoverThreads - 1) / kCoverThreads, 65535);
    cover_kernel<scalar_t><<<blocks, kCoverThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        candidates_.const_data_ptr<scalar_t>() + pick * candidates_.size(1), pick, kernel_, candidates_.size(1),
        tiles_.const_data_ptr<scalar_t>(), padded_points, cover_.mutable_data_ptr<scalar_t>(),
        before_.mutable_data_ptr<scalar_t>(), risen_.mutable_data_ptr<bool>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const auto risen = at::nonzero(risen_).squeeze(1);  // a host sync: the count sizes the drops
    if (risen.numel() > 0) {
      sum_drops(
          rows, points_.index_select(0, risen), point_weights_.index_select(0, risen),
          point_norms_.defined() ? point_norms_.index_select(0, risen) : point_norms_, before_.index_select(0, risen),
          cover_.index_select(0, risen), drops);
    }
    return risen.numel();
  }

 private:
  // point_norms: the points' square norms under "gaussian" (undefined under "dot").
  void sum_drops(
      const std::vector<int64_t>& rows,
      const at::Tensor& points,
      const at::Tensor& weights,
      const at::Tensor& point_norms,
      const at::Tensor& before,
      const at::Tensor& after,
      std::vector<double>& out) {
    const int64_t count = static_cast<int64_t>(rows.size());
    out.assign(count, 0.0);
    if (count == 0 || points.size(0) == 0) {
      return;
    }
    const auto device_rows =
        at::from_blob(const_cast<int64_t*>(rows.data()), {count}, at::kLong).to(candidates_.device());
    auto sums = at::zeros({count}, candidates_.options().dtype(at::kDouble));
    const int64_t point_blocks =
        std::min<int64_t>((points.size(0) + kDropThreads - 1) / kDropThreads, kDropPointBlocks);
    const dim3 grid(count, point_blocks);
    drop_kernel<scalar_t><<<grid, kDropThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        candidates_.const_data_ptr<scalar_t>(), candidates_.size(1), device_rows.const_data_ptr<int64_t>(),
        points.const_data_ptr<scalar_t>(), before.const_data_ptr<scalar_t>(), after.const_data_ptr<scalar_t>(),
        weights.const_data_ptr<scalar_t>(), point_norms.defined() ? point_norms.const_data_ptr<scalar_t>() : nullptr,
        kernel_, points.size(0), sums.mutable_data_ptr<double>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const auto host = sums.cpu();
    std::copy(host.const_data_ptr<double>(), host.const_data_ptr<double>() + count, out.begin());
  }

  at::Tensor candidates_;
  at::Tensor tiles_;
  at::Tensor point_weights_;  // [padded N], tile_weights()
  int64_t num_tiles_;
  at::Tensor cover_;
  at::Tensor host_rows_;
  at::Tensor device_rows_;
  at::Tensor points_;       // the padded universe, row-major [N, D]: risen points are gathered from it
  at::Tensor before_;       // each point's cover before the last pick
  at::Tensor risen_;        // whether the last pick raised the point's cover
  at::Tensor point_norms_;  // under "gaussian": the padded universe's square norms, +inf on the padding
  FacilityKernel<scalar_t> kernel_;
};

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, CUDA, m) {
  m.impl("facility_location_greedy", &facility_location_greedy_with<CudaFacilityLocation>);
}

}  // namespace torch_al::ops
