// CUDA twin of the rasterizer core: framework-free parameters and launchers.
//
// Used by the TensorFlow binding (rasterize_op.cc, GPU kernels, built where
// TensorFlow is a CUDA build) and by the standalone harness
// (rasterize_harness.cc). All pointers are device memory unless said
// otherwise; every launcher runs asynchronously on `stream` (a cudaStream_t,
// passed as void* so that callers need no CUDA headers) and returns nullptr or
// the CUDA error's text. The per-pixel arithmetic is rasterize_pixel.h's, as
// in the CPU core, so ids, mask, barycentrics and depth agree with it bit for
// bit; gradients are summed with atomic adds, in an order of their own, so
// they agree to rounding.
#ifndef FACE3D_RENDERER_KERNELS_RASTERIZE_CUDA_H_
#define FACE3D_RENDERER_KERNELS_RASTERIZE_CUDA_H_

#include <cstdint>

#include "rasterize_pixel.h"

namespace face3d {

struct RasterizeParams {
  const float* clip;        // [batch, vertex_count, 4]
  const int32_t* triangles;  // [triangle_count, 3], indices already validated
  int64_t batch, vertex_count, triangle_count;
  int width, height;
  bool cull_backfaces;
  ProjectedVertex* projected;        // output [batch, vertex_count]
  unsigned long long* depth_keys;    // scratch [batch, height, width]
  int32_t* triangle_ids;             // output [batch, height, width]
  float* mask;                       // output [batch, height, width]
  float* barycentrics;               // output [batch, height, width, 3]
  float* depth;                      // output [batch, height, width]
};

struct GradientParams {
  const float* clip;                 // [batch, vertex_count, 4]
  const int32_t* triangles;          // [triangle_count, 3]
  const ProjectedVertex* projected;  // the forward pass's [batch, vertex_count]
  const int32_t* triangle_ids;       // [batch, height, width], validated
  const float* mask;                 // [batch, height, width]
  const float* d_barycentrics;       // [batch, height, width, 3] or null (zeros)
  const float* d_depth;              // [batch, height, width] or null (zeros)
  int64_t batch, vertex_count;
  int width, height;
  float* d_projected;  // scratch [batch, vertex_count, 4]
  float* d_clip_slow;  // scratch [batch, vertex_count, 4]
  float* d_clip;       // output [batch, vertex_count, 4]
};

// Projects, rasterizes (one thread per triangle and image, depth test by a
// 64-bit atomic minimum of (depth, -id)) and resolves each pixel's winner.
const char* RasterizeCuda(const RasterizeParams& params, void* stream);

// Gradient of the barycentrics and depth with respect to the clip vertices,
// triangle ids held fixed: one thread per pixel, then one per vertex.
const char* RasterizeGradientCuda(const GradientParams& params, void* stream);

// Index of the first of `count` int32 values at `values` outside [0, limit),
// or -1; `scratch` is one device unsigned long long. Waits for the stream.
const char* FindFirstOutOfRangeCuda(const int32_t* values, int64_t count,
                                    int64_t limit, unsigned long long* scratch,
                                    void* stream, int64_t* first);

}  // namespace face3d

#endif  // FACE3D_RENDERER_KERNELS_RASTERIZE_CUDA_H_
