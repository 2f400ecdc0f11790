// CUDA twin of the interpolation core; see interpolate_cuda.h. The threads'
// work is in fused_threads.h. Compile with -fmad=false (build.py does), so
// that products round as the CPU core's (-ffp-contract=off).
#include "interpolate_cuda.h"

#include <cuda_runtime.h>

#include "cuda_launch.h"
#include "fused_threads.h"

namespace face3d {
namespace {

using cuda_launch::Blocks;
using cuda_launch::kThreads;
using cuda_launch::LastError;
using cuda_launch::ThreadIndex;

__global__ void InterpolateKernel(InterpolateCudaParams p, float* output) {
  const int64_t i = ThreadIndex();
  if (i < p.batch * p.pixel_count) fused_threads::InterpolateThread(p, i, output);
}

__global__ void InterpolateGradientKernel(InterpolateCudaParams p, const float* d_output,
                                          float* d_barycentrics, float* d_attributes) {
  const int64_t i = ThreadIndex();
  if (i < p.batch * p.pixel_count) {
    fused_threads::InterpolateGradientThread(p, i, d_output, d_barycentrics, d_attributes);
  }
}

}  // namespace

const char* InterpolateCuda(const InterpolateCudaParams& params, float* output, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t pixels = params.batch * params.pixel_count;
  if (pixels == 0 || params.channels == 0) return nullptr;
  InterpolateKernel<<<Blocks(pixels), kThreads, 0, s>>>(params, output);
  return LastError();
}

const char* InterpolateGradientCuda(const InterpolateCudaParams& params, const float* d_output,
                                    float* d_barycentrics, float* d_attributes, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t pixels = params.batch * params.pixel_count;
  const int64_t attribute_floats = params.batch * params.vertex_count * params.channels;
  if (attribute_floats > 0) {
    // All-zero bits are 0.0f.
    const cudaError_t error =
        cudaMemsetAsync(d_attributes, 0, attribute_floats * sizeof(float), s);
    if (error != cudaSuccess) return cudaGetErrorString(error);
  }
  if (pixels == 0) return LastError();
  InterpolateGradientKernel<<<Blocks(pixels), kThreads, 0, s>>>(params, d_output, d_barycentrics,
                                                                d_attributes);
  return LastError();
}

const char* ReadInt32Cuda(const int32_t* device_value, void* stream, int32_t* host_value) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  cudaError_t error =
      cudaMemcpyAsync(host_value, device_value, sizeof(int32_t), cudaMemcpyDeviceToHost, s);
  if (error == cudaSuccess) error = cudaStreamSynchronize(s);
  return error == cudaSuccess ? nullptr : cudaGetErrorString(error);
}

}  // namespace face3d
