#include <gtest/gtest.h>
#include <torch/torch.h>

#include <torch_al.h>

#include <vector>

#include "common_utils.h"

namespace {

using torch_al::testing_utils::built_devices;
using torch_al::testing_utils::DeviceTest;
using torch_al::testing_utils::expect_error_containing;

// Reference: the plain greedy in float64 over the materialised similarity, ties to the lower index.
std::vector<int64_t> reference_picks(const at::Tensor& candidates, const at::Tensor& universe, int64_t count) {
  const auto similarity =
      candidates.to(torch::kDouble).cpu().matmul(universe.to(torch::kDouble).cpu().t()).clamp_min(0);
  auto cover = torch::zeros({universe.size(0)}, torch::kDouble);
  auto taken = torch::zeros({candidates.size(0)}, torch::kBool);
  std::vector<int64_t> picks;
  for (int64_t t = 0; t < count; ++t) {
    auto gains = (similarity - cover).clamp_min(0).sum(1);
    gains.masked_fill_(taken, -1.0);
    const int64_t pick = gains.argmax().item<int64_t>();
    picks.push_back(pick);
    taken[pick] = true;
    cover = torch::maximum(cover, similarity[pick]);
  }
  return picks;
}

std::vector<int64_t> to_vector(const at::Tensor& indices) {
  const auto cpu = indices.cpu();
  return {cpu.data_ptr<int64_t>(), cpu.data_ptr<int64_t>() + cpu.numel()};
}

class FacilityLocationGreedy : public DeviceTest {};

TEST_P(FacilityLocationGreedy, MatchesThePlainGreedy) {
  torch::manual_seed(0);
  const auto universe = torch::nn::functional::normalize(
      torch::randn({600, 12}, options().dtype(torch::kDouble)), torch::nn::functional::NormalizeFuncOptions().dim(1));
  const auto candidates = universe.slice(0, 0, 90);
  const auto [picks, gains] = torch_al::ops::facility_location_greedy(candidates, universe, 30);
  EXPECT_EQ(to_vector(picks), reference_picks(candidates, universe, 30));
  EXPECT_TRUE((gains.slice(0, 1) <= gains.slice(0, 0, -1)).all().item<bool>());
}

TEST_P(FacilityLocationGreedy, BadCountNamesTheRange) {
  const auto x = torch::randn({6, 3}, options());
  expect_error_containing(
      [&] { torch_al::ops::facility_location_greedy(x, x, 7); }, "count must lie in [0, K] with K=6 candidates, got 7");
  expect_error_containing(
      [&] { torch_al::ops::facility_location_greedy(x, torch::randn({4, 2}, options()), 1); },
      "universe must have D=3 columns like candidates");
}

INSTANTIATE_TEST_SUITE_P(Devices, FacilityLocationGreedy, built_devices());

}  // namespace
