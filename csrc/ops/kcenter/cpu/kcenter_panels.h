#pragma once

// kcenter_greedy's farthest-first pass at low dimension, vectorised across points instead of
// across dims. A point's squared distance is summed in the lane order of kcenter_greedy_math.h
// (lane j takes dims j, j + 32, ... in order, then the halving tree), so every value, and every
// pick, is bit for bit what farthest_after_pass gives. At low D that pass spends most of its time
// in the per-point tree; here kKCenterPanelWidth points go through each step together, from a
// transposed copy of x in acc_t, scaled once for the cosine metric.

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "ops/cpu_features.h"
#include "ops/kcenter/cpu/kcenter_pass.h"
#include "ops/kcenter/kcenter_greedy_math.h"

namespace torch_al::ops {

// Up to this many dims the panel pass is used: beyond, the per-point pass already runs near the
// memory bound and the copy of x would cost more than it saves.
constexpr int64_t kKCenterPanelMaxDims = 128;
constexpr int64_t kKCenterPanelWidth = 16;

// x[N, D] as panels of kKCenterPanelWidth points, point i's dim d at
// panel(i) * D * W + d * W + i % W, each value acc_t(x) (times the row's inverse norm for
// cosine, rounded once as squared_difference does). The last panel is padded with zeros.
template <typename scalar_t, typename acc_t>
std::vector<acc_t> pack_kcenter_panels(const scalar_t* x, int64_t n, int64_t dims, const acc_t* scale) {
  constexpr int64_t kW = kKCenterPanelWidth;
  const int64_t panels = (n + kW - 1) / kW;
  std::vector<acc_t> packed(panels * dims * kW, acc_t(0));
  at::parallel_for(0, panels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      for (int64_t w = 0; w < kW && p * kW + w < n; ++w) {
        const int64_t i = p * kW + w;
        for (int64_t d = 0; d < dims; ++d) {
          const acc_t value = static_cast<acc_t>(x[i * dims + d]);
          packed[(p * dims + d) * kW + w] = scale != nullptr ? mul_rn(value, scale[i]) : value;
        }
      }
    }
  });
  return packed;
}

// One panel's step: squared[w] = point w's lane-order squared distance to `center` (D values of
// acc_t, scaled like the panel), min_sq[w] lowered by it as lower_min() does; returns the largest
// min_sq[w] among the selectable points (NaN never counts), or -1 if none.
template <typename acc_t>
__attribute__((always_inline)) inline acc_t panel_step_body(
    const acc_t* panel, const acc_t* center, int64_t dims, acc_t* min_sq, const bool* selectable) {
  constexpr int64_t kW = kKCenterPanelWidth;
  acc_t lanes[kKCenterLanes][kW];  // only the used lanes are written, and only they are read
  const int64_t used_lanes = std::min<int64_t>(kKCenterLanes, dims);
  if (used_lanes == 0) {
    std::fill(lanes[0], lanes[0] + kW, acc_t(0));
  }
  for (int64_t j = 0; j < used_lanes; ++j) {
    acc_t acc[kW] = {};
    for (int64_t d = j; d < dims; d += kKCenterLanes) {
      const acc_t c = center[d];
      const acc_t* values = panel + d * kW;
#pragma GCC unroll 16
      for (int64_t w = 0; w < kW; ++w) {
        const acc_t diff = sub_rn(values[w], c);
        acc[w] = add_rn(acc[w], mul_rn(diff, diff));
      }
    }
    std::copy(acc, acc + kW, lanes[j]);
  }
  // The halving tree; a lane beyond the used ones holds +0, and x + 0 = x for the sums here (all
  // >= 0), so those additions are skipped: at D < 32 the tree costs D - 1 additions, not 31.
  int64_t live = used_lanes;
  for (int64_t half = kKCenterLanes / 2; half > 0; half /= 2) {
    for (int64_t j = 0; j + half < live; ++j) {
#pragma GCC unroll 16
      for (int64_t w = 0; w < kW; ++w) {
        lanes[j][w] = add_rn(lanes[j][w], lanes[j + half][w]);
      }
    }
    live = std::min(live, half);
  }
  acc_t top = -1;
#pragma GCC unroll 16
  for (int64_t w = 0; w < kW; ++w) {
    const acc_t squared = lanes[0][w];
    const acc_t lowered = (squared < min_sq[w] || squared != squared) ? squared : min_sq[w];
    min_sq[w] = lowered;
    const acc_t candidate = selectable[w] ? lowered : acc_t(-1);
    top = candidate > top ? candidate : top;
  }
  return top;
}

#if defined(__x86_64__)
template <typename acc_t>
__attribute__((target("avx2"))) acc_t
panel_step_avx2(const acc_t* panel, const acc_t* center, int64_t dims, acc_t* min_sq, const bool* selectable) {
  return panel_step_body(panel, center, dims, min_sq, selectable);
}
#endif

template <typename acc_t>
acc_t panel_step(const acc_t* panel, const acc_t* center, int64_t dims, acc_t* min_sq, const bool* selectable) {
#if defined(__x86_64__)
  if (cpu_has_avx2_fma()) {
    return panel_step_avx2(panel, center, dims, min_sq, selectable);
  }
#endif
  return panel_step_body(panel, center, dims, min_sq, selectable);
}

// farthest_after_pass with one center for every point (stride 0), over the packed panels;
// `center` holds its D values as the panels do (acc_t, scaled for cosine). The same min_sq updates
// and the same winner: a panel's top beats the chunk's best only if strictly larger, and then its
// first point of that value wins, so ties go to the lower index as there.
template <typename acc_t>
KCenterCandidate<acc_t> farthest_after_panel_pass(
    const std::vector<acc_t>& panels,
    int64_t n,
    int64_t dims,
    const acc_t* center,
    acc_t* min_sq,
    const bool* selectable) {
  constexpr int64_t kW = kKCenterPanelWidth;
  const int64_t num_panels = (n + kW - 1) / kW;
  const int64_t grain = std::max<int64_t>(1, grain_for(dims) / kW);
  return farthest_over_chunks<acc_t>(num_panels, grain, [&](int64_t begin, int64_t end) {
    KCenterCandidate<acc_t> best = no_candidate<acc_t>();
    for (int64_t p = begin; p < end; ++p) {
      const int64_t first = p * kW;
      const int64_t count = std::min(kW, n - first);
      // The last panel's padding: never selectable, its distances never stored.
      acc_t padded_min[kW];
      std::fill(padded_min, padded_min + kW, std::numeric_limits<acc_t>::infinity());
      bool padded_selectable[kW] = {};
      acc_t* mins = min_sq + first;
      const bool* open = selectable + first;
      if (count < kW) {
        std::copy(mins, mins + count, padded_min);
        std::copy(open, open + count, padded_selectable);
        mins = padded_min;
        open = padded_selectable;
      }
      const acc_t top = panel_step(panels.data() + p * dims * kW, center, dims, mins, open);
      if (count < kW) {
        std::copy(padded_min, padded_min + count, min_sq + first);
      }
      if (top > best.value) {
        int64_t w = 0;
        while (!(open[w] && mins[w] == top)) {
          ++w;
        }
        best = {top, first + w};
      }
    }
    return best;
  });
}

// Point i's values from the panels: the center row the panel pass compares against.
template <typename acc_t>
std::vector<acc_t> panel_point(const std::vector<acc_t>& panels, int64_t dims, int64_t i) {
  constexpr int64_t kW = kKCenterPanelWidth;
  std::vector<acc_t> values(dims);
  for (int64_t d = 0; d < dims; ++d) {
    values[d] = panels[((i / kW) * dims + d) * kW + i % kW];
  }
  return values;
}

}  // namespace torch_al::ops
