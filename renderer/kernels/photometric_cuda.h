// CUDA twin of the photometric-loss core (photometric_core.h):
// framework-free parameters and launchers, used by the GPU kernels of
// photometric_op.cc (with GOOGLE_CUDA) and by the standalone harness
// (fused_harness.cc).
//
// All pointers are device memory; every launcher runs asynchronously on
// `stream` (a cudaStream_t passed as void*) and returns nullptr or the CUDA
// error's text.
//
// The forward pass is a deterministic gather in the CPU core's order, no
// atomics: one thread per (image, chunk of kPhotometricChunk pixels) sums its
// chunk in double in pixel order (ChunkSums), then one thread per image adds
// the chunks in chunk order (ImageLossFromChunks), so per_image and
// mask_total equal the CPU's bit for bit. The gradient is one thread per
// pixel (ImageGradientFactors, PixelGradient), bit for bit too. Not tuned: a
// chunk thread reads its own 256 pixels, so neighbouring threads' loads do
// not coalesce.
#ifndef FACE3D_RENDERER_KERNELS_PHOTOMETRIC_CUDA_H_
#define FACE3D_RENDERER_KERNELS_PHOTOMETRIC_CUDA_H_

#include <cstdint>

namespace face3d {

struct PhotometricCudaParams {
  const float* images;   // [batch, pixel_count, channels]
  const float* renders;  // [batch, pixel_count, channels]
  const float* mask;     // [batch, pixel_count]
  int64_t batch;
  int64_t pixel_count;   // height * width of one image
  int64_t channels;
  float epsilon;
};

// Bytes of device scratch the forward launcher needs (8-byte aligned pointer).
int64_t PhotometricCudaScratchBytes(const PhotometricCudaParams& params);

// per_image and mask_total [batch] (zeros for images of no pixel).
const char* PhotometricLossCuda(const PhotometricCudaParams& params, float* per_image,
                                float* mask_total, void* scratch, void* stream);

// d_renders [batch, pixel_count, channels] and d_mask [batch, pixel_count]
// (overwritten) given d_per_image [batch] and the forward pass's per_image
// and mask_total.
const char* PhotometricGradientCuda(const PhotometricCudaParams& params, const float* per_image,
                                    const float* mask_total, const float* d_per_image,
                                    float* d_renders, float* d_mask, void* stream);

}  // namespace face3d

#endif  // FACE3D_RENDERER_KERNELS_PHOTOMETRIC_CUDA_H_
