#pragma once

// Umbrella header for C++ users: `#include <torch_al/torch_al.h>`.
#include "kcenter_greedy.h"
#include "library.h"
#include "pool_features.h"

namespace torch_al {

// Referencing a symbol of the library keeps `-Wl,--as-needed` from dropping it, and with it the op
// registrations that run when it loads.
TORCH_AL_INLINE_VARIABLE auto _register_ops = &cuda_version;

}  // namespace torch_al
