#pragma once

#include <cstdint>

#include "macros.h"

namespace torch_al {

// CUDA runtime version the library was compiled against (e.g. 13000), or -1 for a CPU-only build.
TORCH_AL_API int64_t cuda_version();

}  // namespace torch_al
