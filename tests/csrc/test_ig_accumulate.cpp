#include <gtest/gtest.h>
#include <torch/torch.h>

#include <torch_al.h>

#include <vector>

#include "common_utils.h"

namespace {

using torch_al::testing_utils::built_devices;
using torch_al::testing_utils::DeviceTest;
using torch_al::testing_utils::expect_error_containing;

// Reference: acc + (1/steps) * sum over steps of the spatial mean, with ATen ops in float64.
at::Tensor reference_ig(const at::Tensor& grad, int64_t steps, const at::Tensor& acc) {
  std::vector<int64_t> spatial;
  for (int64_t d = 3; d < grad.dim(); ++d) {
    spatial.push_back(d);
  }
  const auto grad64 = grad.to(torch::kDouble);
  const auto pooled = spatial.empty() ? grad64 : grad64.mean(spatial);
  return acc.to(torch::kDouble) + pooled.sum(0) / static_cast<double>(steps);
}

class IgAccumulate : public DeviceTest {};

TEST_P(IgAccumulate, MatchesReferenceForEveryRankAndLayout) {
  torch::manual_seed(0);
  for (const auto& shape :
       std::vector<std::vector<int64_t>>{{4, 3, 5}, {4, 3, 5, 7}, {3, 2, 5, 6, 7}, {2, 2, 3, 4, 5, 6}}) {
    const auto grad = torch::randn(shape, options());
    auto acc = torch::randn({shape[1], shape[2]}, options());
    const auto expected = reference_ig(grad, 9, acc);
    torch_al::ops::ig_accumulate(grad, 9, acc);
    EXPECT_TRUE(torch::allclose(acc.to(torch::kDouble), expected, 1e-5, 1e-6));
  }
  // channels innermost, as the gradient of a channels_last map is
  const auto channels_last = torch::randn({3, 2, 6, 7, 5}, options()).movedim(-1, 2);
  auto acc = torch::zeros({2, 5}, options());
  torch_al::ops::ig_accumulate(channels_last, 3, acc);
  EXPECT_TRUE(
      torch::allclose(acc.to(torch::kDouble), reference_ig(channels_last, 3, torch::zeros({2, 5})), 1e-5, 1e-6));
}

TEST_P(IgAccumulate, ChunksAddUpToTheWholePath) {
  const auto grad = torch::randn({8, 2, 3, 4, 4}, options().dtype(torch::kDouble));
  auto whole = torch::zeros({2, 3}, options().dtype(torch::kDouble));
  auto chunked = torch::zeros({2, 3}, options().dtype(torch::kDouble));
  torch_al::ops::ig_accumulate(grad, 8, whole);
  for (const auto& chunk : grad.split(3)) {
    torch_al::ops::ig_accumulate(chunk, 8, chunked);
  }
  EXPECT_TRUE(torch::allclose(chunked, whole));
  EXPECT_TRUE(torch::allclose(whole, grad.mean({0, 3, 4})));
}

TEST_P(IgAccumulate, HalfGradientsAccumulateInFloat) {
  const auto grad = torch::full({64, 1, 1, 32, 32}, 1.0 + 1.0 / 128, options().dtype(torch::kHalf));
  auto acc = torch::zeros({1, 1}, options());
  torch_al::ops::ig_accumulate(grad, 64, acc);
  EXPECT_NEAR(acc.item<float>(), 1.0 + 1.0 / 128, 1e-5);
}

TEST_P(IgAccumulate, RejectsNonPositiveStepsAndWritesNothing) {
  const auto grad = torch::randn({2, 3, 4}, options());
  auto acc = torch::zeros({3, 4}, options());
  expect_error_containing([&] { torch_al::ops::ig_accumulate(grad, 0, acc); }, "steps must be a positive number");
  EXPECT_EQ(acc.abs().sum().item<float>(), 0.0f);
}

TEST_P(IgAccumulate, RejectsAnAccumulatorOfTheWrongShape) {
  const auto grad = torch::randn({2, 3, 4, 5}, options());
  auto acc = torch::zeros({4, 3}, options());
  expect_error_containing([&] { torch_al::ops::ig_accumulate(grad, 2, acc); }, "acc must be (B, C) = (3, 4)");
}

INSTANTIATE_TEST_SUITE_P(Devices, IgAccumulate, built_devices());

}  // namespace
