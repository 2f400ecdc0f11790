// CUDA twin of the SH shading core (shading_core.h): framework-free
// parameters and launchers, used by the GPU kernels of shading_op.cc (with
// GOOGLE_CUDA) and by the standalone harness (fused_harness.cc).
//
// All pointers are device memory (band_scales too); every launcher runs
// asynchronously on `stream` (a cudaStream_t passed as void*) and returns
// nullptr or the CUDA error's text.
//
// One thread per vertex runs the core's ShadeVertex / ShadeVertexGradient, so
// colours, d_normals and d_albedo equal the CPU's bit for bit. The light's
// gradient d_coefficients sums basis[k] d_irradiance[c] over a mesh's
// vertices: one block per mesh gathers it in double, each thread over a fixed
// stride of vertices, then a tree over the block, a fixed order, so it is
// deterministic (no atomics) and differs from the CPU's sequential double sum
// only by double rounding, before the cast to float.
#ifndef FACE3D_RENDERER_KERNELS_SHADING_CUDA_H_
#define FACE3D_RENDERER_KERNELS_SHADING_CUDA_H_

#include <cstdint>

namespace face3d {

struct ShadingCudaParams {
  const float* normals;       // [batch, vertex_count, 3]
  const float* albedo;        // [batch, vertex_count, 3]
  const float* coefficients;  // [batch, 9, 3]
  const float* band_scales;   // [9]
  int64_t batch;
  int64_t vertex_count;
};

// colours [batch, vertex_count, 3].
const char* ShadeVerticesCuda(const ShadingCudaParams& params, float* colours,
                              void* stream);

// d_normals, d_albedo [batch, vertex_count, 3] and d_coefficients
// [batch, 9, 3] (all overwritten) given d_colours.
const char* ShadeVerticesGradientCuda(const ShadingCudaParams& params,
                                      const float* d_colours, float* d_normals,
                                      float* d_albedo, float* d_coefficients,
                                      void* stream);

}  // namespace face3d

#endif  // FACE3D_RENDERER_KERNELS_SHADING_CUDA_H_
