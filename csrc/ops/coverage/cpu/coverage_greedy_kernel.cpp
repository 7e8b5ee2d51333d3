#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <mutex>
#include <vector>

#include "ops/coverage/coverage_greedy_entry.h"
#include "ops/coverage/coverage_greedy_math.h"

namespace torch_al::ops {

namespace {

// The CoverageScreen contract, parallel over rows: each range of rows keeps its own column
// counts and unsure pairs, merged once at its end.
at::Tensor screen_cpu(
    const at::Tensor& partial,
    const at::Tensor& row_norms,
    const at::Tensor& column_norms,
    const at::Tensor& column_mask,
    double radius_sq,
    double band_factor,
    at::Tensor& row_counts,
    at::Tensor& column_counts,
    at::Tensor& inside) {
  const int64_t width = partial.size(1);
  const bool* mask = column_mask.defined() ? column_mask.const_data_ptr<bool>() : nullptr;
  bool* verdicts = inside.defined() ? inside.mutable_data_ptr<bool>() : nullptr;
  int64_t* per_row = row_counts.mutable_data_ptr<int64_t>();
  int64_t* per_column = column_counts.mutable_data_ptr<int64_t>();
  std::vector<int64_t> unsure;
  std::mutex merge;
  AT_DISPATCH_FLOATING_TYPES(partial.scalar_type(), "coverage_greedy_screen", [&] {
    const scalar_t* products = partial.const_data_ptr<scalar_t>();
    const scalar_t* rows = row_norms.const_data_ptr<scalar_t>();
    const scalar_t* columns = column_norms.const_data_ptr<scalar_t>();
    at::parallel_for(0, partial.size(0), 1, [&](int64_t begin, int64_t end) {
      std::vector<int64_t> counts(width, 0);
      std::vector<int64_t> local_unsure;
      for (int64_t q = begin; q < end; ++q) {
        const double row_norm = rows[q];
        int64_t count = 0;
        for (int64_t w = 0; w < width; ++w) {
          if (mask != nullptr && !mask[w]) {
            continue;
          }
          const auto code = screen_pair(products[q * width + w], row_norm, columns[w], radius_sq, band_factor);
          if (code == kInside) {
            ++count;
            ++counts[w];
            if (verdicts != nullptr) {
              verdicts[q * width + w] = true;
            }
          } else if (code == kUnsure) {
            local_unsure.push_back(q);
            local_unsure.push_back(w);
          }
        }
        per_row[q] += count;
      }
      const std::lock_guard<std::mutex> lock(merge);
      for (int64_t w = 0; w < width; ++w) {
        per_column[w] += counts[w];
      }
      unsure.insert(unsure.end(), local_unsure.begin(), local_unsure.end());
    });
  });
  const auto pairs = static_cast<int64_t>(unsure.size() / 2);
  auto out = at::empty({pairs, 2}, row_counts.options());
  std::copy(unsure.begin(), unsure.end(), out.mutable_data_ptr<int64_t>());
  return out;
}

at::Tensor exact_cpu(const at::Tensor& points, const at::Tensor& rows, const at::Tensor& columns, double radius_sq) {
  auto inside = at::empty({rows.size(0)}, rows.options().dtype(at::kBool));
  const int64_t dims = points.size(1);
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "coverage_greedy_exact", [&] {
    const scalar_t* data = points.const_data_ptr<scalar_t>();
    const int64_t* a = rows.const_data_ptr<int64_t>();
    const int64_t* b = columns.const_data_ptr<int64_t>();
    bool* out = inside.mutable_data_ptr<bool>();
    at::parallel_for(0, rows.size(0), 256, [&](int64_t begin, int64_t end) {
      for (int64_t u = begin; u < end; ++u) {
        out[u] = exact_square_distance(data + a[u] * dims, data + b[u] * dims, dims) <= radius_sq;
      }
    });
  });
  return inside;
}

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, CPU, m) {
  m.impl("coverage_greedy", &coverage_greedy_kernel<screen_cpu, exact_cpu>);
}

}  // namespace torch_al::ops
