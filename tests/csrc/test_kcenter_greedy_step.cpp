#include <gtest/gtest.h>
#include <torch/torch.h>

#include <torch_al.h>

#include <limits>

#include "common_utils.h"

namespace {

using torch_al::testing_utils::DeviceTest;

class KCenterGreedyStep : public DeviceTest {};

// A loop of steps whose centers are passed as rows gives kcenter_greedy's picks and distances.
TEST_P(KCenterGreedyStep, LoopOfStepsIsKCenterGreedy) {
  torch::manual_seed(0);
  const auto x = (torch::randn({500, 19}) + 2).to(options());
  for (const int64_t initial_count : {3, 30}) {
    const auto initial =
        std::get<0>(torch::randperm(500, options().dtype(torch::kLong)).slice(0, 0, initial_count).sort());
    const auto [expected_picks, expected_min_dist] = torch_al::ops::kcenter_greedy(x, 20, initial);
    auto min_sq = torch::full({500}, std::numeric_limits<float>::infinity(), options());
    auto selectable = torch::ones({500}, options().dtype(torch::kBool));
    selectable.index_fill_(0, initial, false);
    auto [value, index] = torch_al::ops::kcenter_greedy_step(x, x.index_select(0, initial), min_sq, selectable);
    for (int64_t t = 0; t < 20; ++t) {
      const int64_t pick = index.item<int64_t>();
      EXPECT_EQ(pick, expected_picks[t].item<int64_t>()) << "pick " << t;
      selectable.index_fill_(0, index.reshape({1}), false);
      std::tie(value, index) = torch_al::ops::kcenter_greedy_step(x, x.slice(0, pick, pick + 1), min_sq, selectable);
    }
    EXPECT_TRUE(torch::equal(min_sq.sqrt(), expected_min_dist));
  }
}

TEST_P(KCenterGreedyStep, RejectsBadInput) {
  const auto x = torch::randn({5, 3}, options());
  auto min_sq = torch::full({5}, 1.0, options());
  const auto selectable = torch::ones({5}, options().dtype(torch::kBool));
  torch_al::testing_utils::expect_error_containing(
      [&] { torch_al::ops::kcenter_greedy_step(x, x.slice(1, 0, 2), min_sq, selectable); }, "D = 3");
  auto wrong = min_sq.to(torch::kDouble);
  torch_al::testing_utils::expect_error_containing(
      [&] { torch_al::ops::kcenter_greedy_step(x, x, wrong, selectable); }, "min_sq must be a contiguous Float tensor");
}

INSTANTIATE_TEST_SUITE_P(Devices, KCenterGreedyStep, torch_al::testing_utils::built_devices());

}  // namespace
