#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <vector>

#include "ops/cpu_features.h"
#include "ops/facility_location/facility_location_greedy.h"
#include "ops/facility_location/facility_location_greedy_entry.h"
#include "ops/facility_location/facility_location_greedy_math.h"

namespace torch_al::ops {

namespace {

constexpr int kCandidateRows = 4;

// similarities[r][j] = s(rows[r], point j of the tile), each a chain of FMAs in increasing d.
// A panel's kRows x W sums stay in registers (8 AVX registers; the pragmas make GCC keep them there).
template <int kRows, typename scalar_t>
__attribute__((always_inline)) inline void tile_similarities_body(
    const scalar_t* const* rows, const scalar_t* tile, int64_t dims, scalar_t (*similarities)[kFacilityTile]) {
  constexpr int64_t kWidth = facility_panel_width<scalar_t>;
  for (int64_t j0 = 0; j0 < kFacilityTile; j0 += kWidth) {
    const scalar_t* panel = tile + universe_offset<scalar_t>(j0, 0, dims);
    scalar_t acc[kRows][kWidth] = {};
    for (int64_t d = 0; d < dims; ++d) {
      const scalar_t* points = panel + d * kWidth;
#pragma GCC unroll 8
      for (int r = 0; r < kRows; ++r) {
        const scalar_t a = rows[r][d];
#pragma GCC unroll 16
        for (int64_t j = 0; j < kWidth; ++j) {
          acc[r][j] = dot_step(acc[r][j], a, points[j]);
        }
      }
    }
    for (int r = 0; r < kRows; ++r) {
      std::copy(acc[r], acc[r] + kWidth, similarities[r] + j0);
    }
  }
}

// The same sums, compiled twice: with AVX2 and FMA instructions (vectorised), and for any x86-64
// (fma through glibc) for any CPU. Both round each step once, so they agree bit for bit.
#if defined(__x86_64__)
template <int kRows, typename scalar_t>
__attribute__((target("avx2,fma"))) void tile_similarities_avx2(
    const scalar_t* const* rows, const scalar_t* tile, int64_t dims, scalar_t (*similarities)[kFacilityTile]) {
  tile_similarities_body<kRows>(rows, tile, dims, similarities);
}
#endif

template <int kRows, typename scalar_t>
void tile_similarities(
    const scalar_t* const* rows, const scalar_t* tile, int64_t dims, scalar_t (*similarities)[kFacilityTile]) {
#if defined(__x86_64__)
  if (cpu_has_avx2_fma()) {
    tile_similarities_avx2<kRows>(rows, tile, dims, similarities);
    return;
  }
#endif
  tile_similarities_body<kRows>(rows, tile, dims, similarities);
}

// The lane sums of one tile, combined: see facility_location_greedy_math.h.
template <typename scalar_t>
scalar_t tile_partial(const scalar_t* similarities, const scalar_t* cover, const scalar_t* weights) {
  scalar_t lanes[kFacilityLanes] = {};
  for (int64_t w = 0; w < kFacilityTile; w += kFacilityLanes) {
    for (int l = 0; l < kFacilityLanes; ++l) {
      lanes[l] = add_rn(lanes[l], weighted_gain(similarities[w + l], cover[w + l], weights[w + l]));
    }
  }
  return combine_lanes(lanes);
}

// The drops of one tile, in independent float64 lanes (any order: FreshGainBound bounds them all).
template <typename scalar_t>
double tile_drop(const scalar_t* similarities, const scalar_t* before, const scalar_t* after, const scalar_t* weights) {
  constexpr int kDropLanes = 8;
  double lanes[kDropLanes] = {};
  for (int64_t w = 0; w < kFacilityTile; w += kDropLanes) {
    for (int l = 0; l < kDropLanes; ++l) {
      lanes[l] += coverage_drop(similarities[w + l], before[w + l], after[w + l], weights[w + l]);
    }
  }
  return std::accumulate(lanes, lanes + kDropLanes, 0.0);
}

// The per-dtype kernels facility_location_greedy_with runs (see facility_location_greedy_entry.h).
template <typename scalar_t>
class CpuFacilityLocation {
 public:
  // A fresh gain reads the whole universe once; four candidates share that read.
  static constexpr int64_t kReevaluationBatch = kCandidateRows;

  CpuFacilityLocation(
      const at::Tensor& candidates,
      const at::Tensor& tiles,
      const at::Tensor& point_weights,
      const at::Tensor& candidate_norms,
      const at::Tensor& point_norms,
      double gamma)
      : candidates_(candidates),
        tiles_(tiles),
        point_weights_(point_weights),
        dims_(candidates.size(1)),
        num_tiles_(tiles.size(0) * tiles.size(2) / kFacilityTile),
        cover_(num_tiles_ * kFacilityTile, scalar_t(0)),
        kernel_{
            candidate_norms.defined() ? candidate_norms.const_data_ptr<scalar_t>() : nullptr,
            point_norms.defined() ? point_norms.const_data_ptr<scalar_t>() : nullptr, gamma} {}

  void gains(const std::vector<int64_t>& rows, std::vector<scalar_t>& out) {
    const int64_t count = static_cast<int64_t>(rows.size());
    const int64_t groups = (count + kCandidateRows - 1) / kCandidateRows;
    std::vector<scalar_t> partials(count * num_tiles_);
    // One work item is (tile, group of candidates), tile-major: a tile stays in cache for all the
    // groups, and a round with one group runs in parallel over the tiles.
    at::parallel_for(0, groups * num_tiles_, 1, [&](int64_t begin, int64_t end) {
      scalar_t similarities[kCandidateRows][kFacilityTile];
      for (int64_t item = begin; item < end; ++item) {
        const int64_t tile = item / groups;
        const int64_t group = item % groups;
        const int64_t first = group * kCandidateRows;
        const int valid = static_cast<int>(std::min<int64_t>(kCandidateRows, count - first));
        const scalar_t* group_rows[kCandidateRows];
        for (int r = 0; r < kCandidateRows; ++r) {
          group_rows[r] = candidate(rows[first + std::min(r, valid - 1)]);
        }
        tile_similarities<kCandidateRows>(group_rows, tile_data(tile), dims_, similarities);
        apply_kernel(similarities, valid, rows.data() + first, tile_point_norms(kernel_.point_norms, tile));
        for (int r = 0; r < valid; ++r) {
          partials[(first + r) * num_tiles_ + tile] = tile_partial(
              similarities[r], cover_.data() + tile * kFacilityTile, weights_data() + tile * kFacilityTile);
        }
      }
    });
    out.resize(count);
    for (int64_t i = 0; i < count; ++i) {
      out[i] = sum_tile_partials(partials.data() + i * num_tiles_, num_tiles_);
    }
  }

  int64_t masses(const std::vector<int64_t>& rows, std::vector<double>& out) {
    const std::vector<scalar_t> uncovered(num_tiles_ * kFacilityTile, std::numeric_limits<scalar_t>::infinity());
    sum_drops(
        rows, tiles_data(), weights_data(), kernel_.point_norms, num_tiles_, cover_.data(), uncovered.data(), out);
    return num_tiles_ * kFacilityTile;
  }

  // Gathers the points whose cover rises into tiles of their own (zero points with cover 0 and
  // weight 0 pad the last: they drop nothing), so the drops cost K x |risen| similarities, not K x N.
  int64_t cover(int64_t pick, const std::vector<int64_t>& rows, std::vector<double>& drops) {
    const std::vector<scalar_t> similarity = pick_similarities(pick);
    std::vector<int64_t> risen;
    for (int64_t p = 0; p < num_tiles_ * kFacilityTile; ++p) {
      if (similarity[p] > cover_[p]) {
        risen.push_back(p);
      }
    }
    const int64_t count = static_cast<int64_t>(risen.size());
    const int64_t risen_tiles = (count + kFacilityTile - 1) / kFacilityTile;
    std::vector<scalar_t> points(risen_tiles * kFacilityTile * dims_, scalar_t(0));
    std::vector<scalar_t> before(risen_tiles * kFacilityTile, scalar_t(0));
    std::vector<scalar_t> after(before.size(), scalar_t(0));
    std::vector<scalar_t> weights(before.size(), scalar_t(0));
    // Under "gaussian" the gathered points bring their norms; the padding's is +inf.
    std::vector<scalar_t> norms(kernel_.gaussian() ? before.size() : 0, std::numeric_limits<scalar_t>::infinity());
    const scalar_t* universe = tiles_data();
    for (int64_t i = 0; i < count; ++i) {
      const int64_t p = risen[i];
      for (int64_t d = 0; d < dims_; ++d) {
        points[universe_offset<scalar_t>(i, d, dims_)] = universe[universe_offset<scalar_t>(p, d, dims_)];
      }
      before[i] = cover_[p];
      after[i] = cover_[p] = raise_cover(cover_[p], similarity[p]);
      weights[i] = weights_data()[p];
      if (kernel_.gaussian()) {
        norms[i] = kernel_.point_norms[p];
      }
    }
    sum_drops(
        rows, points.data(), weights.data(), kernel_.gaussian() ? norms.data() : nullptr, risen_tiles, before.data(),
        after.data(), drops);
    return count;
  }

 private:
  // Tiles of universe points summed per block, all candidates at once: a block stays in cache.
  static constexpr int64_t kTilesPerBlock = 8;

  std::vector<scalar_t> pick_similarities(int64_t pick) const {
    std::vector<scalar_t> similarity(num_tiles_ * kFacilityTile);
    const scalar_t* row = candidate(pick);
    at::parallel_for(0, num_tiles_, 1, [&](int64_t begin, int64_t end) {
      for (int64_t tile = begin; tile < end; ++tile) {
        auto* out = reinterpret_cast<scalar_t(*)[kFacilityTile]>(similarity.data() + tile * kFacilityTile);
        tile_similarities<1>(&row, tile_data(tile), dims_, out);
        apply_kernel(out, 1, &pick, tile_point_norms(kernel_.point_norms, tile));
      }
    });
    return similarity;
  }

  // out[i] = sum over the points of `tiles` of coverage_drop(s(rows[i], point), before, after,
  // weight); point_norms: the points' square norms under "gaussian" (null under "dot").
  void sum_drops(
      const std::vector<int64_t>& rows,
      const scalar_t* tiles,
      const scalar_t* weights,
      const scalar_t* point_norms,
      int64_t num_tiles,
      const scalar_t* before,
      const scalar_t* after,
      std::vector<double>& out) const {
    const int64_t count = static_cast<int64_t>(rows.size());
    const int64_t groups = (count + kCandidateRows - 1) / kCandidateRows;
    out.assign(count, 0.0);
    for (int64_t block = 0; block < num_tiles; block += kTilesPerBlock) {
      const int64_t block_end = std::min(num_tiles, block + kTilesPerBlock);
      at::parallel_for(0, groups, 1, [&](int64_t begin, int64_t end) {
        scalar_t similarities[kCandidateRows][kFacilityTile];
        for (int64_t group = begin; group < end; ++group) {
          const int64_t first = group * kCandidateRows;
          const int valid = static_cast<int>(std::min<int64_t>(kCandidateRows, count - first));
          const scalar_t* group_rows[kCandidateRows];
          for (int r = 0; r < kCandidateRows; ++r) {
            group_rows[r] = candidate(rows[first + std::min(r, valid - 1)]);
          }
          for (int64_t tile = block; tile < block_end; ++tile) {
            tile_similarities<kCandidateRows>(group_rows, tiles + tile * dims_ * kFacilityTile, dims_, similarities);
            apply_kernel(similarities, valid, rows.data() + first, tile_point_norms(point_norms, tile));
            const int64_t offset = tile * kFacilityTile;
            for (int r = 0; r < valid; ++r) {
              out[first + r] += tile_drop(similarities[r], before + offset, after + offset, weights + offset);
            }
          }
        }
      });
    }
  }

  // The kernel's similarities from the dot products of `valid` candidate rows with a tile's points.
  void apply_kernel(
      scalar_t (*similarities)[kFacilityTile], int valid, const int64_t* candidate_rows, const scalar_t* norms) const {
    if (!kernel_.gaussian()) {
      return;
    }
    for (int r = 0; r < valid; ++r) {
      for (int64_t j = 0; j < kFacilityTile; ++j) {
        similarities[r][j] = kernel_(similarities[r][j], candidate_rows[r], norms[j]);
      }
    }
  }

  static const scalar_t* tile_point_norms(const scalar_t* norms, int64_t tile) {
    return norms == nullptr ? nullptr : norms + tile * kFacilityTile;
  }

  const scalar_t* candidate(int64_t index) const { return candidates_.const_data_ptr<scalar_t>() + index * dims_; }
  const scalar_t* tiles_data() const { return tiles_.const_data_ptr<scalar_t>(); }
  const scalar_t* weights_data() const { return point_weights_.const_data_ptr<scalar_t>(); }
  const scalar_t* tile_data(int64_t tile) const { return tiles_data() + tile * dims_ * kFacilityTile; }

  at::Tensor candidates_;
  at::Tensor tiles_;
  at::Tensor point_weights_;  // [padded N], tile_weights()
  int64_t dims_;
  int64_t num_tiles_;
  std::vector<scalar_t> cover_;
  FacilityKernel<scalar_t> kernel_;
};

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, CPU, m) {
  m.impl("facility_location_greedy", &facility_location_greedy_with<CpuFacilityLocation>);
}

}  // namespace torch_al::ops
