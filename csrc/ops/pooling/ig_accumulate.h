#pragma once

#include <ATen/core/Tensor.h>

#include "macros.h"

namespace torch_al::ops {

// Integrated-gradient accumulation (EBA, Gudovskiy et al., ICLR-W 2019):
//   acc[b, c] += (1 / steps) * sum_s mean_spatial(grad[s, b, c, *spatial])
// grad holds the layer gradients of a batch at S path steps (one chunk of the K = steps steps);
// acc (B, C) is float32 for float16/bfloat16/float32 grads and float64 for float64 grads.
TORCH_AL_API void ig_accumulate(const at::Tensor& grad, int64_t steps, at::Tensor& acc);

// Validation shared by every backend (the Python fake mirrors the shape/dtype/device part), so
// eager, compiled and C++ callers see the same errors before anything is written.
void check_ig_accumulate_inputs(const at::Tensor& grad, int64_t steps, const at::Tensor& acc);

}  // namespace torch_al::ops
