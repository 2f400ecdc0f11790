// CUDA twin of the group-normalisation core (group_norm_core.h):
// framework-free parameters and launchers, used by the GPU kernels of
// group_norm_op.cc (with GOOGLE_CUDA) and by the standalone harness
// (fused_harness.cc).
//
// All pointers are device memory; every launcher runs asynchronously on
// `stream` (a cudaStream_t passed as void*) and returns nullptr or the CUDA
// error's text.
//
// A deterministic gather, no atomics, in the CPU core's order: one thread per
// (image, chunk of kGroupNormChunk pixels, channel) sums its chunk in float in
// pixel order (ForwardTerms / BackwardTerms; neighbouring threads read
// neighbouring channels, so the loads coalesce), one thread per (image,
// channel) adds the chunks into double in chunk order, one per (image, group)
// forms the statistics or the input-gradient coefficients, one per element
// applies them, and (gradient) one per channel sums d_gamma and d_beta over
// the batch in double. Every sum is added in the CPU's order with the same
// roundings, so the results equal the CPU's bit for bit.
#ifndef FACE3D_RENDERER_KERNELS_GROUP_NORM_CUDA_H_
#define FACE3D_RENDERER_KERNELS_GROUP_NORM_CUDA_H_

#include <cstdint>

namespace face3d {

struct GroupNormCudaParams {
  int64_t batch;
  int64_t pixel_count;  // height * width of one image
  int channels;
  int groups;           // divides channels
  float epsilon;
};

// Bytes of device scratch either launcher needs (64-byte aligned pointer).
int64_t GroupNormCudaScratchBytes(const GroupNormCudaParams& params);

// y [batch, pixel_count, channels], mean and rstd [batch, groups]. With no
// pixel, mean is 0 and rstd 1 / sqrt(epsilon), as the CPU op sets them.
const char* GroupNormForwardCuda(const GroupNormCudaParams& params, const float* x,
                                 const float* gamma, const float* beta, float* y,
                                 float* mean, float* rstd, void* scratch, void* stream);

// dx [batch, pixel_count, channels], d_gamma and d_beta [channels] (summed
// over the batch; zeros with no pixel or image) given dy and the forward
// pass's mean and rstd.
const char* GroupNormBackwardCuda(const GroupNormCudaParams& params, const float* x,
                                  const float* gamma, const float* mean, const float* rstd,
                                  const float* dy, float* dx, float* d_gamma, float* d_beta,
                                  void* scratch, void* stream);

}  // namespace face3d

#endif  // FACE3D_RENDERER_KERNELS_GROUP_NORM_CUDA_H_
