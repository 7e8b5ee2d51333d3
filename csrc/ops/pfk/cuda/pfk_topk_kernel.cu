#include <torch/library.h>

#include "ops/pfk/pfk_entry.h"

namespace torch_al::ops {

TORCH_LIBRARY_IMPL(torch_al, CUDA, m) {
  m.impl("pfk_topk", &pfk_kernel<PfkReduction::kPerQueryRow, pfk_stream_cuda>);
}

}  // namespace torch_al::ops
