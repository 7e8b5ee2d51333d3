#pragma once

// What the CPU running the kernels supports, for the kernels compiled twice: once for AVX2 (and
// FMA) and once for any x86-64. Both versions round every step alike, so they agree bit for bit.

namespace torch_al::ops {

#if defined(__x86_64__)
inline bool cpu_has_avx2_fma() {
  static const bool supported = [] {
    __builtin_cpu_init();  // the CPU model may not be read yet when static initialisers run
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return supported;
}
#endif

}  // namespace torch_al::ops
