#pragma once

// Umbrella header for C++ users: `#include <torch_al.h>` (CMake: link TorchAL::torch_al).
#include "library.h"
#include "ops/class_lines/class_line_order.h"
#include "ops/coverage/coverage_greedy.h"
#include "ops/facility_location/facility_location_greedy.h"
#include "ops/kcenter/kcenter_greedy.h"
#include "ops/kcenter/kcenter_greedy_step.h"
#include "ops/kmeanspp/kmeanspp_factored.h"
#include "ops/knn/nearest_neighbours.h"
#include "ops/pfk/pfk_column_topk.h"
#include "ops/pfk/pfk_topk.h"
#include "ops/pfk/select_unique_ranked.h"
#include "ops/pooling/ig_accumulate.h"
#include "ops/pooling/pool_features.h"
