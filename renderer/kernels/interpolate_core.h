// Attribute interpolation from rasterized triangle ids and barycentrics: the
// plain C++ core of the InterpolateAttributes op and its gradient.
//
// No TensorFlow in here. The per-pixel arithmetic is in inline functions
// marked FACE3D_HOST_DEVICE, so that the CUDA twin (interpolate_cuda.cu) runs
// the same formulas, one thread per pixel (its attribute gradient then adds
// with atomics; the CPU loops below own one image each and add plainly).
//
// Layouts (row-major, one image; the op loops over the batch):
//  * attributes [vertex_count, channels] floats;
//  * triangles [triangle_count, 3] vertex indices (validated by the caller);
//  * triangle_ids [pixel_count] indices into triangles (validated by the
//    caller), barycentrics [pixel_count, 3] (0 0 0 where nothing is drawn,
//    as the rasterizer leaves the background);
//  * output [pixel_count, channels]: out = b0 A[v0] + b1 A[v1] + b2 A[v2]
//    with (v0, v1, v2) = triangles[triangle_id].
#ifndef FACE3D_RENDERER_KERNELS_INTERPOLATE_CORE_H_
#define FACE3D_RENDERER_KERNELS_INTERPOLATE_CORE_H_

#include <cstdint>

#ifndef FACE3D_HOST_DEVICE
#if defined(__CUDACC__)
#define FACE3D_HOST_DEVICE __host__ __device__
#else
#define FACE3D_HOST_DEVICE
#endif
#endif

namespace face3d {

struct InterpolateParams {
  const float* attributes;      // [vertex_count, channels]
  const int32_t* triangles;     // [triangle_count, 3]
  const int32_t* triangle_ids;  // [pixel_count]
  const float* barycentrics;    // [pixel_count, 3]
  int64_t vertex_count;
  int64_t pixel_count;
  int channels;
};

// out[c] = b0 a0[c] + b1 a1[c] + b2 a2[c] for c < channels.
FACE3D_HOST_DEVICE inline void InterpolatePixel(const float* a0,
                                                const float* a1,
                                                const float* a2,
                                                const float* b, int channels,
                                                float* out) {
  for (int c = 0; c < channels; ++c) {
    out[c] = b[0] * a0[c] + b[1] * a1[c] + b[2] * a2[c];
  }
}

// The gradient of one pixel: d_b[k] = sum_c d_out[c] a_k[c].
FACE3D_HOST_DEVICE inline void InterpolatePixelBarycentricGrad(
    const float* a0, const float* a1, const float* a2, const float* d_out,
    int channels, float* d_b) {
  float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f;
  for (int c = 0; c < channels; ++c) {
    s0 += d_out[c] * a0[c];
    s1 += d_out[c] * a1[c];
    s2 += d_out[c] * a2[c];
  }
  d_b[0] = s0;
  d_b[1] = s1;
  d_b[2] = s2;
}

// Whether a pixel's barycentrics are 0 0 0 (background): its attribute
// gradient adds nothing, so both cores skip it.
FACE3D_HOST_DEVICE inline bool IsBackgroundPixel(const float* b) {
  return b[0] == 0.0f && b[1] == 0.0f && b[2] == 0.0f;
}

// Interpolates pixels [pixel_begin, pixel_end) of one image into
// output [pixel_count, channels] (whole-image pointer).
void InterpolatePixels(const InterpolateParams& params, int64_t pixel_begin,
                       int64_t pixel_end, float* output);

// The gradient of one image, given d_output [pixel_count, channels]:
// writes d_barycentrics [pixel_count, 3] (every pixel, background too: it is
// the derivative whatever the rasterizer does with it) and d_attributes
// [vertex_count, channels] (overwritten: the sum over pixels of b_k d_out
// into each pixel's vertex k; pixels with b = 0 0 0 add nothing and are
// skipped). `scratch` holds InterpolateGradientScratchFloats(params) floats
// (none but for three channels: four-float rows of d_attributes).
void InterpolateGradient(const InterpolateParams& params,
                         const float* d_output, float* d_barycentrics,
                         float* d_attributes, float* scratch);

inline int64_t InterpolateGradientScratchFloats(const InterpolateParams& params) {
  return params.channels == 3 ? 4 * params.vertex_count : 0;
}

// Returns the first pixel whose triangle id is outside [0, triangle_count),
// or -1 when all are valid.
int64_t FindInvalidTriangleId(const int32_t* triangle_ids, int64_t count,
                              int64_t triangle_count);

}  // namespace face3d

#endif  // FACE3D_RENDERER_KERNELS_INTERPOLATE_CORE_H_
