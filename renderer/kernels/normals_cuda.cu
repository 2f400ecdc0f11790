// CUDA twin of the vertex- and triangle-normals core; see normals_cuda.h. The threads' work
// is in fused_threads.h. Compile with -fmad=false (build.py does), so that
// products round as the CPU core's.
#include "normals_cuda.h"

#include <cuda_runtime.h>

#include "cuda_launch.h"
#include "fused_threads.h"

namespace face3d {
namespace {

using cuda_launch::Blocks;
using cuda_launch::kThreads;
using cuda_launch::LastError;
using cuda_launch::ThreadIndex;

__global__ void SumFaceNormalsKernel(NormalsCudaParams p, float* sums) {
  const int64_t i = ThreadIndex();
  if (i < p.batch * p.triangle_count) fused_threads::SumFaceNormalsThread(p, i, sums);
}

__global__ void NormalizeKernel(int64_t vertices, const float* sums, float* normals) {
  const int64_t v = ThreadIndex();
  if (v < vertices) fused_threads::NormalizeThread(v, sums, normals);
}

__global__ void NormalizeGradKernel(int64_t vertices, const float* sums, const float* d_normals,
                                    float* d_sums) {
  const int64_t v = ThreadIndex();
  if (v < vertices) fused_threads::NormalizeGradThread(v, sums, d_normals, d_sums);
}

__global__ void FaceGradKernel(NormalsCudaParams p, const float* d_sums, float* d_vertices) {
  const int64_t i = ThreadIndex();
  if (i < p.batch * p.triangle_count) fused_threads::FaceGradThread(p, i, d_sums, d_vertices);
}

__global__ void TriangleNormalKernel(NormalsCudaParams p, float* normals) {
  const int64_t i = ThreadIndex();
  if (i < p.batch * p.triangle_count) fused_threads::TriangleNormalThread(p, i, normals);
}

__global__ void TriangleNormalGradKernel(NormalsCudaParams p, const float* d_normals,
                                         float* d_vertices) {
  const int64_t i = ThreadIndex();
  if (i < p.batch * p.triangle_count) {
    fused_threads::TriangleNormalGradThread(p, i, d_normals, d_vertices);
  }
}

// sums = the face-normal sums of every mesh.
const char* SumFaceNormals(const NormalsCudaParams& p, float* sums, cudaStream_t s) {
  const int64_t floats = 3 * p.batch * p.vertex_count;
  const cudaError_t error = cudaMemsetAsync(sums, 0, floats * sizeof(float), s);
  if (error != cudaSuccess) return cudaGetErrorString(error);
  const int64_t triangles = p.batch * p.triangle_count;
  if (triangles > 0) SumFaceNormalsKernel<<<Blocks(triangles), kThreads, 0, s>>>(p, sums);
  return LastError();
}

}  // namespace

const char* VertexNormalsCuda(const NormalsCudaParams& params, float* sums, float* normals,
                              void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t vertices = params.batch * params.vertex_count;
  if (vertices == 0) return nullptr;
  const char* error = SumFaceNormals(params, sums, s);
  if (error != nullptr) return error;
  NormalizeKernel<<<Blocks(vertices), kThreads, 0, s>>>(vertices, sums, normals);
  return LastError();
}

const char* VertexNormalsGradientCuda(const NormalsCudaParams& params, const float* d_normals,
                                      float* scratch, float* d_vertices, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t vertices = params.batch * params.vertex_count;
  if (vertices == 0) return nullptr;
  float* sums = scratch;
  float* d_sums = scratch + 3 * vertices;
  const char* error = SumFaceNormals(params, sums, s);
  if (error != nullptr) return error;
  NormalizeGradKernel<<<Blocks(vertices), kThreads, 0, s>>>(vertices, sums, d_normals, d_sums);
  const cudaError_t memset_error = cudaMemsetAsync(d_vertices, 0, 3 * vertices * sizeof(float), s);
  if (memset_error != cudaSuccess) return cudaGetErrorString(memset_error);
  const int64_t triangles = params.batch * params.triangle_count;
  if (triangles > 0) {
    FaceGradKernel<<<Blocks(triangles), kThreads, 0, s>>>(params, d_sums, d_vertices);
  }
  return LastError();
}

const char* TriangleNormalsCuda(const NormalsCudaParams& params, float* normals, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t triangles = params.batch * params.triangle_count;
  if (triangles == 0) return nullptr;
  TriangleNormalKernel<<<Blocks(triangles), kThreads, 0, s>>>(params, normals);
  return LastError();
}

const char* TriangleNormalsGradientCuda(const NormalsCudaParams& params, const float* d_normals,
                                        float* d_vertices, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t vertices = params.batch * params.vertex_count;
  if (vertices == 0) return nullptr;
  const cudaError_t error = cudaMemsetAsync(d_vertices, 0, 3 * vertices * sizeof(float), s);
  if (error != cudaSuccess) return cudaGetErrorString(error);
  const int64_t triangles = params.batch * params.triangle_count;
  if (triangles > 0) {
    TriangleNormalGradKernel<<<Blocks(triangles), kThreads, 0, s>>>(params, d_normals, d_vertices);
  }
  return LastError();
}

}  // namespace face3d
