#pragma once

// The facility_location_greedy entry every backend registers: validate, guard the device, tile the
// universe, then run the greedy on the host over the backend's kernels. A backend supplies
// `Backend<scalar_t>` with
//   static constexpr int64_t kReevaluationBatch;                // fresh gains computed per round
//   Backend(candidates, tiles, point_weights, candidate_norms, point_norms, gamma);
//       // candidates [K + L, D] (the initial rows last), tile_universe(), tile_weights(); under
//       // "gaussian" the square norms [K + L] and [padded N] (+inf on the padding), else undefined
//   void gains(const std::vector<int64_t>& rows, std::vector<scalar_t>& out);  // fresh, current cover
//   int64_t masses(const std::vector<int64_t>& rows, std::vector<double>& out);
//       // out[i] = the terms of rows[i]'s gain at cover 0 summed in float64; returns the points summed
//   int64_t cover(int64_t pick, const std::vector<int64_t>& rows, std::vector<double>& drops);
//       // the pick joins the set; drops[i] = the coverage_drop()s of rows[i] over the points whose
//       // cover rose, summed in float64; returns how many points rose
#include <ATen/Dispatch.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <c10/core/DeviceGuard.h>

#include <algorithm>
#include <iterator>
#include <limits>
#include <numeric>
#include <queue>
#include <tuple>
#include <vector>

#include "ops/facility_location/facility_location_greedy.h"
#include "ops/facility_location/facility_location_greedy_math.h"

namespace torch_al::ops {

// Candidates whose mass on the empty set is computed per call of masses(): bounds the device
// buffers to this many rows.
constexpr int64_t kFacilityInitialChunk = 1024;

// A candidate's gain bound, or its fresh gain when `round` is the current round.
struct FacilityBound {
  double gain;
  int64_t index;
  int64_t round;
};

// Heap order: larger gain first, then the lower index, which is the plain greedy's tie rule.
struct FacilityBoundAfter {
  bool operator()(const FacilityBound& a, const FacilityBound& b) const {
    return a.gain < b.gain || (a.gain == b.gain && a.index > b.index);
  }
};

// An upper bound of a candidate's fresh gain G (the sum of facility_location_greedy_math.h in
// scalar_t) from its mass M, the float64 running sum of the same terms (their exact sum T).
//  * |G - T| <= gamma(m) * T: each term passes through at most m = kFacilityTile / kFacilityLanes
//    lane additions, the lane tree's log2(kFacilityLanes) and one per tile, each rounding once by
//    at most u = epsilon / 2 of scalar_t (terms are >= 0), gamma(m) = m u / (1 - m u).
//  * |M - T| <= 1.02 * M0 * ops * u64: M took `ops` float64 roundings (at most 3 per point
//    summed over, one per update: the drop, its addition, the addition of a partial sum), each of
//    a value at most the candidate's initial mass M0 (terms and drops are >= 0, so no partial sum
//    exceeds it, in any order of addition).
// The product is formed with three more float64 roundings, covered by the last factor.
template <typename scalar_t>
class FreshGainBound {
 public:
  explicit FreshGainBound(int64_t num_tiles) {
    int64_t additions = kFacilityTile / kFacilityLanes + num_tiles;
    for (int lanes = kFacilityLanes; lanes > 1; lanes /= 2) {
      ++additions;
    }
    const double unit = std::numeric_limits<scalar_t>::epsilon() / 2;
    growth_ = (1 + additions * unit / (1 - additions * unit)) * (1 + 4 * kUnit64);
  }

  double operator()(double mass, double initial_mass, int64_t operations) const {
    return (std::max(mass, 0.0) + 1.02 * initial_mass * static_cast<double>(operations) * kUnit64) * growth_;
  }

 private:
  static constexpr double kUnit64 = std::numeric_limits<double>::epsilon() / 2;
  double growth_;
};

// The greedy with incremental gains. Each candidate's mass (its terms summed in float64) is kept
// current: a pick changes only the terms of the points whose cover rises, so the masses are
// updated over those points alone (K x |changed| similarities, many for the first picks, few
// later). A round then takes the largest FreshGainBound, computes fresh gains from the top (a
// batch at a time) until a fresh gain is at least every remaining bound, and picks it: the plain
// greedy's pick over the fresh gains, ties to the lower index, whatever the rounding of the masses.
// A zero bound is a zero gain, which no gain can go below: it needs no fresh sum, and a candidate
// whose fresh gain was 0 needs no more mass updates.
template <typename scalar_t, typename Kernels>
void incremental_greedy(
    Kernels& kernels, int64_t num_candidates, int64_t num_tiles, int64_t count, int64_t* picks, scalar_t* gains) {
  const FreshGainBound<scalar_t> bound(num_tiles);
  std::vector<int64_t> active(num_candidates);
  std::iota(active.begin(), active.end(), 0);
  std::vector<double> initial_mass(num_candidates);
  std::vector<int64_t> rows;
  std::vector<double> sums;
  int64_t operations = 1;
  for (int64_t begin = 0; begin < num_candidates; begin += kFacilityInitialChunk) {
    rows.assign(active.begin() + begin, active.begin() + std::min(num_candidates, begin + kFacilityInitialChunk));
    operations = 1 + 3 * kernels.masses(rows, sums);
    std::copy(sums.begin(), sums.end(), initial_mass.begin() + begin);
  }
  std::vector<double> mass = initial_mass;
  // The last fresh gain, also an upper bound: once 0, no rounding slack can revive the candidate.
  std::vector<double> fresh(num_candidates, std::numeric_limits<double>::infinity());
  std::vector<scalar_t> values;
  auto current = [](const FacilityBound& entry, int64_t round) { return entry.round == round || entry.gain == 0; };
  for (int64_t round = 0; round < count; ++round) {
    std::vector<FacilityBound> entries;
    entries.reserve(active.size());
    for (const int64_t c : active) {
      entries.push_back({std::min(fresh[c], bound(mass[c], initial_mass[c], operations)), c, -1});
    }
    std::priority_queue<FacilityBound, std::vector<FacilityBound>, FacilityBoundAfter> heap(
        FacilityBoundAfter{}, std::move(entries));
    while (!current(heap.top(), round)) {
      rows.clear();
      while (!heap.empty() && static_cast<int64_t>(rows.size()) < Kernels::kReevaluationBatch &&
             !current(heap.top(), round)) {
        rows.push_back(heap.top().index);
        heap.pop();
      }
      kernels.gains(rows, values);
      for (size_t i = 0; i < rows.size(); ++i) {
        fresh[rows[i]] = static_cast<double>(values[i]);
        heap.push({fresh[rows[i]], rows[i], round});
      }
    }
    picks[round] = heap.top().index;
    gains[round] = static_cast<scalar_t>(heap.top().gain);
    active.erase(std::find(active.begin(), active.end(), picks[round]));
    if (round + 1 < count) {
      rows.clear();
      std::copy_if(active.begin(), active.end(), std::back_inserter(rows), [&](int64_t c) { return fresh[c] > 0; });
      operations += 1 + 3 * kernels.cover(picks[round], rows, sums);
      for (size_t i = 0; i < rows.size(); ++i) {
        mass[rows[i]] -= sums[i];
      }
    }
  }
}

template <template <typename> class Backend>
std::tuple<at::Tensor, at::Tensor> facility_location_greedy_with(
    const at::Tensor& candidates,
    const at::Tensor& universe,
    int64_t count,
    const std::optional<at::Tensor>& initial,
    c10::string_view kernel,
    double gamma,
    const std::optional<at::Tensor>& weights) {
  check_facility_location_greedy_inputs(candidates, universe, count, initial, kernel, gamma, weights);
  const c10::DeviceGuard device_guard(candidates.device());
  check_facility_location_greedy_values(candidates, universe, initial, weights);
  auto picks = at::empty({count}, candidates.options().dtype(at::kLong));
  auto gains = at::empty({count}, candidates.options());
  if (count == 0) {
    return {picks, gains};
  }
  // The initial rows join the candidates after the last one: they cover, but are never picked.
  const auto rows =
      initial.has_value() && initial->size(0) > 0 ? at::cat({candidates, *initial}) : candidates.contiguous();
  const auto tiles = tile_universe(universe);
  const auto point_weights = tile_weights(weights, universe, tiles);
  at::Tensor candidate_norms;
  at::Tensor point_norms;
  if (kernel == "gaussian") {
    std::tie(candidate_norms, point_norms) = gaussian_norms(rows, universe, tiles);
  }
  AT_DISPATCH_FLOATING_TYPES(candidates.scalar_type(), "facility_location_greedy", [&] {
    Backend<scalar_t> kernels(rows, tiles, point_weights, candidate_norms, point_norms, gamma);
    std::vector<double> no_drops;
    for (int64_t row = candidates.size(0); row < rows.size(0); ++row) {
      kernels.cover(row, {}, no_drops);
    }
    std::vector<int64_t> host_picks(count);
    std::vector<scalar_t> host_gains(count);
    const int64_t num_tiles = (universe.size(0) + kFacilityTile - 1) / kFacilityTile;
    incremental_greedy(kernels, candidates.size(0), num_tiles, count, host_picks.data(), host_gains.data());
    picks.copy_(at::from_blob(host_picks.data(), {count}, at::kLong));
    gains.copy_(at::from_blob(host_gains.data(), {count}, candidates.scalar_type()));
  });
  return {picks, gains};
}

}  // namespace torch_al::ops
