// Group normalisation of NHWC activations: the plain C++ core of the
// FusedGroupNorm op and its gradient (the coarse encoder's normalisation).
//
// No TensorFlow in here. For one image x [pixel_count, channels] (pixels
// row-major, channels last) split into `groups` groups of
// channels / groups consecutive channels:
//   mean_g, var_g over the group's pixel_count * channels / groups values,
//   rstd_g = 1 / sqrt(var_g + epsilon),
//   y = (x - mean_g) rstd_g gamma_c + beta_c.
// Both directions are two passes over the image, each an affine map per
// channel whose coefficients come from per-group sums (the inline functions
// below, shared with the CUDA twin, group_norm_cuda.cu). Per-channel sums run
// in float over chunks of kGroupNormChunk pixels, in pixel order, flushed
// into double in chunk order: the CUDA twin sums in the same order (one
// thread per chunk and channel, then one per channel), so its results equal
// the CPU's bit for bit.
#ifndef FACE3D_RENDERER_KERNELS_GROUP_NORM_CORE_H_
#define FACE3D_RENDERER_KERNELS_GROUP_NORM_CORE_H_

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

struct GroupNormParams {
  int64_t pixel_count;  // height * width of one image
  int channels;
  int groups;           // divides channels
  float epsilon;
};

constexpr int64_t kGroupNormChunk = 64;

// One pixel's terms of the forward sums: a += x, b += x^2.
FACE3D_HOST_DEVICE inline void ForwardTerms(float x, float* a, float* b) {
  *a += x;
  *b += x * x;
}

// One pixel's terms of the backward sums, xhat = x xhat_scale + xhat_shift:
// a += dy xhat (towards d_gamma), b += dy (towards d_beta).
FACE3D_HOST_DEVICE inline void BackwardTerms(float x, float dy, float xhat_scale,
                                             float xhat_shift, float* a, float* b) {
  *a += dy * (x * xhat_scale + xhat_shift);
  *b += dy;
}

// The forward affine map of one channel: y = x scale + shift.
FACE3D_HOST_DEVICE inline void ForwardAffine(float mean, float rstd, float gamma,
                                             float beta, float* scale, float* shift) {
  *scale = rstd * gamma;
  *shift = beta - mean * *scale;
}

// xhat = (x - mean) rstd as x xhat_scale + xhat_shift.
FACE3D_HOST_DEVICE inline void XhatAffine(float mean, float rstd, float* xhat_scale,
                                          float* xhat_shift) {
  *xhat_scale = rstd;
  *xhat_shift = -mean * rstd;
}

// dx of one value from its channel's coefficients (InputGradCoefficients).
FACE3D_HOST_DEVICE inline float InputGrad(float dy, float x, float k_dy, float k_x,
                                          float k_1) {
  return dy * k_dy + x * k_x + k_1;
}

// From a group's sum and sum of squares over `count` values: its mean and
// 1 / sqrt(variance + epsilon) (variance clamped at 0 against rounding).
FACE3D_HOST_DEVICE inline void GroupStatistics(double sum, double sum_squares,
                                               double count, float epsilon,
                                               float* mean, float* rstd) {
  const double m = sum / count;
  double variance = sum_squares / count - m * m;
  variance = variance > 0.0 ? variance : 0.0;
  *mean = static_cast<float>(m);
  *rstd = static_cast<float>(1.0 / sqrt(variance + epsilon));
}

// dx = rstd (gamma dy - s1 / n - xhat s2 / n) with xhat = (x - mean) rstd,
// s1 = sum over the group of gamma dy, s2 = sum of gamma dy xhat, n the
// group's size: as dx = k_dy dy + k_x x + k_1, per channel.
FACE3D_HOST_DEVICE inline void InputGradCoefficients(float gamma, float mean,
                                                     float rstd, double s1,
                                                     double s2, double n,
                                                     float* k_dy, float* k_x,
                                                     float* k_1) {
  const double r = rstd;
  *k_dy = static_cast<float>(r * gamma);
  *k_x = static_cast<float>(-r * r * s2 / n);
  *k_1 = static_cast<float>(-r * s1 / n + mean * r * r * s2 / n);
}

// y [pixel_count, channels] of one image; writes mean and rstd [groups].
void GroupNormForward(const GroupNormParams& params, const float* x,
                      const float* gamma, const float* beta, float* y,
                      float* mean, float* rstd);

// The gradient of one image given dy: dx [pixel_count, channels], and this
// image's parts of d_gamma and d_beta [channels] (overwritten; the caller sums
// them over the batch). mean and rstd are the forward pass's.
void GroupNormBackward(const GroupNormParams& params, const float* x,
                       const float* gamma, const float* mean, const float* rstd,
                       const float* dy, float* dx, double* d_gamma,
                       double* d_beta);

}  // namespace face3d

#endif  // FACE3D_RENDERER_KERNELS_GROUP_NORM_CORE_H_
