#include <gtest/gtest.h>

#include <torch_al.h>

TEST(Library, CudaVersionMatchesBuild) {
#ifdef WITH_CUDA
  EXPECT_GT(torch_al::cuda_version(), 0);
#else
  EXPECT_EQ(torch_al::cuda_version(), -1);
#endif
}
