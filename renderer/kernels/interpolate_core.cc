// CPU loops of attribute interpolation; the arithmetic is in interpolate_core.h.
#include "interpolate_core.h"

#include <algorithm>

namespace face3d {
namespace {

// The three attribute rows of a pixel's triangle.
struct Corners {
  const float* a[3];
};

inline Corners PixelCorners(const InterpolateParams& p, int64_t pixel) {
  const int32_t* t = p.triangles + 3 * static_cast<int64_t>(p.triangle_ids[pixel]);
  const int64_t c = p.channels;
  return {{p.attributes + c * t[0], p.attributes + c * t[1],
           p.attributes + c * t[2]}};
}

}  // namespace

void InterpolatePixels(const InterpolateParams& params, int64_t pixel_begin,
                       int64_t pixel_end, float* output) {
  const int channels = params.channels;
  if (channels == 3) {
    // Colours and normals, the common case: a constant trip count unrolls.
    for (int64_t i = pixel_begin; i < pixel_end; ++i) {
      const Corners k = PixelCorners(params, i);
      InterpolatePixel(k.a[0], k.a[1], k.a[2], params.barycentrics + 3 * i, 3,
                       output + 3 * i);
    }
    return;
  }
  for (int64_t i = pixel_begin; i < pixel_end; ++i) {
    const Corners k = PixelCorners(params, i);
    InterpolatePixel(k.a[0], k.a[1], k.a[2], params.barycentrics + 3 * i,
                     channels, output + channels * i);
  }
}

namespace {

// kChannels > 0 fixes the channel count at compile time (the loops unroll);
// 0 reads it from params.
template <int kChannels>
void InterpolateGradientLoop(const InterpolateParams& params,
                             const float* d_output, float* d_barycentrics,
                             float* d_attributes) {
  const int64_t channels = kChannels > 0 ? kChannels : params.channels;
  std::fill(d_attributes, d_attributes + params.vertex_count * channels, 0.0f);
  for (int64_t i = 0; i < params.pixel_count; ++i) {
    const Corners k = PixelCorners(params, i);
    const float* b = params.barycentrics + 3 * i;
    const float* d_out = d_output + channels * i;
    InterpolatePixelBarycentricGrad(k.a[0], k.a[1], k.a[2], d_out,
                                    static_cast<int>(channels),
                                    d_barycentrics + 3 * i);
    if (IsBackgroundPixel(b)) continue;
    const int32_t* t = params.triangles + 3 * static_cast<int64_t>(params.triangle_ids[i]);
    for (int corner = 0; corner < 3; ++corner) {
      float* d_a = d_attributes + channels * t[corner];
      for (int64_t c = 0; c < channels; ++c) d_a[c] += b[corner] * d_out[c];
    }
  }
}

}  // namespace

void InterpolateGradient(const InterpolateParams& params,
                         const float* d_output, float* d_barycentrics,
                         float* d_attributes) {
  if (params.channels == 3) {
    InterpolateGradientLoop<3>(params, d_output, d_barycentrics, d_attributes);
  } else {
    InterpolateGradientLoop<0>(params, d_output, d_barycentrics, d_attributes);
  }
}

int64_t FindInvalidTriangleId(const int32_t* triangle_ids, int64_t count,
                              int64_t triangle_count) {
  // A branch-free pass (it vectorises) first; the culprit is looked up only
  // when there is one.
  bool any_bad = false;
  for (int64_t i = 0; i < count; ++i) {
    any_bad |= static_cast<uint32_t>(triangle_ids[i]) >=
               static_cast<uint64_t>(triangle_count);
  }
  if (!any_bad) return -1;
  for (int64_t i = 0; i < count; ++i) {
    if (triangle_ids[i] < 0 || triangle_ids[i] >= triangle_count) return i;
  }
  return -1;
}

}  // namespace face3d
