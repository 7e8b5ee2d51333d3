#pragma once

// Symbols of the C++ API are exported from libtorch_al; everything else stays hidden.
#if defined(_WIN32)
#if defined(TORCH_AL_BUILD_LIBRARY)
#define TORCH_AL_API __declspec(dllexport)
#else
#define TORCH_AL_API __declspec(dllimport)
#endif
#else
#define TORCH_AL_API __attribute__((visibility("default")))
#endif
