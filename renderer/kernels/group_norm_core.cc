// CPU loops of group normalisation; the per-group arithmetic is in
// group_norm_core.h. Sums run per row of channels in float (the inner loops
// vectorise), flushed into double every kGroupNormChunk pixels, so that a
// large image's statistics do not lose precision.
#include "group_norm_core.h"

#include <algorithm>
#include <vector>

namespace face3d {
namespace {

// Per-channel sums of a(x, dy) and b(x, dy) over all pixels, in double.
template <typename Terms>
void ChannelSums(const GroupNormParams& p, const float* x, const float* dy,
                 Terms terms, double* sum_a, double* sum_b) {
  const int channels = p.channels;
  std::vector<float> part_a(channels), part_b(channels);
  std::fill(sum_a, sum_a + channels, 0.0);
  std::fill(sum_b, sum_b + channels, 0.0);
  for (int64_t begin = 0; begin < p.pixel_count; begin += kGroupNormChunk) {
    const int64_t end = std::min(p.pixel_count, begin + kGroupNormChunk);
    std::fill(part_a.begin(), part_a.end(), 0.0f);
    std::fill(part_b.begin(), part_b.end(), 0.0f);
    float* a = part_a.data();
    float* b = part_b.data();
    for (int64_t i = begin; i < end; ++i) {
      const float* xi = x + channels * i;
      const float* dyi = dy == nullptr ? nullptr : dy + channels * i;
      for (int c = 0; c < channels; ++c) terms(c, xi, dyi, a, b);
    }
    for (int c = 0; c < channels; ++c) {
      sum_a[c] += a[c];
      sum_b[c] += b[c];
    }
  }
}

}  // namespace

void GroupNormForward(const GroupNormParams& params, const float* x,
                      const float* gamma, const float* beta, float* y,
                      float* mean, float* rstd) {
  const int channels = params.channels;
  const int per_group = channels / params.groups;
  std::vector<double> sums(2 * channels);
  ChannelSums(params, x, nullptr,
              [](int c, const float* xi, const float*, float* a, float* b) {
                ForwardTerms(xi[c], a + c, b + c);
              },
              sums.data(), sums.data() + channels);
  const double count = static_cast<double>(params.pixel_count) * per_group;
  std::vector<float> scale(channels), shift(channels);
  for (int g = 0; g < params.groups; ++g) {
    double sum = 0.0, sum_squares = 0.0;
    for (int c = g * per_group; c < (g + 1) * per_group; ++c) {
      sum += sums[c];
      sum_squares += sums[channels + c];
    }
    GroupStatistics(sum, sum_squares, count, params.epsilon, mean + g, rstd + g);
    for (int c = g * per_group; c < (g + 1) * per_group; ++c) {
      ForwardAffine(mean[g], rstd[g], gamma[c], beta[c], &scale[c], &shift[c]);
    }
  }
  const float* s = scale.data();
  const float* t = shift.data();
  for (int64_t i = 0; i < params.pixel_count; ++i) {
    const float* xi = x + channels * i;
    float* yi = y + channels * i;
    for (int c = 0; c < channels; ++c) yi[c] = xi[c] * s[c] + t[c];
  }
}

void GroupNormBackward(const GroupNormParams& params, const float* x,
                       const float* gamma, const float* mean, const float* rstd,
                       const float* dy, float* dx, double* d_gamma,
                       double* d_beta) {
  const int channels = params.channels;
  const int per_group = channels / params.groups;
  // xhat = x a + b per channel.
  std::vector<float> a(channels), b(channels);
  for (int c = 0; c < channels; ++c) {
    const int g = c / per_group;
    XhatAffine(mean[g], rstd[g], &a[c], &b[c]);
  }
  const float* pa = a.data();
  const float* pb = b.data();
  // d_beta = sum dy, d_gamma = sum dy xhat (this image).
  ChannelSums(params, x, dy,
              [pa, pb](int c, const float* xi, const float* dyi, float* sa, float* sb) {
                BackwardTerms(xi[c], dyi[c], pa[c], pb[c], sa + c, sb + c);
              },
              d_gamma, d_beta);
  const double n = static_cast<double>(params.pixel_count) * per_group;
  std::vector<float> k_dy(channels), k_x(channels), k_1(channels);
  for (int g = 0; g < params.groups; ++g) {
    double s1 = 0.0, s2 = 0.0;
    for (int c = g * per_group; c < (g + 1) * per_group; ++c) {
      s1 += gamma[c] * d_beta[c];
      s2 += gamma[c] * d_gamma[c];
    }
    for (int c = g * per_group; c < (g + 1) * per_group; ++c) {
      InputGradCoefficients(gamma[c], mean[g], rstd[g], s1, s2, n, &k_dy[c],
                            &k_x[c], &k_1[c]);
    }
  }
  const float* kd = k_dy.data();
  const float* kx = k_x.data();
  const float* k1 = k_1.data();
  for (int64_t i = 0; i < params.pixel_count; ++i) {
    const float* xi = x + channels * i;
    const float* dyi = dy + channels * i;
    float* dxi = dx + channels * i;
    for (int c = 0; c < channels; ++c) dxi[c] = InputGrad(dyi[c], xi[c], kd[c], kx[c], k1[c]);
  }
}

}  // namespace face3d
