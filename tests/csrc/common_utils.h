#pragma once

// Helpers shared by the C++ tests, the counterpart of tests/common_utils.py.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

namespace torch_al::testing_utils {

// Fixture of the suites that run on every device the library was built for.
class DeviceTest : public testing::TestWithParam<c10::DeviceType> {
 protected:
  torch::TensorOptions options() const { return torch::TensorOptions().device(GetParam()); }
};

// The values for INSTANTIATE_TEST_SUITE_P over DeviceTest suites: CPU, and CUDA in CUDA builds.
inline auto built_devices() {
  const std::vector<c10::DeviceType> devices{
      c10::kCPU,
#ifdef WITH_CUDA
      c10::kCUDA,
#endif
  };
  return testing::ValuesIn(devices);
}

// Runs `call` and expects it to throw a c10::Error whose message contains `needle`.
template <typename Call>
void expect_error_containing(Call call, const std::string& needle) {
  try {
    call();
    ADD_FAILURE() << "expected an error containing \"" << needle << "\"";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what_without_backtrace()).find(needle), std::string::npos)
        << error.what_without_backtrace();
  }
}

}  // namespace torch_al::testing_utils
