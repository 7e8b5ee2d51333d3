#pragma once

// The CPU streaming engine where oneDNN's small-matrix GEMM kernel (ATen's cpublas::brgemm) outruns
// BLAS: float32 on a CPU whose torch capability is AVX-512. On one AMD Zen 5 core it multiplied
// small blocks at 1.7-2x the speed of MKL's sgemm on the whole product; limited to AVX2 it ran at
// 0.6-0.75x MKL, so AVX2 machines keep the BLAS tiles of pfk_blas_engine.cpp.
//
// Each thread takes its own range of pool rows and computes the kernel matrix in blocks of
// kPoolBlock pool rows by kQueryBlock query rows, reading the pool scales in place (no per-tile
// copy), and reduces each block into its own top-k lists while the block is still in L1. The
// threads' lists merge at the end. Extra memory: the transposed query side and the lists, per
// thread, whatever N is.

#include <ATen/core/Tensor.h>

#include "ops/pfk/pfk_plan.h"

namespace torch_al::ops {

// Whether pfk_stream_brgemm serves this plan here: float32 exact products, every pool scale
// readable in place (unit column stride), and a CPU on which the blocks beat BLAS.
bool pfk_brgemm_applies(const PfkPlan& plan, at::ScalarType dtype);

// pfk_stream_cpu's contract (pfk_entry.h) on the blocks.
void pfk_stream_brgemm(
    const PfkPlan& plan, const at::Tensor& mask, PfkReduction reduction, at::Tensor& values, at::Tensor& indices);

}  // namespace torch_al::ops
