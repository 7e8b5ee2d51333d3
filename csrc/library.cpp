#include "library.h"

#include <torch/library.h>

#ifdef WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace torch_al {

int64_t cuda_version() {
#ifdef WITH_CUDA
  return CUDART_VERSION;
#else
  return -1;
#endif
}

TORCH_LIBRARY(torch_al, m) {
  m.def("cuda_version() -> int", &cuda_version);
}

}  // namespace torch_al
