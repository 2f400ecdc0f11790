// Helpers of the ops' GPU kernels (rasterize_op.cc, interpolate_op.cc,
// normals_op.cc, shading_op.cc, group_norm_op.cc), compiled only with
// GOOGLE_CUDA.
#ifndef FACE3D_RENDERER_KERNELS_GPU_OP_UTIL_H_
#define FACE3D_RENDERER_KERNELS_GPU_OP_UTIL_H_

#if GOOGLE_CUDA
#include <cstdint>

#include "rasterize_cuda.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "xla/stream_executor/stream.h"

namespace face3d {
namespace gpu_op {

// The op's CUDA stream, as the launchers take it.
inline void* Stream(::tensorflow::OpKernelContext* context) {
  return context->op_device_context()->stream()->platform_specific_handle().stream;
}

// Index of the first of `count` device int32 values outside [0, limit), or -1
// (a kernel and one synchronisation of the stream).
inline ::tensorflow::Status FirstOutOfRange(::tensorflow::OpKernelContext* context,
                                            const int32_t* values, int64_t count,
                                            int64_t limit, int64_t* first) {
  ::tensorflow::Tensor scratch;
  TF_RETURN_IF_ERROR(context->allocate_temp(::tensorflow::DT_UINT64,
                                            ::tensorflow::TensorShape({1}), &scratch));
  const char* error = FindFirstOutOfRangeCuda(
      values, count, limit, reinterpret_cast<unsigned long long*>(scratch.flat<uint64_t>().data()),
      Stream(context), first);
  return error == nullptr ? ::tensorflow::OkStatus() : ::tensorflow::errors::Internal(error);
}

// An error from a launcher (nullptr: none) as a Status.
inline ::tensorflow::Status LaunchStatus(const char* launcher, const char* error) {
  return error == nullptr ? ::tensorflow::OkStatus()
                          : ::tensorflow::errors::Internal(launcher, ": ", error);
}

}  // namespace gpu_op
}  // namespace face3d
#endif  // GOOGLE_CUDA

#endif  // FACE3D_RENDERER_KERNELS_GPU_OP_UTIL_H_
