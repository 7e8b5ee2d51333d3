#include <gtest/gtest.h>
#include <torch/torch.h>

#include <torch_al.h>

#include <cmath>
#include <limits>
#include <vector>

#include "common_utils.h"

namespace {

using torch_al::testing_utils::DeviceTest;

// Reference: D² sampling over the embeddings a_i (x) b_i formed explicitly, in float64, distances
// from differences, with the op's rules (largest embedding first when there are no centers).
std::vector<int64_t> reference_picks(const at::Tensor& a, const at::Tensor& b, const at::Tensor& uniforms) {
  const auto e = torch::einsum("nc,nd->ncd", {a.to(torch::kDouble).cpu(), b.to(torch::kDouble).cpu()}).flatten(1);
  const int64_t n = e.size(0);
  auto min_sq = torch::full({n}, std::numeric_limits<double>::infinity(), torch::kDouble);
  auto selectable = torch::ones({n}, torch::kBool);
  const auto draws = uniforms.cpu();
  std::vector<int64_t> picks;
  for (int64_t t = 0; t < draws.size(0); ++t) {
    int64_t pick = 0;
    if (t == 0) {
      pick = e.square().sum(1).argmax().item<int64_t>();
    } else {
      const auto cumulative = torch::where(selectable, min_sq, 0.0).cumsum(0);
      const double threshold = draws[t].item<double>() * cumulative[-1].item<double>();
      pick = torch::searchsorted(cumulative, torch::tensor({threshold}, torch::kDouble), false, true).item<int64_t>();
    }
    picks.push_back(pick);
    selectable[pick] = false;
    min_sq = torch::minimum(min_sq, (e - e[pick]).square().sum(1));
  }
  return picks;
}

std::vector<int64_t> to_vector(const at::Tensor& indices) {
  const auto cpu = indices.cpu();
  return {cpu.data_ptr<int64_t>(), cpu.data_ptr<int64_t>() + cpu.numel()};
}

class KMeansPPFactored : public DeviceTest {};

TEST_P(KMeansPPFactored, MatchesDenseReference) {
  torch::manual_seed(0);
  const auto a = torch::randn({200, 7}, options());
  const auto b = torch::randn({200, 45}, options());
  const auto uniforms = torch::rand({30}, options().dtype(torch::kDouble));
  const auto [indices, pick_sq] = torch_al::ops::kmeanspp_factored(a, b, uniforms);
  EXPECT_EQ(to_vector(indices), reference_picks(a, b, uniforms));
  EXPECT_TRUE(std::isinf(pick_sq[0].item<double>()));
}

TEST_P(KMeansPPFactored, InitialCentersAreNeverPicked) {
  const auto a = torch::randn({60, 4}, options());
  const auto b = torch::randn({60, 9}, options());
  const auto initial = torch::arange(0, 60, 3, options().dtype(torch::kLong));
  const auto indices =
      std::get<0>(torch_al::ops::kmeanspp_factored(a, b, torch::rand({40}, options().dtype(torch::kDouble)), initial));
  EXPECT_FALSE(torch::isin(indices, initial).any().item<bool>());
  EXPECT_EQ(std::get<0>(at::_unique(indices)).numel(), 40);
}

TEST_P(KMeansPPFactored, TooManyPicksNamesBothNumbers) {
  const auto a = torch::randn({6, 3}, options());
  const auto b = torch::randn({6, 2}, options());
  torch_al::testing_utils::expect_error_containing(
      [&] {
        torch_al::ops::kmeanspp_factored(
            a, b, torch::rand({5}, options().dtype(torch::kDouble)),
            torch::tensor({0, 1}, options().dtype(torch::kLong)));
      },
      "5 picks (one per uniform) are more than the 4 rows that are not initial centers");
}

INSTANTIATE_TEST_SUITE_P(Devices, KMeansPPFactored, torch_al::testing_utils::built_devices());

}  // namespace
