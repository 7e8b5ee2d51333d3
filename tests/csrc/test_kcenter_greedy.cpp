#include <gtest/gtest.h>
#include <torch/torch.h>

#include <torch_al.h>

#include <string>
#include <vector>

namespace {

// Reference: farthest-first in float64, recomputing every distance to every center each pick.
std::vector<int64_t> reference_picks(const at::Tensor& x, int64_t k, const std::vector<int64_t>& initial) {
  const auto points = x.to(torch::kDouble).cpu();
  std::vector<int64_t> centers = initial;
  std::vector<int64_t> picks;
  for (int64_t t = 0; t < k; ++t) {
    if (centers.empty()) {
      picks.push_back(0);
    } else {
      const auto chosen = points.index_select(0, torch::tensor(centers));
      auto min_dist = (points.unsqueeze(1) - chosen.unsqueeze(0)).square().sum(-1).amin(1);
      min_dist.index_fill_(0, torch::tensor(centers), -1.0);
      picks.push_back(min_dist.argmax().item<int64_t>());
    }
    centers.push_back(picks.back());
  }
  return picks;
}

std::vector<int64_t> to_vector(const at::Tensor& indices) {
  const auto cpu = indices.cpu();
  return {cpu.data_ptr<int64_t>(), cpu.data_ptr<int64_t>() + cpu.numel()};
}

class KCenterGreedy : public testing::TestWithParam<c10::DeviceType> {
 protected:
  torch::TensorOptions options() const { return torch::TensorOptions().device(GetParam()); }
};

TEST_P(KCenterGreedy, MatchesReferenceWithAndWithoutInitialSet) {
  torch::manual_seed(0);
  const auto x = torch::randn({300, 37}, options());
  EXPECT_EQ(to_vector(std::get<0>(torch_al::ops::kcenter_greedy(x, 20))), reference_picks(x, 20, {}));
  for (const std::vector<int64_t>& initial : {std::vector<int64_t>{5, 90}, reference_picks(x, 40, {})}) {
    const auto init = torch::tensor(initial, options().dtype(torch::kLong));
    EXPECT_EQ(to_vector(std::get<0>(torch_al::ops::kcenter_greedy(x, 15, init))), reference_picks(x, 15, initial));
  }
}

TEST_P(KCenterGreedy, MinDistIsTheDistanceToTheNearestCenter) {
  const auto x = torch::randn({100, 8}, options().dtype(torch::kDouble));
  const auto [indices, min_dist] = torch_al::ops::kcenter_greedy(x, 7);
  // From differences: torch::cdist's matrix-product path is off by ~1e-8 even at distance 0.
  const auto centers = x.index_select(0, indices);
  const auto expected = (x.unsqueeze(1) - centers.unsqueeze(0)).square().sum(-1).sqrt().amin(1);
  EXPECT_TRUE(torch::allclose(min_dist, expected, 1e-12, 1e-12));
}

TEST_P(KCenterGreedy, ExcludedPointsAreNeverPicked) {
  const auto x = torch::randn({50, 4}, options());
  auto exclude = torch::zeros({50}, options().dtype(torch::kBool));
  exclude.slice(0, 1, 40).fill_(true);
  const auto indices = std::get<0>(torch_al::ops::kcenter_greedy(x, 11, std::nullopt, std::nullopt, "cosine", exclude));
  EXPECT_FALSE(exclude.index_select(0, indices).any().item<bool>());
}

TEST_P(KCenterGreedy, TooLargeKNamesBothNumbers) {
  const auto x = torch::randn({6, 3}, options());
  try {
    torch_al::ops::kcenter_greedy(x, 9, torch::tensor({0, 1}, options().dtype(torch::kLong)));
    FAIL() << "expected an error";
  } catch (const c10::Error& error) {
    EXPECT_NE(
        std::string(error.what_without_backtrace()).find("k=9 is larger than the number of selectable points, 4"),
        std::string::npos);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Devices,
    KCenterGreedy,
#ifdef WITH_CUDA
    testing::Values(c10::kCPU, c10::kCUDA)
#else
    testing::Values(c10::kCPU)
#endif
);

}  // namespace
