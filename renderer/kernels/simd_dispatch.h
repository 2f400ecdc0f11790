// Run-time choice of the AVX2 code of the vertex and pixel loops outside the
// rasterizer (shading_core.cc, normals_core.cc, interpolate_core.cc), and of
// the rasterizer's own AVX2 paths (rasterize_core.cc's UseAvx2).
//
// Those loops are written once, as plain C++ that GCC vectorises, in an
// always-inline body; the body is compiled twice, for the build's baseline
// (SSE2 on x86-64) and, through the target("avx2") function attribute (not a
// -m flag, so the library still loads on any x86-64), for AVX2. FMA is not
// enabled for the AVX2 copy and the loops hold no reduction the compiler may
// reorder (no -ffast-math), so both copies do the same float operations in
// the same order, lane by lane, and give the same bits.
// FACE3D_RASTERIZER_NO_AVX2 set to anything but "" or "0" selects the baseline
// code everywhere.
#ifndef FACE3D_RENDERER_KERNELS_SIMD_DISPATCH_H_
#define FACE3D_RENDERER_KERNELS_SIMD_DISPATCH_H_

#include <cstdlib>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FACE3D_SIMD_AVX2 1
#define FACE3D_SIMD_AVX2_TARGET __attribute__((target("avx2")))
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FACE3D_SIMD_INLINE inline __attribute__((always_inline))
#else
#define FACE3D_SIMD_INLINE inline
#endif

namespace face3d {

// Whether to run the AVX2 copies: the CPU has AVX2 and the environment does
// not turn them off.
inline bool UseAvx2Loops() {
#if defined(FACE3D_SIMD_AVX2)
  static const bool use = [] {
    __builtin_cpu_init();
    const char* off = std::getenv("FACE3D_RASTERIZER_NO_AVX2");
    const bool disabled = off != nullptr && off[0] != '\0' && !(off[0] == '0' && off[1] == '\0');
    return !disabled && __builtin_cpu_supports("avx2");
  }();
  return use;
#else
  return false;
#endif
}

}  // namespace face3d

#endif  // FACE3D_RENDERER_KERNELS_SIMD_DISPATCH_H_
