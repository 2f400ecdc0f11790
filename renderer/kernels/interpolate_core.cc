// CPU loops of attribute interpolation; the arithmetic is in interpolate_core.h.
//
// Three channels (colours, normals), the common case, run four-wide: each
// attribute row is one four-float vector (GCC and Clang vector extensions:
// SSE on x86-64, NEON on ARM, plain code elsewhere) whose lanes 0-2 do the
// header's per-channel operations in their order, so the outputs are those of
// the scalar loops bit for bit; lane 3 is never read out.
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

typedef float Float4 __attribute__((vector_size(16)));

inline Float4 Load4(const float* p) {
  Float4 v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

inline void Store4(float* p, Float4 v) { __builtin_memcpy(p, &v, sizeof(v)); }

// Row v of three-channel attributes as four floats: lanes 0-2 the row, lane 3
// the next row's first channel (or 0 for the last row, not to read past the
// mesh).
inline Float4 AttributeRow3(const float* attributes, int64_t vertex_count, int32_t v) {
  const float* row = attributes + 3 * static_cast<int64_t>(v);
  if (v + 1 < vertex_count) return Load4(row);
  return Float4{row[0], row[1], row[2], 0.0f};
}

}  // namespace

void InterpolatePixels(const InterpolateParams& params, int64_t pixel_begin,
                       int64_t pixel_end, float* output) {
  const int channels = params.channels;
  if (channels == 3) {
    // Colours and normals, the common case: four-wide, lanes 0-2 the
    // operations of InterpolatePixel in its order.
    for (int64_t i = pixel_begin; i < pixel_end; ++i) {
      const int32_t* t = params.triangles + 3 * static_cast<int64_t>(params.triangle_ids[i]);
      const float* b = params.barycentrics + 3 * i;
      const Float4 a0 = AttributeRow3(params.attributes, params.vertex_count, t[0]);
      const Float4 a1 = AttributeRow3(params.attributes, params.vertex_count, t[1]);
      const Float4 a2 = AttributeRow3(params.attributes, params.vertex_count, t[2]);
      const Float4 out = b[0] * a0 + b[1] * a1 + b[2] * a2;
      float* o = output + 3 * i;
      o[0] = out[0];
      o[1] = out[1];
      o[2] = out[2];
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

// Three channels, four-wide: lanes 0-2 do the operations of
// InterpolateGradientLoop<3> in its order; d_attributes4 [vertex_count, 4]
// collects the attribute gradient in four-float rows (lane 3 unused).
void InterpolateGradient3(const InterpolateParams& params, const float* d_output,
                          float* d_barycentrics, float* d_attributes, float* d_attributes4) {
  const int64_t vertex_count = params.vertex_count;
  std::fill(d_attributes4, d_attributes4 + 4 * vertex_count, 0.0f);
  const int64_t pixel_count = params.pixel_count;
  constexpr int kChunk = 256;
  int32_t corners[kChunk][3];
  for (int64_t begin = 0; begin < pixel_count; begin += kChunk) {
    const int count = static_cast<int>(std::min<int64_t>(kChunk, pixel_count - begin));
    // The chunk's vertex indices first: independent loads, that overlap.
    for (int j = 0; j < count; ++j) {
      const int32_t* t = params.triangles + 3 * static_cast<int64_t>(params.triangle_ids[begin + j]);
      corners[j][0] = t[0];
      corners[j][1] = t[1];
      corners[j][2] = t[2];
    }
    for (int j = 0; j < count; ++j) {
      const int64_t i = begin + j;
      const int32_t* t = corners[j];
      const float* b = params.barycentrics + 3 * i;
      const float* d_out = d_output + 3 * i;
      const Float4 d = {d_out[0], d_out[1], d_out[2], 0.0f};
      const Float4 p0 = d * AttributeRow3(params.attributes, vertex_count, t[0]);
      const Float4 p1 = d * AttributeRow3(params.attributes, vertex_count, t[1]);
      const Float4 p2 = d * AttributeRow3(params.attributes, vertex_count, t[2]);
      // s_k = ((0 + p_k[0]) + p_k[1]) + p_k[2], as InterpolatePixelBarycentricGrad.
      float* d_b = d_barycentrics + 3 * i;
      d_b[0] = ((0.0f + p0[0]) + p0[1]) + p0[2];
      d_b[1] = ((0.0f + p1[0]) + p1[1]) + p1[2];
      d_b[2] = ((0.0f + p2[0]) + p2[1]) + p2[2];
      if (IsBackgroundPixel(b)) continue;
      for (int corner = 0; corner < 3; ++corner) {
        float* row = d_attributes4 + 4 * t[corner];
        Store4(row, Load4(row) + b[corner] * d);
      }
    }
  }
  for (int64_t v = 0; v < vertex_count; ++v) {
    for (int c = 0; c < 3; ++c) d_attributes[3 * v + c] = d_attributes4[4 * v + c];
  }
}

}  // namespace

void InterpolateGradient(const InterpolateParams& params,
                         const float* d_output, float* d_barycentrics,
                         float* d_attributes, float* scratch) {
  if (params.channels == 3) {
    InterpolateGradient3(params, d_output, d_barycentrics, d_attributes, scratch);
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
