#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "ops/kmeanspp/kmeanspp_factored.h"
#include "ops/kmeanspp/kmeanspp_factored_entry.h"
#include "ops/kmeanspp/kmeanspp_factored_math.h"
#include "ops/lane_sums/lane_sum.h"

namespace torch_al::ops {

namespace {

// The per-dtype kernels kmeanspp_factored_with runs (see kmeanspp_factored_entry.h).
template <typename scalar_t>
struct CpuKMeansPPFactored {
  static at::Tensor squared_norms(const at::Tensor& a, const at::Tensor& b) {
    const int64_t n = a.size(0);
    const int64_t classes = a.size(1);
    const int64_t dims = b.size(1);
    at::Tensor out = at::empty({n}, a.options().dtype(at::kDouble));
    const scalar_t* a_data = a.const_data_ptr<scalar_t>();
    const scalar_t* b_data = b.const_data_ptr<scalar_t>();
    double* norms = out.mutable_data_ptr<double>();
    at::parallel_for(0, n, grain_for(classes + dims), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const scalar_t* a_row = a_data + i * classes;
        const scalar_t* b_row = b_data + i * dims;
        const double a_sq = lane_sum<double>(classes, [&](int64_t d) { return product_term(a_row[d], a_row[d]); });
        const double b_sq = lane_sum<double>(dims, [&](int64_t d) { return product_term(b_row[d], b_row[d]); });
        norms[i] = mul_rn(a_sq, b_sq);
      }
    });
    return out;
  }

  // Picks t >= first_draw: before each, the previous pick joins the centers (one parallel pass that
  // lowers min_sq), then one sequential pass builds the cumulative weights the draw searches.
  static void sample(
      const at::Tensor& a,
      const at::Tensor& b,
      const at::Tensor& squared_norms,
      const at::Tensor& uniforms,
      KMeansPPFactoredPlan& plan,
      at::Tensor& indices,
      at::Tensor& pick_sq,
      int64_t first_draw) {
    const int64_t n = a.size(0);
    const int64_t classes = a.size(1);
    const int64_t dims = b.size(1);
    const scalar_t* a_data = a.const_data_ptr<scalar_t>();
    const scalar_t* b_data = b.const_data_ptr<scalar_t>();
    const double* norms = squared_norms.const_data_ptr<double>();
    const double* draws = uniforms.const_data_ptr<double>();
    double* min_sq = plan.min_sq.mutable_data_ptr<double>();
    bool* selectable = plan.selectable.mutable_data_ptr<bool>();
    int64_t* picks = indices.mutable_data_ptr<int64_t>();
    double* picked_sq = pick_sq.mutable_data_ptr<double>();
    std::vector<double> cumulative(n);

    auto add_center = [&](int64_t c) {
      const scalar_t* a_center = a_data + c * classes;
      const scalar_t* b_center = b_data + c * dims;
      at::parallel_for(0, n, grain_for(classes + dims), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const scalar_t* a_row = a_data + i * classes;
          const scalar_t* b_row = b_data + i * dims;
          const double a_dot =
              lane_sum<double>(classes, [&](int64_t d) { return product_term(a_row[d], a_center[d]); });
          const double b_dot = lane_sum<double>(dims, [&](int64_t d) { return product_term(b_row[d], b_center[d]); });
          lower_min(min_sq + i, factored_squared_distance(norms[i], norms[c], a_dot, b_dot));
        }
      });
    };

    auto draw = [&](double u) {
      double total = 0;
      int64_t first_selectable = -1;
      int64_t last_weighted = -1;
      for (int64_t i = 0; i < n; ++i) {
        const double weight = sampling_weight(selectable[i], min_sq[i]);
        total = add_rn(total, weight);
        cumulative[i] = total;
        first_selectable = (first_selectable < 0 && selectable[i]) ? i : first_selectable;
        last_weighted = weight > 0 ? i : last_weighted;
      }
      if (!(total > 0)) {
        return first_selectable;
      }
      const auto above = std::upper_bound(cumulative.begin(), cumulative.end(), draw_threshold(u, total));
      // u * total can round up to total itself; the last weighted row is then the one it reaches.
      return above == cumulative.end() ? last_weighted : static_cast<int64_t>(above - cumulative.begin());
    };

    for (int64_t t = first_draw; t < indices.size(0); ++t) {
      if (t > 0) {
        add_center(picks[t - 1]);
      }
      const int64_t pick = draw(draws[t]);
      picks[t] = pick;
      picked_sq[t] = min_sq[pick];
      selectable[pick] = false;
      min_sq[pick] = 0;
    }
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, CPU, m) {
  m.impl("kmeanspp_factored", &kmeanspp_factored_with<CpuKMeansPPFactored>);
}

}  // namespace torch_al::ops
