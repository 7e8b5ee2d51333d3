#pragma once

// The backend-agnostic half of the streaming PFK ops: how one tile of pool columns becomes the
// kernel matrix products, with ATen matrix multiplies (BLAS on CPU, cuBLAS on CUDA). The backends
// add the fused epilogue (value, mask, running top-k) on top.

#include <ATen/core/Tensor.h>
#include <c10/util/string_view.h>

#include <optional>
#include <vector>

namespace torch_al::ops {

// One similarity factor: query (M, L), the query descriptors concatenated along channels, times
// the pool descriptors `pool` concatenated the same way. Concatenating the scales turns J small
// products into one of width L = Σ C_j, which BLAS runs much closer to peak.
struct PfkFactor {
  at::Tensor query;
  // The query in the screen's dtype (precision "fast"); undefined otherwise.
  at::Tensor screen_query;
  std::vector<at::Tensor> pool;
  // The pool scales as one (N, width) matrix read in place: the single scale, or scales that are
  // adjacent column slices of one store; undefined when each tile must be packed by a copy.
  at::Tensor joined;
  int64_t width = 0;
};

// R = Σ_terms lhs ∘ rhs (rhs absent: R = lhs). "product" and single-scale "fisher" are one term of
// two factors, multi-scale "fisher" one term per scale, "sum" and no-gradient PCC one factor.
struct PfkTerm {
  PfkFactor lhs;
  std::optional<PfkFactor> rhs;
};

// What the streaming ops keep: per query row its k best pool columns (pfk_topk), or the k pool
// columns with the largest best-over-rows value max_m R[m, n] (pfk_column_topk).
enum class PfkReduction { kPerQueryRow, kPerPoolColumn };

struct PfkPlan {
  std::vector<PfkTerm> terms;
  int64_t rows = 0;     // M
  int64_t columns = 0;  // N
  // Set for precision "fast": the tile products take both sides in this dtype and accumulate in
  // the descriptors' one (a screen; pfk_rescore.h makes the kept candidates exact).
  std::optional<at::ScalarType> screen_dtype;
};

// Scales (N, C_j) that are consecutive column slices of one row-major store (as torch_al's
// descriptor capture returns them) viewed as the (N, Σ C_j) matrix they came from, read in place;
// undefined when they are not.
at::Tensor adjacent_columns(at::TensorList scales);

PfkPlan make_pfk_plan(
    at::TensorList query_z,
    at::TensorList pool_z,
    at::TensorList query_g,
    at::TensorList pool_g,
    c10::string_view combine,
    std::optional<at::ScalarType> screen_dtype = std::nullopt);

// One computed tile of `width` pool columns from `begin`: R[m, n] = base + lhs * rhs with
// row-major (M, width) buffers; base and rhs undefined when absent.
struct PfkTile {
  at::Tensor base;
  at::Tensor lhs;
  at::Tensor rhs;
  int64_t begin = 0;
  int64_t width = 0;
};

// Scratch for tiles of up to `max_width` columns, allocated once per worker: extra memory is
// O(M * max_width) whatever N is.
class PfkTileWorkspace {
 public:
  PfkTileWorkspace(const PfkPlan& plan, int64_t max_width, const at::TensorOptions& options);
  // Computes the tile of pool columns [begin, begin + width) into this workspace's buffers.
  PfkTile compute(int64_t begin, int64_t width);

 private:
  at::Tensor factor_product(const PfkFactor& factor, at::Tensor& buffer, int64_t begin, int64_t width);

  const PfkPlan& plan_;
  at::Tensor base_;
  at::Tensor lhs_;
  at::Tensor rhs_;
  at::Tensor packed_;
  at::Tensor screen_packed_;
};

}  // namespace torch_al::ops
