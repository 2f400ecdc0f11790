// The masked photometric loss of the coarse stage (model/losses.py
// photometric_loss): the plain C++ core of the PhotometricLoss op and its
// gradient.
//
// No TensorFlow in here. For one image of pixel_count pixels with images I,
// renders R [pixel_count, channels] and mask M [pixel_count]:
//   dist_p = sqrt(sum_c (I_pc - R_pc)^2 + epsilon),
//   S = sum_p M_p dist_p,   T = sum_p M_p,   N = max(T, 1),
//   per_image = S / N,      mask_total = T.
// Given d = d per_image, the gradient (per_image = loss below):
//   d_R_pc = -d M_p (I_pc - R_pc) / dist_p / N,
//   d_M_p  =  d (dist_p - [T >= 1] loss) / N
// ([T >= 1]: tf.maximum's gradient goes to T on a tie), and d_I = -d_R.
//
// The sums S and T run in double over chunks of kPhotometricChunk pixels (in
// four interleaved accumulators, ChunkSums), and the chunks' sums are added in
// chunk order: the CPU op shards the chunks over its threads and the CUDA twin
// (photometric_cuda.cu) runs one thread per chunk, then one per image, so both
// sum in the same order whatever the thread count (deterministic, and the
// twin's sums equal the CPU's bit for bit). The gradient is per pixel and
// needs no sum. The per-pixel arithmetic is in the inline functions below,
// marked FACE3D_HOST_DEVICE, shared with the twin; the CPU's vector loops for
// 3 channels (photometric_core.cc) do their operations lane by lane.
#ifndef FACE3D_RENDERER_KERNELS_PHOTOMETRIC_CORE_H_
#define FACE3D_RENDERER_KERNELS_PHOTOMETRIC_CORE_H_

#include <cmath>
#include <cstdint>

#ifndef FACE3D_HOST_DEVICE
#if defined(__CUDACC__)
#define FACE3D_HOST_DEVICE __host__ __device__
#else
#define FACE3D_HOST_DEVICE
#endif
#endif

namespace face3d {

struct PhotometricParams {
  const float* images;   // [pixel_count, channels]
  const float* renders;  // [pixel_count, channels]
  const float* mask;     // [pixel_count]
  int64_t pixel_count;   // height * width of one image
  int64_t channels;
  float epsilon;         // > 0: keeps dist and its derivative finite at I = R
};

constexpr int64_t kPhotometricChunk = 256;

FACE3D_HOST_DEVICE inline int64_t PhotometricChunks(int64_t pixel_count) {
  return (pixel_count + kPhotometricChunk - 1) / kPhotometricChunk;
}

// dist = sqrt(sum_c (image[c] - render[c])^2 + epsilon), the sum in float.
FACE3D_HOST_DEVICE inline float PixelDistance(const float* image, const float* render,
                                              int64_t channels, float epsilon) {
  float sum = 0.0f;
  for (int64_t c = 0; c < channels; ++c) {
    const float d = image[c] - render[c];
    sum += d * d;
  }
  return sqrtf(sum + epsilon);
}

// One image's loss from its sums: per_image = S / max(T, 1), mask_total = T.
FACE3D_HOST_DEVICE inline void ImageLoss(double masked_distance, double mask_sum,
                                         float* per_image, float* mask_total) {
  *per_image = static_cast<float>(masked_distance / (mask_sum > 1.0 ? mask_sum : 1.0));
  *mask_total = static_cast<float>(mask_sum);
}

// The factors of one image's gradient: scale = d / N and offset = [T >= 1]
// loss, so that d_R_pc = -scale M_p (I_pc - R_pc) / dist_p and
// d_M_p = scale (dist_p - offset).
FACE3D_HOST_DEVICE inline void ImageGradientFactors(float per_image, float mask_total,
                                                    float d_per_image, float* scale,
                                                    float* offset) {
  const bool normalised = mask_total >= 1.0f;
  *scale = d_per_image / (normalised ? mask_total : 1.0f);
  *offset = normalised ? per_image : 0.0f;
}

// The gradient of one pixel: d_render [channels] and *d_mask.
FACE3D_HOST_DEVICE inline void PixelGradient(const float* image, const float* render,
                                             float mask, int64_t channels, float epsilon,
                                             float scale, float offset, float* d_render,
                                             float* d_mask) {
  const float dist = PixelDistance(image, render, channels, epsilon);
  const float k = scale * mask / dist;
  for (int64_t c = 0; c < channels; ++c) d_render[c] = k * (render[c] - image[c]);
  *d_mask = scale * (dist - offset);
}

// The sums of a chunk run in kPhotometricLanes interleaved double
// accumulators (pixel begin + i into accumulator i % kPhotometricLanes, in
// pixel order), added as (a0 + a1) + (a2 + a3) at the end: the CPU's 4-float
// vector loop (photometric_core.cc) sums lane by lane in exactly this order.
constexpr int kPhotometricLanes = 4;

FACE3D_HOST_DEVICE inline double AddLanes(const double* lanes) {
  return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
}

// The first pixel of chunk `chunk` and one past its last.
FACE3D_HOST_DEVICE inline void ChunkPixels(int64_t pixel_count, int64_t chunk, int64_t* begin,
                                           int64_t* end) {
  *begin = chunk * kPhotometricChunk;
  *end = *begin + kPhotometricChunk < pixel_count ? *begin + kPhotometricChunk : pixel_count;
}

// S and T of chunk `chunk` of one image, in double (the order above).
FACE3D_HOST_DEVICE inline void ChunkSums(const PhotometricParams& p, int64_t chunk,
                                         double* masked_distance, double* mask_sum) {
  int64_t begin, end;
  ChunkPixels(p.pixel_count, chunk, &begin, &end);
  const int64_t c = p.channels;
  double s[kPhotometricLanes] = {0.0, 0.0, 0.0, 0.0};
  double t[kPhotometricLanes] = {0.0, 0.0, 0.0, 0.0};
  for (int64_t i = begin; i < end; ++i) {
    const float m = p.mask[i];
    const int lane = static_cast<int>((i - begin) % kPhotometricLanes);
    s[lane] += static_cast<double>(m * PixelDistance(p.images + c * i, p.renders + c * i, c,
                                                     p.epsilon));
    t[lane] += m;
  }
  *masked_distance = AddLanes(s);
  *mask_sum = AddLanes(t);
}

// per_image and mask_total of one image from its chunks' sums [2 * chunks]
// (S, T of each chunk), added in chunk order.
FACE3D_HOST_DEVICE inline void ImageLossFromChunks(int64_t pixel_count, const double* sums,
                                                   float* per_image, float* mask_total) {
  double s = 0.0, t = 0.0;
  const int64_t chunks = PhotometricChunks(pixel_count);
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    s += sums[2 * chunk];
    t += sums[2 * chunk + 1];
  }
  ImageLoss(s, t, per_image, mask_total);
}

// sums [2 * chunks] of one image (S, T of each chunk; chunks =
// PhotometricChunks(pixel_count)), for chunks [chunk_begin, chunk_end).
void PhotometricChunkSums(const PhotometricParams& params, int64_t chunk_begin,
                          int64_t chunk_end, double* sums);

// The gradient of one image's pixels [pixel_begin, pixel_end) given
// d_per_image: d_renders [pixel_count, channels] and d_mask [pixel_count]
// (the pixels' entries overwritten); per_image and mask_total are the forward
// pass's. d_renders may be the images' or the renders' memory and d_mask the
// mask's (the op writes over them where it can): a pixel's values are read
// before its gradient is written.
void PhotometricGradient(const PhotometricParams& params, int64_t pixel_begin,
                         int64_t pixel_end, float per_image, float mask_total,
                         float d_per_image, float* d_renders, float* d_mask);

}  // namespace face3d

#endif  // FACE3D_RENDERER_KERNELS_PHOTOMETRIC_CORE_H_
