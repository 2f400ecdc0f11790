// CUDA twin of the rasterizer core; see rasterize_cuda.h. Compile with
// -fmad=false (build.py does): the shared arithmetic of rasterize_pixel.h
// relies on separately rounded products, as the CPU core's -ffp-contract=off.
#include "rasterize_cuda.h"

#include <cuda_runtime.h>

namespace face3d {
namespace {

constexpr int kThreads = 256;

// Key of a drawn pixel: the depth's bits made order-preserving in the high
// word, and 0xFFFFFFFE - id in the low word, so that the atomic minimum keeps
// the nearest triangle and, on equal depth, the larger id (the CPU core's
// rule: triangles in list order, a nearer-or-equal one overwrites). -0 and +0
// are one depth, as in the CPU's comparison. The background key is larger
// than any drawn pixel's.
__device__ inline unsigned long long DepthKey(float z, int32_t id) {
  unsigned int bits = __float_as_uint(z + 0.0f);
  bits = (bits & 0x80000000u) != 0u ? ~bits : (bits | 0x80000000u);
  return (static_cast<unsigned long long>(bits) << 32) |
         static_cast<unsigned long long>(0xFFFFFFFEu - static_cast<unsigned int>(id));
}

constexpr unsigned long long kBackgroundKey = ~0ull;

inline int Blocks(int64_t count) {
  return static_cast<int>((count + kThreads - 1) / kThreads);
}

const char* LastError() {
  const cudaError_t error = cudaGetLastError();
  return error == cudaSuccess ? nullptr : cudaGetErrorString(error);
}

__global__ void ProjectKernel(RasterizeParams p) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= p.batch * p.vertex_count) return;
  p.projected[i] = ProjectVertex(p.clip + 4 * i, 0.5f * p.width, 0.5f * p.height);
}

__global__ void ClearKeysKernel(unsigned long long* keys, int64_t count) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < count) keys[i] = kBackgroundKey;
}

// One thread per (image, triangle): the candidates of the CPU core, each
// drawn pixel's key offered to the atomic minimum.
__global__ void RasterizeKernel(RasterizeParams p) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= p.batch * p.triangle_count) return;
  const int64_t b = i / p.triangle_count, t = i % p.triangle_count;
  const int32_t* ids = p.triangles + 3 * t;
  const ProjectedVertex* projected = p.projected + p.vertex_count * b;
  const ProjectedVertex* const v[3] = {projected + ids[0], projected + ids[1], projected + ids[2]};
  unsigned long long* keys = p.depth_keys + static_cast<int64_t>(p.height) * p.width * b;
  const int32_t id = static_cast<int32_t>(t);
  if (!IsFinite(v[0]->x + v[1]->x + v[2]->x)) {
    HomogeneousSetup h;
    const float* clip = p.clip + 4 * p.vertex_count * b;
    if (!SetupHomogeneousTriangle(clip, ids, p.cull_backfaces, &h)) return;
    int c0, r0, c1, r1;
    if (!HomogeneousBounds(h.s, p.width, p.height, 0, p.height, &c0, &r0, &c1, &r1)) return;
    for (int row = r0; row < r1; ++row) {
      const double py = PixelNdcY(row, p.height);
      int first, last;
      HomogeneousRowSpan(h, py, p.width, c0, c1, &first, &last);
      for (int col = first; col < last; ++col) {
        float z, bary[3];
        if (!HomogeneousPixel(h, PixelNdcX(col, p.width), py, &z, bary)) continue;
        atomicMin(keys + static_cast<int64_t>(row) * p.width + col, DepthKey(z, id));
      }
    }
    return;
  }
  FastCandidates setup;
  if (!FastTriangleSetup(v, p.width, 0, p.height, p.cull_backfaces, &setup)) return;
  for (int row = setup.r0; row < setup.r1; ++row) {
    for (int col = setup.c0; col < setup.c1; ++col) {
      float e[3], z;
      if (!FastPixelInside(setup, v, col, row, p.cull_backfaces, e)) continue;
      if (!FastDepth(e, v, &z)) continue;
      atomicMin(keys + static_cast<int64_t>(row) * p.width + col, DepthKey(z, id));
    }
  }
}

// One thread per pixel: the winner's depth and barycentrics, recomputed with
// the same arithmetic that drew it.
__global__ void ResolveKernel(RasterizeParams p) {
  const int64_t pixels = static_cast<int64_t>(p.height) * p.width;
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= p.batch * pixels) return;
  const unsigned long long key = p.depth_keys[i];
  p.triangle_ids[i] = 0;
  p.mask[i] = 0.0f;
  p.depth[i] = kBackgroundDepth;
  for (int k = 0; k < 3; ++k) p.barycentrics[3 * i + k] = 0.0f;
  if (key == kBackgroundKey) return;
  const int64_t b = i / pixels, pixel = i % pixels;
  const int row = static_cast<int>(pixel / p.width), col = static_cast<int>(pixel % p.width);
  const int32_t id = static_cast<int32_t>(0xFFFFFFFEu - static_cast<unsigned int>(key & 0xFFFFFFFFull));
  const int32_t* ids = p.triangles + 3 * static_cast<int64_t>(id);
  const ProjectedVertex* projected = p.projected + p.vertex_count * b;
  const ProjectedVertex* const v[3] = {projected + ids[0], projected + ids[1], projected + ids[2]};
  float z, bary[3];
  if (!IsFinite(v[0]->x + v[1]->x + v[2]->x)) {
    HomogeneousSetup h;
    if (!SetupHomogeneousTriangle(p.clip + 4 * p.vertex_count * b, ids, p.cull_backfaces, &h) ||
        !HomogeneousPixel(h, PixelNdcX(col, p.width), PixelNdcY(row, p.height), &z, bary)) {
      return;
    }
  } else {
    FastCandidates setup;
    float e[3];
    if (!FastTriangleSetup(v, p.width, 0, p.height, p.cull_backfaces, &setup) ||
        !FastPixelInside(setup, v, col, row, p.cull_backfaces, e) || !FastDepth(e, v, &z)) {
      return;
    }
    FastBarycentrics(e, v, bary);
  }
  p.triangle_ids[i] = id;
  p.mask[i] = 1.0f;
  p.depth[i] = z;
  for (int k = 0; k < 3; ++k) p.barycentrics[3 * i + k] = bary[k];
}

__global__ void ZeroKernel(float* values, int64_t count) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < count) values[i] = 0.0f;
}

__global__ void PixelGradientKernel(GradientParams p) {
  const int64_t pixels = static_cast<int64_t>(p.height) * p.width;
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= p.batch * pixels || p.mask[i] == 0.0f) return;
  const float g[3] = {p.d_barycentrics ? p.d_barycentrics[3 * i] : 0.0f,
                      p.d_barycentrics ? p.d_barycentrics[3 * i + 1] : 0.0f,
                      p.d_barycentrics ? p.d_barycentrics[3 * i + 2] : 0.0f};
  const float g_depth = p.d_depth ? p.d_depth[i] : 0.0f;
  if (g[0] == 0.0f && g[1] == 0.0f && g[2] == 0.0f && g_depth == 0.0f) return;
  const int64_t b = i / pixels, pixel = i % pixels;
  const int row = static_cast<int>(pixel / p.width), col = static_cast<int>(pixel % p.width);
  const int32_t* ids = p.triangles + 3 * static_cast<int64_t>(p.triangle_ids[i]);
  const ProjectedVertex* projected = p.projected + p.vertex_count * b;
  const ProjectedVertex* const v[3] = {projected + ids[0], projected + ids[1], projected + ids[2]};
  float d[3][4];
  float* sums;
  if (!IsFinite(v[0]->x + v[1]->x + v[2]->x)) {
    if (!HomogeneousPixelGradient(p.clip + 4 * p.vertex_count * b, ids, g, g_depth,
                                  PixelNdcX(col, p.width), PixelNdcY(row, p.height), d)) {
      return;
    }
    sums = p.d_clip_slow;
  } else {
    if (!FastPixelGradient(v, col, row, g, g_depth, p.d_depth != nullptr, d)) return;
    sums = p.d_projected;
  }
  for (int j = 0; j < 3; ++j) {
    float* out = sums + 4 * (p.vertex_count * b + ids[j]);
    for (int k = 0; k < 4; ++k) atomicAdd(out + k, d[j][k]);
  }
}

__global__ void FinishKernel(GradientParams p) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= p.batch * p.vertex_count) return;
  double projected[4], slow[4];
  for (int k = 0; k < 4; ++k) {
    projected[k] = p.d_projected[4 * i + k];
    slow[k] = p.d_clip_slow[4 * i + k];
  }
  FinishVertex(p.clip + 4 * i, projected, slow, p.width, p.height, p.d_clip + 4 * i);
}

__global__ void FirstOutOfRangeKernel(const int32_t* values, int64_t count, int64_t limit,
                                      unsigned long long* first) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < count && (values[i] < 0 || values[i] >= limit)) {
    atomicMin(first, static_cast<unsigned long long>(i));
  }
}

}  // namespace

const char* RasterizeCuda(const RasterizeParams& params, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t vertices = params.batch * params.vertex_count;
  const int64_t pixels = params.batch * params.height * static_cast<int64_t>(params.width);
  const int64_t triangles = params.batch * params.triangle_count;
  if (pixels == 0) return nullptr;
  if (vertices > 0) ProjectKernel<<<Blocks(vertices), kThreads, 0, s>>>(params);
  ClearKeysKernel<<<Blocks(pixels), kThreads, 0, s>>>(params.depth_keys, pixels);
  if (triangles > 0) RasterizeKernel<<<Blocks(triangles), kThreads, 0, s>>>(params);
  ResolveKernel<<<Blocks(pixels), kThreads, 0, s>>>(params);
  return LastError();
}

const char* RasterizeGradientCuda(const GradientParams& params, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t vertices = params.batch * params.vertex_count;
  const int64_t pixels = params.batch * params.height * static_cast<int64_t>(params.width);
  if (vertices == 0) return nullptr;
  ZeroKernel<<<Blocks(4 * vertices), kThreads, 0, s>>>(params.d_projected, 4 * vertices);
  ZeroKernel<<<Blocks(4 * vertices), kThreads, 0, s>>>(params.d_clip_slow, 4 * vertices);
  if (pixels > 0 && (params.d_barycentrics != nullptr || params.d_depth != nullptr)) {
    PixelGradientKernel<<<Blocks(pixels), kThreads, 0, s>>>(params);
  }
  FinishKernel<<<Blocks(vertices), kThreads, 0, s>>>(params);
  return LastError();
}

const char* FindFirstOutOfRangeCuda(const int32_t* values, int64_t count, int64_t limit,
                                    unsigned long long* scratch, void* stream, int64_t* first) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  *first = -1;
  if (count == 0) return nullptr;
  const unsigned long long none = ~0ull;
  cudaMemcpyAsync(scratch, &none, sizeof(none), cudaMemcpyHostToDevice, s);
  FirstOutOfRangeKernel<<<Blocks(count), kThreads, 0, s>>>(values, count, limit, scratch);
  unsigned long long found = none;
  cudaMemcpyAsync(&found, scratch, sizeof(found), cudaMemcpyDeviceToHost, s);
  const cudaError_t error = cudaStreamSynchronize(s);
  if (error != cudaSuccess) return cudaGetErrorString(error);
  if (found != none) *first = static_cast<int64_t>(found);
  return LastError();
}

}  // namespace face3d
