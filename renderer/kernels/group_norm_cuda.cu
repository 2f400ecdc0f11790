// CUDA twin of the group-normalisation core; see group_norm_cuda.h. The
// threads' work is in fused_threads.h. Compile with -fmad=false (build.py
// does), so that products round as the CPU core's.
#include "group_norm_cuda.h"

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

__global__ void ChunkSumsKernel(GroupNormCudaParams p, int64_t chunks, const float* x,
                                const float* dy, const float* mean, const float* rstd,
                                float* part_a, float* part_b) {
  const int64_t i = ThreadIndex();
  if (i < p.batch * chunks * p.channels) {
    ft::ChunkSumsThread(p, chunks, i, x, dy, mean, rstd, part_a, part_b);
  }
}

__global__ void ChannelSumsKernel(GroupNormCudaParams p, int64_t chunks, const float* part_a,
                                  const float* part_b, double* sum_a, double* sum_b) {
  const int64_t i = ThreadIndex();
  if (i < p.batch * p.channels) ft::ChannelSumsThread(p, chunks, i, part_a, part_b, sum_a, sum_b);
}

__global__ void StatisticsKernel(GroupNormCudaParams p, const double* sum_a, const double* sum_b,
                                 const float* gamma, const float* beta, float* mean, float* rstd,
                                 float* scale, float* shift) {
  const int64_t i = ThreadIndex();
  if (i < p.batch * p.groups) {
    ft::StatisticsThread(p, i, sum_a, sum_b, gamma, beta, mean, rstd, scale, shift);
  }
}

__global__ void EmptyStatisticsKernel(int64_t count, float epsilon, float* mean, float* rstd) {
  const int64_t i = ThreadIndex();
  if (i < count) ft::EmptyStatisticsThread(i, epsilon, mean, rstd);
}

__global__ void ApplyKernel(GroupNormCudaParams p, const float* x, const float* scale,
                            const float* shift, float* y) {
  const int64_t i = ThreadIndex();
  if (i < p.batch * p.pixel_count * p.channels) ft::ApplyThread(p, i, x, scale, shift, y);
}

__global__ void CoefficientsKernel(GroupNormCudaParams p, const float* gamma, const float* mean,
                                   const float* rstd, const double* d_gamma_part,
                                   const double* d_beta_part, float* k_dy, float* k_x,
                                   float* k_1) {
  const int64_t i = ThreadIndex();
  if (i < p.batch * p.groups) {
    ft::CoefficientsThread(p, i, gamma, mean, rstd, d_gamma_part, d_beta_part, k_dy, k_x, k_1);
  }
}

__global__ void InputGradKernel(GroupNormCudaParams p, const float* x, const float* dy,
                                const float* k_dy, const float* k_x, const float* k_1,
                                float* dx) {
  const int64_t i = ThreadIndex();
  if (i < p.batch * p.pixel_count * p.channels) ft::InputGradThread(p, i, x, dy, k_dy, k_x, k_1, dx);
}

__global__ void BatchSumKernel(GroupNormCudaParams p, const double* d_gamma_part,
                               const double* d_beta_part, float* d_gamma, float* d_beta) {
  const int64_t c = ThreadIndex();
  if (c < p.channels) ft::BatchSumThread(p, c, d_gamma_part, d_beta_part, d_gamma, d_beta);
}

}  // namespace

int64_t GroupNormCudaScratchBytes(const GroupNormCudaParams& params) {
  return ft::GroupNormScratchBytes(params);
}

const char* GroupNormForwardCuda(const GroupNormCudaParams& params, const float* x,
                                 const float* gamma, const float* beta, float* y, float* mean,
                                 float* rstd, void* scratch, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t statistics = params.batch * params.groups;
  if (statistics == 0) return nullptr;
  if (params.pixel_count == 0) {
    EmptyStatisticsKernel<<<Blocks(statistics), kThreads, 0, s>>>(statistics, params.epsilon, mean,
                                                                  rstd);
    return LastError();
  }
  const ft::GroupNormScratch w = ft::CarveGroupNormScratch(params, scratch);
  const int64_t chunks = ft::GroupNormChunks(params);
  const int64_t per_image = params.batch * params.channels;
  ChunkSumsKernel<<<Blocks(per_image * chunks), kThreads, 0, s>>>(
      params, chunks, x, nullptr, nullptr, nullptr, w.part_a, w.part_b);
  ChannelSumsKernel<<<Blocks(per_image), kThreads, 0, s>>>(params, chunks, w.part_a, w.part_b,
                                                           w.sum_a, w.sum_b);
  StatisticsKernel<<<Blocks(statistics), kThreads, 0, s>>>(params, w.sum_a, w.sum_b, gamma, beta,
                                                           mean, rstd, w.coeff[0], w.coeff[1]);
  ApplyKernel<<<Blocks(per_image * params.pixel_count), kThreads, 0, s>>>(
      params, x, w.coeff[0], w.coeff[1], y);
  return LastError();
}

const char* GroupNormBackwardCuda(const GroupNormCudaParams& params, const float* x,
                                  const float* gamma, const float* mean, const float* rstd,
                                  const float* dy, float* dx, float* d_gamma, float* d_beta,
                                  void* scratch, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (params.channels == 0) return nullptr;
  if (params.pixel_count == 0 || params.batch == 0) {
    cudaError_t error = cudaMemsetAsync(d_gamma, 0, params.channels * sizeof(float), s);
    if (error == cudaSuccess) error = cudaMemsetAsync(d_beta, 0, params.channels * sizeof(float), s);
    return error == cudaSuccess ? nullptr : cudaGetErrorString(error);
  }
  const ft::GroupNormScratch w = ft::CarveGroupNormScratch(params, scratch);
  const int64_t chunks = ft::GroupNormChunks(params);
  const int64_t per_image = params.batch * params.channels;
  const int64_t statistics = params.batch * params.groups;
  ChunkSumsKernel<<<Blocks(per_image * chunks), kThreads, 0, s>>>(params, chunks, x, dy, mean,
                                                                  rstd, w.part_a, w.part_b);
  // sum_a: each image's d_gamma, sum_b: its d_beta.
  ChannelSumsKernel<<<Blocks(per_image), kThreads, 0, s>>>(params, chunks, w.part_a, w.part_b,
                                                           w.sum_a, w.sum_b);
  CoefficientsKernel<<<Blocks(statistics), kThreads, 0, s>>>(params, gamma, mean, rstd, w.sum_a,
                                                             w.sum_b, w.coeff[0], w.coeff[1],
                                                             w.coeff[2]);
  InputGradKernel<<<Blocks(per_image * params.pixel_count), kThreads, 0, s>>>(
      params, x, dy, w.coeff[0], w.coeff[1], w.coeff[2], dx);
  BatchSumKernel<<<Blocks(params.channels), kThreads, 0, s>>>(params, w.sum_a, w.sum_b, d_gamma,
                                                              d_beta);
  return LastError();
}

}  // namespace face3d
