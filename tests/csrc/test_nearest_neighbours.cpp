#include <gtest/gtest.h>
#include <torch/torch.h>

#include <torch_al.h>

#include <limits>

#include "common_utils.h"

namespace {

using torch_al::testing_utils::DeviceTest;

class NearestNeighbours : public DeviceTest {};

// Against torch::cdist and a stable sort of each row, with the own row of every query excluded.
TEST_P(NearestNeighbours, EqualsADenseSortWithoutTheOwnRow) {
  torch::manual_seed(0);
  const auto points = torch::randn({300, 12}, torch::kDouble);
  const auto own = torch::arange(300);
  const auto [distances, indices] = torch_al::ops::nearest_neighbours(
      points.to(options().dtype(torch::kDouble)), points.to(options().dtype(torch::kDouble)), 5, std::nullopt,
      own.to(options().dtype(torch::kLong)));
  auto dense = torch::cdist(points, points).square();
  dense.fill_diagonal_(std::numeric_limits<double>::infinity());
  const auto [want_distances, want_indices] = dense.sort(/*stable=*/true, /*dim=*/1, /*descending=*/false);
  EXPECT_TRUE(torch::equal(indices.cpu(), want_indices.narrow(1, 0, 5)));
  EXPECT_TRUE(torch::allclose(distances.cpu(), want_distances.narrow(1, 0, 5), 1e-12, 1e-12));
}

TEST_P(NearestNeighbours, RejectsBadInput) {
  const auto query = torch::rand({4, 3}, options());
  const auto pool = torch::rand({5, 3}, options());
  torch_al::testing_utils::expect_error_containing(
      [&] { torch_al::ops::nearest_neighbours(query, pool.narrow(1, 0, 2), 1); },
      "pool has 2 dimensions but query has 3");
  torch_al::testing_utils::expect_error_containing(
      [&] { torch_al::ops::nearest_neighbours(query, pool, 1, std::nullopt, std::nullopt, "l1"); }, "metric must be");
  auto infinite = pool.clone();
  infinite.index_put_({2, 1}, std::numeric_limits<float>::infinity());
  torch_al::testing_utils::expect_error_containing(
      [&] { torch_al::ops::nearest_neighbours(query, infinite, 1); }, "pool contains NaN or inf");
  const auto beyond = torch::full({4}, 5, options().dtype(torch::kLong));
  torch_al::testing_utils::expect_error_containing(
      [&] { torch_al::ops::nearest_neighbours(query, pool, 1, std::nullopt, beyond); },
      "query_index must hold pool rows");
}

INSTANTIATE_TEST_SUITE_P(Devices, NearestNeighbours, torch_al::testing_utils::built_devices());

}  // namespace
