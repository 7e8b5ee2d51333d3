#include <torch/library.h>

#include "ops/pfk/pfk_entry.h"

namespace torch_al::ops {

TORCH_LIBRARY_IMPL(torch_al, CPU, m) {
  m.impl("pfk_column_topk", &pfk_kernel<PfkReduction::kPerPoolColumn, pfk_stream_cpu>);
}

}  // namespace torch_al::ops
