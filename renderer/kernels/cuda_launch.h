// Launch helpers shared by the CUDA twins of the fused ops (included from .cu
// files only; the rasterizer's rasterize_cuda.cu keeps its own copy).
#ifndef FACE3D_RENDERER_KERNELS_CUDA_LAUNCH_H_
#define FACE3D_RENDERER_KERNELS_CUDA_LAUNCH_H_

#include <cstdint>

#include <cuda_runtime.h>

namespace face3d {
namespace cuda_launch {

constexpr int kThreads = 256;

inline int Blocks(int64_t count) {
  return static_cast<int>((count + kThreads - 1) / kThreads);
}

// The launch error, if any, as text (nullptr when none).
inline const char* LastError() {
  const cudaError_t error = cudaGetLastError();
  return error == cudaSuccess ? nullptr : cudaGetErrorString(error);
}

__device__ inline int64_t ThreadIndex() {
  return blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
}

}  // namespace cuda_launch
}  // namespace face3d

#endif  // FACE3D_RENDERER_KERNELS_CUDA_LAUNCH_H_
