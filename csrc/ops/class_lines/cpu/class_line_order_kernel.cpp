// class_line_order on the CPU: the keys' radix sort. One pass computes every row's key and the
// histograms of all six 11-bit digits; then one stable scatter per digit, skipping a digit every
// key shares (the high digits, for keys in [−1, 2]). benchmarks/bench_class_line_order.py times it.

#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "ops/class_lines/class_line_order.h"
#include "ops/class_lines/class_line_order_entry.h"
#include "ops/class_lines/class_line_order_math.h"

namespace torch_al::ops {

namespace {

constexpr int kDigitBits = 11;
constexpr int kDigits = (64 + kDigitBits - 1) / kDigitBits;
constexpr int64_t kBuckets = int64_t{1} << kDigitBits;

// A key and the row it belongs to, scattered together: one write stream per pass.
struct KeyedRow {
  uint64_t key;
  int64_t row;
};

inline int64_t digit(uint64_t key, int d) {
  return static_cast<int64_t>((key >> (d * kDigitBits)) & (kBuckets - 1));
}

// Rows on their way to one bucket, written out a block at a time: writing each row straight to its
// bucket touches as many cache lines and pages as there are buckets.
struct BucketBuffer {
  static constexpr int kRows = 8;  // 128 bytes
  KeyedRow rows[kRows];
  int count = 0;
};

// One stable pass: every row to its bucket of digit d, in order (offsets: each bucket's next slot).
inline void scatter_by_digit(
    const KeyedRow* from, KeyedRow* to, int64_t n, int d, int64_t* offsets, std::vector<BucketBuffer>& buffers) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t b = digit(from[i].key, d);
    BucketBuffer& buffer = buffers[b];
    buffer.rows[buffer.count++] = from[i];
    if (buffer.count == BucketBuffer::kRows) {
      std::copy(buffer.rows, buffer.rows + BucketBuffer::kRows, to + offsets[b]);
      offsets[b] += BucketBuffer::kRows;
      buffer.count = 0;
    }
  }
  for (int64_t b = 0; b < kBuckets; ++b) {
    std::copy(buffers[b].rows, buffers[b].rows + buffers[b].count, to + offsets[b]);
    offsets[b] += buffers[b].count;
    buffers[b].count = 0;
  }
}

// The per-dtype kernel class_line_order_with runs (see class_line_order_entry.h).
template <typename scalar_t>
struct CpuClassLineOrder {
  static void order(const at::Tensor& probabilities, int64_t k, at::Tensor& order, at::Tensor& position) {
    const int64_t n = probabilities.size(0);
    const int64_t classes = probabilities.size(1);
    const scalar_t* rows = probabilities.const_data_ptr<scalar_t>();
    std::vector<KeyedRow> keyed(n), scattered(n);
    std::vector<int64_t> counts(kDigits * kBuckets, 0);
    bool finite = true;
    for (int64_t i = 0; i < n; ++i) {
      const scalar_t* row = rows + i * classes;
      double top = static_cast<double>(row[0]);
      for (int64_t j = 0; j < classes; ++j) {
        const double value = static_cast<double>(row[j]);
        finite &= std::isfinite(value);
        top = std::max(top, value);
      }
      const uint64_t key = descending_radix_key(one_vs_rest_key(static_cast<double>(row[k]), top));
      keyed[i] = {key, i};
      for (int d = 0; d < kDigits; ++d) {
        ++counts[d * kBuckets + digit(key, d)];
      }
    }
    TORCH_CHECK(finite, "class_line_order: probabilities must be finite (a NaN or inf has no place on a line)");
    std::vector<BucketBuffer> buffers(kBuckets);
    KeyedRow* from = keyed.data();
    KeyedRow* to = scattered.data();
    for (int d = 0; d < kDigits; ++d) {
      int64_t* offsets = counts.data() + d * kBuckets;
      if (std::any_of(offsets, offsets + kBuckets, [n](int64_t count) { return count == n; })) {
        continue;  // every key has this digit: the pass would change nothing
      }
      int64_t start = 0;
      for (int64_t b = 0; b < kBuckets; ++b) {
        start += std::exchange(offsets[b], start);
      }
      scatter_by_digit(from, to, n, d, offsets, buffers);
      std::swap(from, to);
    }
    int64_t* places = order.mutable_data_ptr<int64_t>();
    int64_t* places_of = position.mutable_data_ptr<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      places[i] = from[i].row;
      places_of[from[i].row] = i;
    }
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(torch_al, CPU, m) {
  m.impl("class_line_order", &class_line_order_with<CpuClassLineOrder>);
}

}  // namespace torch_al::ops
