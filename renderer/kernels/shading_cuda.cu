// CUDA twin of the SH shading core; see shading_cuda.h. The threads' work is
// in fused_threads.h. Compile with -fmad=false (build.py does), so that
// products round as the CPU core's.
#include "shading_cuda.h"

#include <cuda_runtime.h>

#include "cuda_launch.h"
#include "fused_threads.h"

namespace face3d {
namespace {

using cuda_launch::Blocks;
using cuda_launch::kThreads;
using cuda_launch::LastError;
using cuda_launch::ThreadIndex;
using fused_threads::kLightEntries;
using fused_threads::kLightThreads;

__global__ void ShadeKernel(ShadingCudaParams p, float* colours) {
  const int64_t i = ThreadIndex();
  if (i < p.batch * p.vertex_count) fused_threads::ShadeThread(p, i, colours);
}

__global__ void ShadeGradientKernel(ShadingCudaParams p, const float* d_colours,
                                    float* d_normals, float* d_albedo) {
  const int64_t i = ThreadIndex();
  if (i < p.batch * p.vertex_count) {
    fused_threads::ShadeGradientThread(p, i, d_colours, d_normals, d_albedo);
  }
}

// One block of kLightThreads per mesh: d_coefficients in a fixed order.
__global__ void LightGradientKernel(ShadingCudaParams p, const float* d_colours,
                                    float* d_coefficients) {
  __shared__ double partial[kLightThreads];
  const int64_t b = blockIdx.x;
  const int t = threadIdx.x;
  double sums[kLightEntries];
  fused_threads::LightPartialThread(p, b, t, d_colours, sums);
  for (int e = 0; e < kLightEntries; ++e) {
    partial[t] = sums[e];
    __syncthreads();
    for (int half = kLightThreads / 2; half > 0; half /= 2) {
      fused_threads::LightTreeStep(partial, t, half);
      __syncthreads();
    }
    if (t == 0) d_coefficients[kLightEntries * b + e] = static_cast<float>(partial[0]);
    __syncthreads();
  }
}

}  // namespace

const char* ShadeVerticesCuda(const ShadingCudaParams& params, float* colours, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t vertices = params.batch * params.vertex_count;
  if (vertices == 0) return nullptr;
  ShadeKernel<<<Blocks(vertices), kThreads, 0, s>>>(params, colours);
  return LastError();
}

const char* ShadeVerticesGradientCuda(const ShadingCudaParams& params, const float* d_colours,
                                      float* d_normals, float* d_albedo, float* d_coefficients,
                                      void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t vertices = params.batch * params.vertex_count;
  if (params.batch == 0) return nullptr;
  if (vertices > 0) {
    ShadeGradientKernel<<<Blocks(vertices), kThreads, 0, s>>>(params, d_colours, d_normals,
                                                              d_albedo);
  }
  // With no vertex the blocks write zeros.
  LightGradientKernel<<<static_cast<unsigned int>(params.batch), kLightThreads, 0, s>>>(
      params, d_colours, d_coefficients);
  return LastError();
}

}  // namespace face3d
