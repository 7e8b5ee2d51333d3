#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

#include "macros.h"

namespace torch_al::ops {

// Class k's line (GALAXY, DIRECT): the pool ordered from most to least k-like by the one-vs-rest
// key of each row of probabilities[N, C] (float32 or float64, read as float64): 1 + p_k where p_k is
// the row's largest probability, p_k − max_j p_j elsewhere; equal keys in increasing row order.
// Returns (order, position), int64 [N] each: order[i] is the row at place i, position[row] its
// place (position[order[i]] == i). The same order as a stable descending torch.sort of the keys;
// on the CPU a radix sort of the keys' bits, on CUDA ATen's sort. Errors: probabilities not (N, C)
// with C >= 1, not float32/float64, k outside [0, C), a non-finite probability (checked with one
// host synchronisation).
TORCH_AL_API std::tuple<at::Tensor, at::Tensor> class_line_order(const at::Tensor& probabilities, int64_t k);

// Shape, dtype and k checks shared by every backend (the Python fake mirrors them).
void check_class_line_order_inputs(const at::Tensor& probabilities, int64_t k);

}  // namespace torch_al::ops
