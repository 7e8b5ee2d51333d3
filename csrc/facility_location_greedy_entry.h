#pragma once

// The facility_location_greedy entry every backend registers: validate, guard the device, tile the
// universe, then run the lazy greedy on the host over the backend's gain and cover kernels. A
// backend supplies `Backend<scalar_t>` with
//   static constexpr int64_t kReevaluationBatch;                // stale bounds refreshed per round
//   Backend(const at::Tensor& candidates, const at::Tensor& tiles);   // [K, D], tile_universe()
//   void gains(const std::vector<int64_t>& rows, std::vector<scalar_t>& out);  // exact, current cover
//   void cover(int64_t pick);                                    // the pick joins the set

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <c10/core/DeviceGuard.h>

#include <algorithm>
#include <numeric>
#include <queue>
#include <tuple>
#include <vector>

#include "facility_location_greedy.h"

namespace torch_al::ops {

// Candidates whose gain on the empty set is computed per call of gains(): bounds the host and
// device buffers of partial sums to this many rows.
constexpr int64_t kFacilityInitialChunk = 1024;

// A candidate's gain as last evaluated, after `round` picks. Gains only shrink as picks are added
// (submodularity, kept exactly by the arithmetic of facility_location_greedy_math.h), so an older
// value is an upper bound of the current gain.
template <typename scalar_t>
struct FacilityBound {
  scalar_t gain;
  int64_t index;
  int64_t round;
};

// Heap order: larger gain first, then the lower index, which is the plain greedy's tie rule.
template <typename scalar_t>
struct FacilityBoundAfter {
  bool operator()(const FacilityBound<scalar_t>& a, const FacilityBound<scalar_t>& b) const {
    return a.gain < b.gain || (a.gain == b.gain && a.index > b.index);
  }
};

// The lazy greedy: the top of the heap is picked once its bound is current (or 0, which no
// gain can go below); until then up to kReevaluationBatch stale bounds from the top are
// refreshed at once. Picks are exactly those of the plain greedy, ties included.
template <typename scalar_t, typename Kernels>
void lazy_greedy(Kernels& kernels, int64_t num_candidates, int64_t count, int64_t* picks, scalar_t* gains) {
  using Bound = FacilityBound<scalar_t>;
  std::priority_queue<Bound, std::vector<Bound>, FacilityBoundAfter<scalar_t>> heap;
  std::vector<int64_t> rows;
  std::vector<scalar_t> values;
  auto evaluate = [&](int64_t round) {
    kernels.gains(rows, values);
    for (size_t i = 0; i < rows.size(); ++i) {
      heap.push({values[i], rows[i], round});
    }
  };
  for (int64_t begin = 0; begin < num_candidates; begin += kFacilityInitialChunk) {
    rows.resize(std::min(kFacilityInitialChunk, num_candidates - begin));
    std::iota(rows.begin(), rows.end(), begin);
    evaluate(0);
  }
  auto current = [](const Bound& bound, int64_t round) { return bound.round == round || bound.gain == 0; };
  for (int64_t round = 0; round < count;) {
    if (current(heap.top(), round)) {
      picks[round] = heap.top().index;
      gains[round] = heap.top().gain;
      heap.pop();
      if (++round < count) {
        kernels.cover(picks[round - 1]);
      }
      continue;
    }
    rows.clear();
    while (!heap.empty() && static_cast<int64_t>(rows.size()) < Kernels::kReevaluationBatch &&
           !current(heap.top(), round)) {
      rows.push_back(heap.top().index);
      heap.pop();
    }
    evaluate(round);
  }
}

template <template <typename> class Backend>
std::tuple<at::Tensor, at::Tensor> facility_location_greedy_with(
    const at::Tensor& candidates, const at::Tensor& universe, int64_t count) {
  check_facility_location_greedy_inputs(candidates, universe, count);
  const c10::DeviceGuard device_guard(candidates.device());
  check_facility_location_greedy_values(candidates, universe);
  auto picks = at::empty({count}, candidates.options().dtype(at::kLong));
  auto gains = at::empty({count}, candidates.options());
  if (count == 0) {
    return {picks, gains};
  }
  AT_DISPATCH_FLOATING_TYPES(candidates.scalar_type(), "facility_location_greedy", [&] {
    Backend<scalar_t> kernels(candidates.contiguous(), tile_universe(universe));
    std::vector<int64_t> host_picks(count);
    std::vector<scalar_t> host_gains(count);
    lazy_greedy(kernels, candidates.size(0), count, host_picks.data(), host_gains.data());
    picks.copy_(at::from_blob(host_picks.data(), {count}, at::kLong));
    gains.copy_(at::from_blob(host_gains.data(), {count}, candidates.scalar_type()));
  });
  return {picks, gains};
}

}  // namespace torch_al::ops
