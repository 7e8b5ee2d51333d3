#include <gtest/gtest.h>
#include <torch/torch.h>

#include <torch_al.h>

#include <string>
#include <vector>

#include "common_utils.h"

namespace {

using torch_al::testing_utils::expect_error_containing;

using torch::indexing::Slice;

// Brute force: materialise R in float64, exclude masked columns, stable descending sort (equal
// values keep the lower column first), masked picks become (-inf, -1).
std::tuple<at::Tensor, at::Tensor> reference_topk(const at::Tensor& scores, const at::Tensor& mask, int64_t k) {
  const auto masked = scores.masked_fill(mask, -std::numeric_limits<double>::infinity());
  auto [values, indices] = masked.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true);
  values = values.index({Slice(), Slice(0, k)});
  indices = indices.index({Slice(), Slice(0, k)}).clone();
  indices.masked_fill_(mask.index({indices}), -1);
  return {values, indices};
}

at::Tensor reference_kernel(
    const std::vector<at::Tensor>& qz,
    const std::vector<at::Tensor>& pz,
    const std::vector<at::Tensor>& qg,
    const std::vector<at::Tensor>& pg,
    const std::string& combine) {
  auto a = torch::zeros({qz[0].size(0), pz[0].size(0)}, torch::kDouble);
  auto b = torch::zeros_like(a);
  auto fisher = torch::zeros_like(a);
  for (size_t j = 0; j < qz.size(); ++j) {
    const auto aj = qz[j].to(torch::kDouble).mm(pz[j].to(torch::kDouble).t());
    const auto bj = qg[j].to(torch::kDouble).mm(pg[j].to(torch::kDouble).t());
    a += aj;
    b += bj;
    fisher += aj * bj;
  }
  return combine == "product" ? a * b : combine == "fisher" ? fisher : a + b;
}

std::vector<at::Tensor> randoms(int64_t rows, const std::vector<int64_t>& widths) {
  std::vector<at::Tensor> out;
  for (const auto c : widths) {
    out.push_back(torch::randint(-2, 3, {rows, c}).to(torch::kFloat));  // exact arithmetic, many ties
  }
  return out;
}

TEST(PfkTopk, MatchesBruteForceForEveryCombine) {
  torch::manual_seed(0);
  const auto qz = randoms(7, {3, 5});
  const auto pz = randoms(3001, {3, 5});
  const auto qg = randoms(7, {2, 4});
  const auto pg = randoms(3001, {2, 4});
  const auto mask = torch::rand({3001}) < 0.3;
  for (const std::string combine : {"product", "fisher", "sum"}) {
    const auto [values, indices] = torch_al::ops::pfk_topk(qz, pz, qg, pg, mask, 6, combine);
    const auto [expected_values, expected_indices] = reference_topk(reference_kernel(qz, pz, qg, pg, combine), mask, 6);
    EXPECT_TRUE(torch::equal(indices, expected_indices)) << combine;
    EXPECT_TRUE(torch::equal(values.to(torch::kDouble), expected_values)) << combine;
  }
}

TEST(PfkTopk, ColumnTopkMatchesBruteForce) {
  torch::manual_seed(1);
  const auto qz = randoms(5, {4});
  const auto pz = randoms(500, {4});
  const auto mask = torch::rand({500}) < 0.5;
  const auto [values, indices] = torch_al::ops::pfk_column_topk(qz, pz, {}, {}, mask, 9);
  const auto best = qz[0].to(torch::kDouble).mm(pz[0].to(torch::kDouble).t()).amax(0, /*keepdim=*/true);
  const auto [expected_values, expected_indices] = reference_topk(best, mask, 9);
  EXPECT_TRUE(torch::equal(indices, expected_indices[0]));
  EXPECT_TRUE(torch::equal(values.to(torch::kDouble), expected_values[0]));
}

TEST(PfkTopk, SelectUniqueRankedFillsRankByRank) {
  const auto values = torch::tensor({{1.0, 0.9}, {2.0, 0.1}, {2.0, 0.5}});
  const auto indices = torch::tensor({{7, 3}, {5, 7}, {4, 8}}, torch::kLong);
  const auto selected = torch_al::ops::select_unique_ranked(values, indices, 6);
  EXPECT_TRUE(torch::equal(selected, torch::tensor({4, 5, 7, 3, 8, -1}, torch::kLong)));
}

TEST(PfkTopk, NanNamesTheTensor) {
  auto pool = torch::randn({4, 3});
  pool.index_put_({1, 2}, std::numeric_limits<float>::quiet_NaN());
  expect_error_containing(
      [&] { torch_al::ops::pfk_topk({torch::randn({2, 3})}, {pool}, {}, {}, std::nullopt, 1); },
      "pfk_topk: pool_z[0] contains NaN");
}

TEST(PfkTopk, UncheckedCallTrustsTheCaller) {
  auto pool = torch::randn({4, 3});
  pool.index_put_({1, 2}, std::numeric_limits<float>::quiet_NaN());
  const auto query = torch::randn({2, 3});
  const auto [values, indices] =
      torch_al::ops::pfk_topk({query}, {pool}, {}, {}, std::nullopt, 2, "product", "exact", /*check_finite=*/false);
  EXPECT_EQ(indices.sizes(), torch::IntArrayRef({2, 2}));
  const auto [clean_values, clean_indices] = torch_al::ops::pfk_column_topk(
      {query}, {pool.nan_to_num()}, {}, {}, std::nullopt, 3, "product", "exact", /*check_finite=*/false);
  const auto [checked_values, checked_indices] =
      torch_al::ops::pfk_column_topk({query}, {pool.nan_to_num()}, {}, {}, std::nullopt, 3);
  EXPECT_TRUE(torch::equal(clean_indices, checked_indices));
}

}  // namespace
