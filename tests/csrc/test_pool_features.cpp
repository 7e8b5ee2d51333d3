#include <gtest/gtest.h>
#include <torch/torch.h>

#include <torch_al.h>

#include <vector>

#include "common_utils.h"

namespace {

using torch_al::testing_utils::built_devices;
using torch_al::testing_utils::DeviceTest;
using torch_al::testing_utils::expect_error_containing;

// Reference: ATen's mean over the trailing dims.
at::Tensor reference_pool(const at::Tensor& x) {
  std::vector<int64_t> spatial;
  for (int64_t d = 2; d < x.dim(); ++d) {
    spatial.push_back(d);
  }
  return spatial.empty() ? x.clone() : x.mean(spatial);
}

class PoolFeatures : public DeviceTest {};

TEST_P(PoolFeatures, MatchesMeanForEveryRankAndLayout) {
  torch::manual_seed(0);
  for (const auto& shape : std::vector<std::vector<int64_t>>{{3, 4}, {3, 4, 7}, {2, 5, 6, 7}, {2, 3, 4, 5, 6}}) {
    const auto x = torch::randn(shape, options());
    EXPECT_TRUE(torch::allclose(torch_al::ops::pool_features(x), reference_pool(x), 1e-5, 1e-6));
  }
  const auto nhwc = torch::randn({2, 5, 6, 7}, options()).contiguous(at::MemoryFormat::ChannelsLast);
  EXPECT_TRUE(torch::allclose(torch_al::ops::pool_features(nhwc), reference_pool(nhwc), 1e-5, 1e-6));
}

TEST_P(PoolFeatures, BackwardSpreadsGradientEvenly) {
  const auto x = torch::randn({2, 3, 4, 5}, options().dtype(torch::kDouble)).requires_grad_();
  torch_al::ops::pool_features(x).sum().backward();
  EXPECT_TRUE(torch::allclose(x.grad(), torch::full_like(x, 1.0 / 20)));
}

TEST_P(PoolFeatures, IntoWritesRowsAndColumns) {
  const auto x = torch::randn({3, 2, 4, 4}, options());
  auto store = torch::zeros({5, 6}, options());
  const auto rows = torch::tensor({4, 0, 2}, options().dtype(torch::kLong));
  torch_al::ops::pool_features_into(x, store, rows, 3);
  auto expected = torch::zeros({5, 6}, options());
  expected.index_put_({rows, torch::indexing::Slice(3, 5)}, reference_pool(x));
  EXPECT_TRUE(torch::allclose(store, expected, 1e-5, 1e-6));
}

TEST_P(PoolFeatures, IntoRejectsOutOfRangeRowsAndWritesNothing) {
  const auto x = torch::randn({2, 2, 3}, options());
  auto store = torch::zeros({4, 2}, options());
  const auto rows = torch::tensor({1, 4}, options().dtype(torch::kLong));
  expect_error_containing([&] { torch_al::ops::pool_features_into(x, store, rows, 0); }, "rows must lie in [0, 4)");
  EXPECT_EQ(store.abs().sum().item<float>(), 0.0f);
}

INSTANTIATE_TEST_SUITE_P(Devices, PoolFeatures, built_devices());

}  // namespace
