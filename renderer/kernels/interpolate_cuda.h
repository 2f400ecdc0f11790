// CUDA twin of the interpolation core (interpolate_core.h): framework-free
// parameters and launchers, used by the GPU kernels of interpolate_op.cc (with
// GOOGLE_CUDA) and by the standalone harness (fused_harness.cc).
//
// All pointers are device memory; every launcher runs asynchronously on
// `stream` (a cudaStream_t passed as void*, so that callers need no CUDA
// headers) and returns nullptr or the CUDA error's text. Indices must already
// be valid (the op checks them on the device, FindFirstOutOfRangeCuda).
//
// The forward pass is one thread per pixel with the core's InterpolatePixel:
// its output equals the CPU's bit for bit. The gradient is one thread per
// pixel too: d_barycentrics with the core's arithmetic (bit for bit), and the
// attribute gradient scattered into the pixel's three vertices with float
// atomicAdd, so its sums agree with the CPU's to rounding and may differ in
// the last bits from run to run. Atomics rather than a gather: which pixels
// add into a vertex depends on the rasterized ids, so a gather would need an
// inverse index (a sort of the pixels by triangle) built on every call, more
// work than the scatter itself; a vertex's sum has a few tens of terms.
#ifndef FACE3D_RENDERER_KERNELS_INTERPOLATE_CUDA_H_
#define FACE3D_RENDERER_KERNELS_INTERPOLATE_CUDA_H_

#include <cstdint>

namespace face3d {

struct InterpolateCudaParams {
  const float* attributes;      // [batch, vertex_count, channels]
  const int32_t* triangles;     // [triangle_count, 3], validated
  const int32_t* triangle_ids;  // [batch, pixel_count], validated
  const float* barycentrics;    // [batch, pixel_count, 3]
  int64_t batch;
  int64_t vertex_count;
  int64_t pixel_count;          // height * width of one image
  int channels;
};

// output [batch, pixel_count, channels].
const char* InterpolateCuda(const InterpolateCudaParams& params, float* output,
                            void* stream);

// d_attributes [batch, vertex_count, channels] (overwritten) and
// d_barycentrics [batch, pixel_count, 3] given d_output
// [batch, pixel_count, channels].
const char* InterpolateGradientCuda(const InterpolateCudaParams& params,
                                    const float* d_output,
                                    float* d_barycentrics, float* d_attributes,
                                    void* stream);

// Copies one int32 from the device (e.g. the offending value named in an
// error message); waits for the stream.
const char* ReadInt32Cuda(const int32_t* device_value, void* stream,
                          int32_t* host_value);

}  // namespace face3d

#endif  // FACE3D_RENDERER_KERNELS_INTERPOLATE_CUDA_H_
