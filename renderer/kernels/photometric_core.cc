// CPU loops of the photometric loss; the arithmetic is in photometric_core.h.
//
// Colours (3 channels, the loss's one use) take 4-float vector loops, four
// pixels a step (GCC and Clang vector extensions: SSE on x86-64, NEON on
// arm64, lane by lane elsewhere): the per-pixel square root and division are
// most of the work, and one at a time they left the loop at about 3 and 5 ns a
// pixel (forward, gradient). Every lane does the scalar functions' operations
// in their order (the square root and division are correctly rounded in both),
// and the forward sums go lane by lane into the accumulators of ChunkSums, so
// the results are bit-identical to the scalar functions (and so to the CUDA
// twin). Other channel counts take the scalar functions.
#include "photometric_core.h"

#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

namespace face3d {
namespace {

typedef float Float4 __attribute__((vector_size(16)));
typedef double Double4 __attribute__((vector_size(32)));
typedef int32_t Int4 __attribute__((vector_size(16)));

// Lanes i, j, k, l of the concatenation (a, b), i.e. 0-3 pick from a, 4-7 from b.
#if defined(__clang__)
#define FACE3D_SHUFFLE(a, b, i, j, k, l) __builtin_shufflevector(a, b, i, j, k, l)
#else
#define FACE3D_SHUFFLE(a, b, i, j, k, l) __builtin_shuffle(a, b, Int4{i, j, k, l})
#endif

inline Float4 Sqrt4(Float4 x) {
#if defined(__SSE2__)
  return _mm_sqrt_ps(x);
#elif defined(__ARM_NEON) && defined(__aarch64__)
  return vsqrtq_f32(x);
#else
  return Float4{sqrtf(x[0]), sqrtf(x[1]), sqrtf(x[2]), sqrtf(x[3])};
#endif
}

inline Float4 Load4(const float* p) {
  Float4 r;
  std::memcpy(&r, p, sizeof(r));
  return r;
}

inline void Store4(Float4 v, float* p) { std::memcpy(p, &v, sizeof(v)); }

// Four RGB pixels, 12 floats, as three vectors of the interleaved values
// (r0 g0 b0 r1 | g1 b1 r2 g2 | b2 r3 g3 b3).
struct Rgb4 {
  Float4 v[3];
};

inline Rgb4 LoadRgb4(const float* p) { return {{Load4(p), Load4(p + 4), Load4(p + 8)}}; }

// The four pixels' sums of squares of `d`, ((r^2 + g^2) + b^2) as
// PixelDistance adds them (from 0: 0 + r^2 is r^2 exactly).
inline Float4 SumOfSquares4(const Rgb4& d) {
  const Float4 q0 = d.v[0] * d.v[0], q1 = d.v[1] * d.v[1], q2 = d.v[2] * d.v[2];
  const Float4 r = FACE3D_SHUFFLE(FACE3D_SHUFFLE(q0, q1, 0, 3, 6, 0), q2, 0, 1, 2, 5);
  const Float4 g = FACE3D_SHUFFLE(FACE3D_SHUFFLE(q0, q1, 1, 4, 7, 0), q2, 0, 1, 2, 6);
  const Float4 b = FACE3D_SHUFFLE(FACE3D_SHUFFLE(q0, q1, 2, 5, 0, 0), q2, 0, 1, 4, 7);
  return (r + g) + b;
}

// Renders minus images of four pixels (the sign PixelGradient uses; the
// squares are those of images minus renders).
inline Rgb4 Difference4(const float* image, const float* render) {
  const Rgb4 i = LoadRgb4(image), r = LoadRgb4(render);
  return {{r.v[0] - i.v[0], r.v[1] - i.v[1], r.v[2] - i.v[2]}};
}

void ChunkSumsRgb(const PhotometricParams& p, int64_t chunk, double* masked_distance,
                  double* mask_sum) {
  int64_t begin, end;
  ChunkPixels(p.pixel_count, chunk, &begin, &end);
  const Float4 epsilon = {p.epsilon, p.epsilon, p.epsilon, p.epsilon};
  Double4 s = {0.0, 0.0, 0.0, 0.0}, t = {0.0, 0.0, 0.0, 0.0};
  int64_t i = begin;
  for (; i + kPhotometricLanes <= end; i += kPhotometricLanes) {
    const Float4 dist = Sqrt4(SumOfSquares4(Difference4(p.images + 3 * i, p.renders + 3 * i)) +
                              epsilon);
    const Float4 m = Load4(p.mask + i);
    s += __builtin_convertvector(m * dist, Double4);
    t += __builtin_convertvector(m, Double4);
  }
  double s_lanes[kPhotometricLanes] = {s[0], s[1], s[2], s[3]};
  double t_lanes[kPhotometricLanes] = {t[0], t[1], t[2], t[3]};
  // The remainder (the image's last chunk only), into the same accumulators.
  for (int lane = 0; i < end; ++i, ++lane) {
    const float m = p.mask[i];
    s_lanes[lane] += static_cast<double>(
        m * PixelDistance(p.images + 3 * i, p.renders + 3 * i, 3, p.epsilon));
    t_lanes[lane] += m;
  }
  *masked_distance = AddLanes(s_lanes);
  *mask_sum = AddLanes(t_lanes);
}

void GradientRgb(const PhotometricParams& p, int64_t begin, int64_t end, float scale,
                 float offset, float* d_renders, float* d_mask) {
  const Float4 epsilon = {p.epsilon, p.epsilon, p.epsilon, p.epsilon};
  const Float4 scales = {scale, scale, scale, scale};
  const Float4 offsets = {offset, offset, offset, offset};
  int64_t i = begin;
  for (; i + kPhotometricLanes <= end; i += kPhotometricLanes) {
    const Rgb4 d = Difference4(p.images + 3 * i, p.renders + 3 * i);
    const Float4 dist = Sqrt4(SumOfSquares4(d) + epsilon);
    const Float4 k = scales * Load4(p.mask + i) / dist;
    // k per value: (k0 k0 k0 k1 | k1 k1 k2 k2 | k2 k3 k3 k3).
    float* out = d_renders + 3 * i;
    Store4(FACE3D_SHUFFLE(k, k, 0, 0, 0, 1) * d.v[0], out);
    Store4(FACE3D_SHUFFLE(k, k, 1, 1, 2, 2) * d.v[1], out + 4);
    Store4(FACE3D_SHUFFLE(k, k, 2, 3, 3, 3) * d.v[2], out + 8);
    Store4(scales * (dist - offsets), d_mask + i);
  }
  for (; i < end; ++i) {
    PixelGradient(p.images + 3 * i, p.renders + 3 * i, p.mask[i], 3, p.epsilon, scale, offset,
                  d_renders + 3 * i, d_mask + i);
  }
}

}  // namespace

void PhotometricChunkSums(const PhotometricParams& params, int64_t chunk_begin,
                          int64_t chunk_end, double* sums) {
  for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
    if (params.channels == 3) {
      ChunkSumsRgb(params, chunk, sums + 2 * chunk, sums + 2 * chunk + 1);
    } else {
      ChunkSums(params, chunk, sums + 2 * chunk, sums + 2 * chunk + 1);
    }
  }
}

void PhotometricGradient(const PhotometricParams& params, int64_t pixel_begin,
                         int64_t pixel_end, float per_image, float mask_total,
                         float d_per_image, float* d_renders, float* d_mask) {
  float scale, offset;
  ImageGradientFactors(per_image, mask_total, d_per_image, &scale, &offset);
  if (params.channels == 3) {
    GradientRgb(params, pixel_begin, pixel_end, scale, offset, d_renders, d_mask);
    return;
  }
  for (int64_t i = pixel_begin; i < pixel_end; ++i) {
    const int64_t c = params.channels;
    PixelGradient(params.images + c * i, params.renders + c * i, params.mask[i], c,
                  params.epsilon, scale, offset, d_renders + c * i, d_mask + i);
  }
}

}  // namespace face3d
