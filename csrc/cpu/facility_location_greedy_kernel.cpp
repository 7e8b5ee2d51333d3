#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../facility_location_greedy.h"
#include "../facility_location_greedy_entry.h"
#include "../facility_location_greedy_math.h"

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
bool has_avx2_fma() {
  static const bool supported = [] {
    __builtin_cpu_init();  // the CPU model may not be read yet when static initialisers run
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return supported;
}
#endif

template <int kRows, typename scalar_t>
void tile_similarities(
    const scalar_t* const* rows, const scalar_t* tile, int64_t dims, scalar_t (*similarities)[kFacilityTile]) {
#if defined(__x86_64__)
  if (has_avx2_fma()) {
    tile_similarities_avx2<kRows>(rows, tile, dims, similarities);
    return;
  }
#endif
  tile_similarities_body<kRows>(rows, tile, dims, similarities);
}

// The lane sums of one tile, combined: see facility_location_greedy_math.h.
template <typename scalar_t>
scalar_t tile_partial(const scalar_t* similarities, const scalar_t* cover) {
  scalar_t lanes[kFacilityLanes] = {};
  for (int64_t w = 0; w < kFacilityTile; w += kFacilityLanes) {
    for (int l = 0; l < kFacilityLanes; ++l) {
      lanes[l] = add_rn(lanes[l], coverage_gain(similarities[w + l], cover[w + l]));
    }
  }
  return combine_lanes(lanes);
}

// The per-dtype kernels facility_location_greedy_with runs (see facility_location_greedy_entry.h).
template <typename scalar_t>
class CpuFacilityLocation {
 public:
  // A round reads the whole universe once; four candidates share that read.
  static constexpr int64_t kReevaluationBatch = kCandidateRows;

  CpuFacilityLocation(const at::Tensor& candidates, const at::Tensor& tiles)
      : candidates_(candidates),
        tiles_(tiles),
        dims_(candidates.size(1)),
        num_tiles_(tiles.size(0) * tiles.size(2) / kFacilityTile),
        cover_(num_tiles_ * kFacilityTile, scalar_t(0)) {}

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
        for (int r = 0; r < valid; ++r) {
          partials[(first + r) * num_tiles_ + tile] = tile_partial(similarities[r], cover_.data() + tile * kFacilityTile);
        }
      }
    });
    out.resize(count);
    for (int64_t i = 0; i < count; ++i) {
      out[i] = sum_tile_partials(partials.data() + i * num_tiles_, num_tiles_);
    }
  }

  void cover(int64_t pick) {
    const scalar_t* row = candidate(pick);
    at::parallel_for(0, num_tiles_, 1, [&](int64_t begin, int64_t end) {
      scalar_t similarities[1][kFacilityTile];
      for (int64_t tile = begin; tile < end; ++tile) {
        tile_similarities<1>(&row, tile_data(tile), dims_, similarities);
        scalar_t* cover = cover_.data() + tile * kFacilityTile;
        for (int64_t j = 0; j < kFacilityTile; ++j) {
          cover[j] = raise_cover(cover[j], similarities[0][j]);
        }
      }
    });
  }

 private:
  const scalar_t* candidate(int64_t index) const {
    return candidates_.const_data_ptr<scalar_t>() + index * dims_;
  }
  const scalar_t* tile_data(int64_t tile) const {
    return tiles_.const_data_ptr<scalar_t>() + tile * dims_ * kFacilityTile;
  }

  at::Tensor candidates_;
  at::Tensor tiles_;
  int64_t dims_;
  int64_t num_tiles_;
  std::vector<scalar_t> cover_;
};

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, CPU, m) {
  m.impl("facility_location_greedy", &facility_location_greedy_with<CpuFacilityLocation>);
}

}  // namespace torch_al::ops
