// CUDA twin of the photometric-loss core; see photometric_cuda.h. The
// threads' work is in fused_threads.h. Compile with -fmad=false (build.py
// does), so that products round as the CPU core's.
#include "photometric_cuda.h"

#include <cuda_runtime.h>

#include "cuda_launch.h"
#include "fused_threads.h"

namespace face3d {
namespace {

using cuda_launch::Blocks;
using cuda_launch::kThreads;
using cuda_launch::LastError;
using cuda_launch::ThreadIndex;
namespace ft = fused_threads;

__global__ void PhotometricChunkKernel(PhotometricCudaParams p, int64_t units, double* sums) {
  const int64_t i = ThreadIndex();
  if (i < units) ft::PhotometricChunkThread(p, i, sums);
}

__global__ void PhotometricImageKernel(PhotometricCudaParams p, const double* sums,
                                       float* per_image, float* mask_total) {
  const int64_t b = ThreadIndex();
  if (b < p.batch) ft::PhotometricImageThread(p, b, sums, per_image, mask_total);
}

__global__ void PhotometricGradientKernel(PhotometricCudaParams p, const float* per_image,
                                          const float* mask_total, const float* d_per_image,
                                          float* d_renders, float* d_mask) {
  const int64_t i = ThreadIndex();
  if (i < p.batch * p.pixel_count) {
    ft::PhotometricGradientThread(p, i, per_image, mask_total, d_per_image, d_renders, d_mask);
  }
}

}  // namespace

int64_t PhotometricCudaScratchBytes(const PhotometricCudaParams& params) {
  return 2 * params.batch * PhotometricChunks(params.pixel_count) *
         static_cast<int64_t>(sizeof(double));
}

const char* PhotometricLossCuda(const PhotometricCudaParams& params, float* per_image,
                                float* mask_total, void* scratch, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (params.batch == 0) return nullptr;
  double* sums = static_cast<double*>(scratch);
  const int64_t units = params.batch * PhotometricChunks(params.pixel_count);
  if (units > 0) PhotometricChunkKernel<<<Blocks(units), kThreads, 0, s>>>(params, units, sums);
  // With no pixel the image threads add no chunk: zeros.
  PhotometricImageKernel<<<Blocks(params.batch), kThreads, 0, s>>>(params, sums, per_image,
                                                                   mask_total);
  return LastError();
}

const char* PhotometricGradientCuda(const PhotometricCudaParams& params, const float* per_image,
                                    const float* mask_total, const float* d_per_image,
                                    float* d_renders, float* d_mask, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t pixels = params.batch * params.pixel_count;
  if (pixels == 0) return nullptr;
  PhotometricGradientKernel<<<Blocks(pixels), kThreads, 0, s>>>(params, per_image, mask_total,
                                                                d_per_image, d_renders, d_mask);
  return LastError();
}

}  // namespace face3d
