#include <gtest/gtest.h>
#include <torch/torch.h>

#include <torch_al.h>

#include <limits>

#include "common_utils.h"

namespace {

using torch_al::testing_utils::DeviceTest;

class ClassLineOrder : public DeviceTest {};

// The line is a stable descending sort of the one-vs-rest keys, computed here in ATen.
TEST_P(ClassLineOrder, IsAStableDescendingSortOfTheKeys) {
  torch::manual_seed(0);
  const auto logits = (torch::randn({2000, 5}, torch::kDouble) * 2).round();  // many ties
  const auto probabilities = logits.softmax(1);
  const auto top = std::get<0>(probabilities.max(1, /*keepdim=*/true));
  const auto keys = torch::where(probabilities == top, 1 + probabilities, probabilities - top);
  for (int64_t k = 0; k < 5; ++k) {
    const auto [order, position] =
        torch_al::ops::class_line_order(probabilities.to(options().dtype(torch::kDouble)), k);
    const auto expected = std::get<1>(keys.select(1, k).sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
    EXPECT_TRUE(torch::equal(order.cpu(), expected)) << "class " << k;
    EXPECT_TRUE(torch::equal(position.cpu().index_select(0, expected), torch::arange(2000))) << "class " << k;
  }
}

TEST_P(ClassLineOrder, RejectsBadInput) {
  const auto probabilities = torch::rand({5, 3}, options());
  torch_al::testing_utils::expect_error_containing(
      [&] { torch_al::ops::class_line_order(probabilities, 3); }, "k must be a class in [0, 3), got 3");
  torch_al::testing_utils::expect_error_containing(
      [&] { torch_al::ops::class_line_order(probabilities.select(1, 0), 0); }, "must be (N, C)");
  auto infinite = probabilities.clone();
  infinite.index_put_({2, 1}, std::numeric_limits<float>::infinity());
  torch_al::testing_utils::expect_error_containing(
      [&] { torch_al::ops::class_line_order(infinite, 0); }, "probabilities must be finite");
}

INSTANTIATE_TEST_SUITE_P(Devices, ClassLineOrder, torch_al::testing_utils::built_devices());

}  // namespace
