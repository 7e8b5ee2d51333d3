#include <torch/library.h>

#include "ops/knn/nearest_neighbours_entry.h"

namespace torch_al::ops {

TORCH_LIBRARY_IMPL(torch_al, CPU, m) {
  m.impl("nearest_neighbours", &nearest_neighbours_kernel<pfk_stream_cpu>);
}

}  // namespace torch_al::ops
