// Plain C++ rasterization core; see rasterize_core.h for the conventions.
//
// Arithmetic notes. Edge functions are evaluated in float, in coordinates
// relative to the pixel centre, as a difference of two products that swap when
// the edge's endpoints swap: the functions of an edge shared by two triangles
// are exact negatives of each other (the watertightness argument), provided the
// compiler does not contract a * b - c into fused multiply-adds: build.py
// passes -ffp-contract=off. The code favours few instructions per
// triangle, because dense meshes (a face at 224 x 224 has more triangles than
// pixels) spend most of their time on triangles that cover no pixel centre.
#include "rasterize_core.h"
#include "simd_dispatch.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

// On x86-64 with GCC or Clang, the projection, the forward pass's group loop,
// the gradient's pixel loop and its chain through the projection also have
// 8-wide AVX2 versions: functions compiled for AVX2 by the target attribute
// (not a -m flag, so the library still loads on any x86-64), taken at run
// time where the CPU has AVX2 (UseAvx2). They do lane by lane the operations
// of the SSE2 code in the same order, so the outputs are the same bit for
// bit on either path; FMA is not enabled for them, so nothing can be
// contracted whatever -ffp-contract says.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FACE3D_AVX2_PATH 1
#define FACE3D_AVX2 __attribute__((target("avx2")))
#include <immintrin.h>
#endif

namespace face3d {
namespace {

// Four floats or ints (GCC and Clang vector extensions: SSE on x86-64, NEON on
// ARM, plain code elsewhere): a ProjectedVertex (x, y, z, inv_w), the three
// vertices of a triangle lane by lane, or a 2x2 block of pixels (lane =
// 2 row + column).
typedef float Float4 __attribute__((vector_size(16)));
typedef int32_t Int4 __attribute__((vector_size(16)));
constexpr Float4 kBlockX = {0.5f, 1.5f, 0.5f, 1.5f};
constexpr Float4 kBlockY = {0.5f, 0.5f, 1.5f, 1.5f};

// Added to a triangle's (x_min, y_min, x_max, y_max) to get the first and
// one-past-last candidate pixel, (c0, r0, c1, r1), by flooring.
constexpr Int4 kCountLimits = {0, 0, 2, 2};
constexpr Int4 kTwo = {2, 2, 2, 2};
// Lanes of the 2x2 block that are candidates, indexed by (two columns) +
// 2 (two rows).
constexpr unsigned kBlockLanes[4] = {0x1u, 0x3u, 0x5u, 0xFu};
constexpr float kInfinity = std::numeric_limits<float>::infinity();

constexpr Float4 kBoxOffset = {0.5f - kBoundingBoxSlack, 0.5f - kBoundingBoxSlack,
                               0.5f + kBoundingBoxSlack, 0.5f + kBoundingBoxSlack};

// Lanes i, j, k, l of the concatenation (a, b), i.e. 0-3 pick from a, 4-7 from b.
#if defined(__clang__)
#define FACE3D_SHUFFLE(a, b, i, j, k, l) __builtin_shufflevector(a, b, i, j, k, l)
#else
#define FACE3D_SHUFFLE(a, b, i, j, k, l) __builtin_shuffle(a, b, Int4{i, j, k, l})
#endif

// Bit p set where lane p of `lanes` is true (-1).
inline unsigned LaneMask(Int4 lanes) {
#if defined(__SSE2__)
  return static_cast<unsigned>(_mm_movemask_ps(reinterpret_cast<__m128>(lanes)));
#else
  return (lanes[0] & 1u) | (lanes[1] & 2u) | (lanes[2] & 4u) | (lanes[3] & 8u);
#endif
}

// Transposes four 4-float vectors in place: lane j of r[i] becomes lane i of r[j].
inline void Transpose4(Float4 r[4]) {
  const Float4 t0 = FACE3D_SHUFFLE(r[0], r[1], 0, 4, 1, 5), t1 = FACE3D_SHUFFLE(r[0], r[1], 2, 6, 3, 7);
  const Float4 t2 = FACE3D_SHUFFLE(r[2], r[3], 0, 4, 1, 5), t3 = FACE3D_SHUFFLE(r[2], r[3], 2, 6, 3, 7);
  r[0] = FACE3D_SHUFFLE(t0, t2, 0, 1, 4, 5);
  r[1] = FACE3D_SHUFFLE(t0, t2, 2, 3, 6, 7);
  r[2] = FACE3D_SHUFFLE(t1, t3, 0, 1, 4, 5);
  r[3] = FACE3D_SHUFFLE(t1, t3, 2, 3, 6, 7);
}

// Transposes the 4 x 4 bit matrix x (bit 4 i + j) to bit 4 j + i.
inline unsigned TransposeNibbles(unsigned x) {
  unsigned t = (x ^ (x >> 3)) & 0x0A0Au;
  x ^= t ^ (t << 3);
  t = (x ^ (x >> 6)) & 0x00CCu;
  x ^= t ^ (t << 6);
  return x;
}

inline Float4 LoadVertex(const ProjectedVertex* v) {
  Float4 r;
  std::memcpy(&r, v, sizeof(r));
  return r;
}

// Adds `value` to the four floats at `sum` (no alignment needed).
inline void AddToVertex(Float4 value, float* sum) {
  Float4 r;
  std::memcpy(&r, sum, sizeof(r));
  r += value;
  std::memcpy(sum, &r, sizeof(r));
}

#if defined(__SSE2__)
inline Float4 Min4(Float4 a, Float4 b) { return _mm_min_ps(a, b); }
inline Float4 Max4(Float4 a, Float4 b) { return _mm_max_ps(a, b); }
#else
inline Float4 Min4(Float4 a, Float4 b) { return a < b ? a : b; }
inline Float4 Max4(Float4 a, Float4 b) { return a > b ? a : b; }
#endif

// Slow path: rasterizes one triangle that the fast path cannot take (a vertex
// at or behind the eye, or outside its range), testing the pixels of the
// triangle's clipped bounding box in rows [row_begin, row_end), each row
// only in the span its edge functions allow.
void RasterizeHomogeneousTriangle(const float* clip, const int32_t* ids,
                                  int32_t triangle_id, int width, int height,
                                  int row_begin, int row_end,
                                  bool cull_backfaces, int32_t* triangle_ids,
                                  float* mask, float* barycentrics,
                                  float* depth) {
  HomogeneousSetup h;
  if (!SetupHomogeneousTriangle(clip, ids, cull_backfaces, &h)) return;
  int c0, r0, c1, r1;
  if (!HomogeneousBounds(h.s, width, height, row_begin, row_end, &c0, &r0, &c1, &r1)) return;
  for (int row = r0; row < r1; ++row) {
    const double py = PixelNdcY(row, height);
    int first, last;
    HomogeneousRowSpan(h, py, width, c0, c1, &first, &last);
    for (int col = first; col < last; ++col) {
      float z, b[3];
      if (!HomogeneousPixel(h, PixelNdcX(col, width), py, &z, b)) continue;
      const int64_t pixel = static_cast<int64_t>(row) * width + col;
      if (z > depth[pixel]) continue;
      depth[pixel] = z;
      triangle_ids[pixel] = triangle_id;
      mask[pixel] = 1.0f;
      for (int i = 0; i < 3; ++i) barycentrics[3 * pixel + i] = b[i];
    }
  }
}

// Slow-path gradient of one pixel (HomogeneousPixelGradient), added to d_clip.
void AccumulateHomogeneousPixel(const float* clip, const int32_t* ids,
                                const float g[3], double g_depth, double px,
                                double py, float* d_clip) {
  float d[3][4];
  if (!HomogeneousPixelGradient(clip, ids, g, g_depth, px, py, d)) return;
  for (int j = 0; j < 3; ++j) {
    float* out = d_clip + 4 * static_cast<int64_t>(ids[j]);
    for (int k = 0; k < 4; ++k) out[k] += d[j][k];
  }
}

// Depth-tests pixel `pixel` against a fast-path triangle whose edge functions
// there are e[0..2] (all of one sign) and, if it is nearer, writes it.
inline void ShadePixel(const float e[3], const ProjectedVertex* const v[3],
                       int32_t triangle_id, int64_t pixel,
                       int32_t* triangle_ids, float* mask,
                       float* barycentrics, float* depth) {
  float z;
  if (!FastDepth(e, v, &z)) return;
  if (z > depth[pixel]) return;
  depth[pixel] = z;
  triangle_ids[pixel] = triangle_id;
  mask[pixel] = 1.0f;
  FastBarycentrics(e, v, barycentrics + 3 * pixel);
}

#if defined(FACE3D_AVX2_PATH)
// Whether to take the AVX2 code (8-wide versions of the projection, the
// forward pass's group loop, the gradient's pixel loop and the chain through
// the projection): simd_dispatch.h's one run-time choice, shared with the
// vertex ops (the CPU has AVX2 and FACE3D_RASTERIZER_NO_AVX2 does not turn it off).
inline bool UseAvx2() { return UseAvx2Loops(); }

// Four floats from a in the low half of an 8-float vector, four from b in
// the high half (no alignment needed).
FACE3D_AVX2 inline __m256 LoadFloat4Pair(const float* a, const float* b) {
  return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(a)), _mm_loadu_ps(b), 1);
}

// Vertex a in the low half of an 8-float vector, b in the high half.
FACE3D_AVX2 inline __m256 LoadVertexPair(const ProjectedVertex* a, const ProjectedVertex* b) {
  return LoadFloat4Pair(&a->x, &b->x);
}

// Transposes four 8-float vectors r[0..3] in place, within each 128-bit half:
// afterwards r[j] holds, in its low half, lane j of the four inputs and, in
// its high half, lane 4 + j.
FACE3D_AVX2 inline void Transpose4x2(__m256 r[4]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  r[0] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  r[1] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  r[2] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  r[3] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
}

// Lanes where |value| < bound (false for NaN).
FACE3D_AVX2 inline __m256 AbsBelow(__m256 value, __m256 no_sign, __m256 bound) {
  return _mm256_cmp_ps(_mm256_and_ps(value, no_sign), bound, _CMP_LT_OQ);
}

// ProjectVertices for vertices [0, vertex_count - vertex_count % 8) in
// 8-float vectors, lane k = vertex v + k (transposed in and out): lane by
// lane the same operations in the same order as ProjectVertices' 4-float
// vectors (lanes 0-2 there become x, y and z here; lane 3 is q). Returns the
// first vertex not projected.
FACE3D_AVX2 int64_t ProjectVerticesAvx2(const float* clip, int64_t vertex_count, float half_width,
                                        float half_height, ProjectedVertex* projected) {
  const __m256 one = _mm256_set1_ps(1.0f), minus_one = _mm256_set1_ps(-1.0f);
  const __m256 zero = _mm256_setzero_ps();
  const __m256 x_scale = _mm256_set1_ps(half_width), y_scale = _mm256_set1_ps(-half_height);
  const __m256 min_inv_w = _mm256_set1_ps(kMinFastInvW), max_inv_w = _mm256_set1_ps(kMaxFastInvW);
  const __m256 limit = _mm256_set1_ps(kMaxPixelCoordinate), infinity = _mm256_set1_ps(kInfinity);
  const __m256 no_sign = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  int64_t v = 0;
  for (; v + 8 <= vertex_count; v += 8) {
    __m256 c[4];
    for (int k = 0; k < 4; ++k) c[k] = LoadFloat4Pair(clip + 4 * (v + k), clip + 4 * (v + k + 4));
    Transpose4x2(c);
    const __m256 q = _mm256_div_ps(one, c[3]);
    __m256 p[4] = {_mm256_mul_ps(_mm256_add_ps(_mm256_mul_ps(c[0], q), one), x_scale),
                   _mm256_mul_ps(_mm256_add_ps(_mm256_mul_ps(c[1], q), minus_one), y_scale),
                   _mm256_mul_ps(_mm256_add_ps(_mm256_mul_ps(c[2], q), zero), one), q};
    __m256 fast = _mm256_and_ps(_mm256_cmp_ps(q, min_inv_w, _CMP_GE_OQ), _mm256_cmp_ps(q, max_inv_w, _CMP_LE_OQ));
    for (int k = 0; k < 4; ++k) fast = _mm256_and_ps(fast, AbsBelow(c[k], no_sign, infinity));
    fast = _mm256_and_ps(fast, _mm256_and_ps(AbsBelow(p[0], no_sign, limit), AbsBelow(p[1], no_sign, limit)));
    fast = _mm256_and_ps(fast, _mm256_and_ps(AbsBelow(p[2], no_sign, infinity), AbsBelow(q, no_sign, infinity)));
    p[0] = _mm256_blendv_ps(infinity, p[0], fast);
    p[1] = _mm256_blendv_ps(infinity, p[1], fast);
    Transpose4x2(p);
    for (int k = 0; k < 4; ++k) {
      _mm_storeu_ps(&projected[v + k].x, _mm256_castps256_ps128(p[k]));
      _mm_storeu_ps(&projected[v + k + 4].x, _mm256_extractf128_ps(p[k], 1));
    }
  }
  return v;
}

// FinishGradient's one-band loop for vertices [v, vertex_end) while eight
// remain, in 8-float vectors (lane k = vertex v + k): lane by lane the same
// operations in the same order as its 4-float loop. Returns the first vertex
// not done.
FACE3D_AVX2 int64_t FinishGradientAvx2(const float* clip, const float* d_projected, int64_t v,
                                       int64_t vertex_end, float half_width, float half_height,
                                       float* d_clip) {
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
  const __m256 x_scale = _mm256_set1_ps(half_width);
  const __m256 y_scale = _mm256_sub_ps(zero, _mm256_set1_ps(half_height));
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (; v + 8 <= vertex_end; v += 8) {
    __m256 d[4], c[4];
    for (int k = 0; k < 4; ++k) {
      d[k] = LoadFloat4Pair(d_projected + 4 * (v + k), d_projected + 4 * (v + k + 4));
      c[k] = LoadFloat4Pair(clip + 4 * (v + k), clip + 4 * (v + k + 4));
    }
    Transpose4x2(d);
    Transpose4x2(c);
    __m256 nonzero = _mm256_cmp_ps(d[0], zero, _CMP_NEQ_UQ);
    for (int k = 1; k < 4; ++k) nonzero = _mm256_or_ps(nonzero, _mm256_cmp_ps(d[k], zero, _CMP_NEQ_UQ));
    const __m256 q = _mm256_div_ps(one, c[3]);
    const __m256 d_q = _mm256_add_ps(
        _mm256_add_ps(_mm256_add_ps(d[3], _mm256_mul_ps(d[0], _mm256_mul_ps(c[0], x_scale))),
                      _mm256_mul_ps(d[1], _mm256_mul_ps(c[1], y_scale))),
        _mm256_mul_ps(d[2], _mm256_mul_ps(c[2], one)));
    __m256 out[4] = {_mm256_mul_ps(_mm256_mul_ps(d[0], x_scale), q),
                     _mm256_mul_ps(_mm256_mul_ps(d[1], y_scale), q),
                     _mm256_mul_ps(_mm256_mul_ps(d[2], one), q),
                     _mm256_mul_ps(_mm256_mul_ps(_mm256_xor_ps(d_q, sign), q), q)};
    for (int k = 0; k < 4; ++k) out[k] = _mm256_and_ps(out[k], nonzero);
    Transpose4x2(out);
    for (int k = 0; k < 4; ++k) {
      _mm_storeu_ps(d_clip + 4 * (v + k), _mm256_castps256_ps128(out[k]));
      _mm_storeu_ps(d_clip + 4 * (v + k + 4), _mm256_extractf128_ps(out[k], 1));
    }
  }
  return v;
}
#endif  // FACE3D_AVX2_PATH

}  // namespace

int64_t FindInvalidTriangle(const int32_t* triangles, int64_t triangle_count,
                            int64_t vertex_count) {
  for (int64_t t = 0; t < triangle_count; ++t) {
    for (int i = 0; i < 3; ++i) {
      const int32_t v = triangles[3 * t + i];
      if (v < 0 || v >= vertex_count) return t;
    }
  }
  return -1;
}

void ProjectVertices(const float* clip, int64_t vertex_count, int width,
                     int height, ProjectedVertex* projected) {
  // ProjectVertex (rasterize_pixel.h) lane by lane: x = (x q + 1) W / 2,
  // y = (1 - y q) H / 2 (as (y q - 1) (-H / 2), the same value), z = z q,
  // then inv_w = q = 1 / w.
  const float half_width = 0.5f * width, half_height = 0.5f * height;
  const Float4 shift = {1.0f, -1.0f, 0.0f, 0.0f};
  const Float4 scale = {half_width, -half_height, 1.0f, 0.0f};
  // Beyond kMaxPixelCoordinate, products of pixel coordinates could overflow
  // float in the fast path's edge functions.
  const Float4 limit = {kMaxPixelCoordinate, kMaxPixelCoordinate, kInfinity, kInfinity};
  const Float4 infinity = {kInfinity, kInfinity, kInfinity, kInfinity};
  const Int4 no_sign = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff};
  int64_t v = 0;
#if defined(FACE3D_AVX2_PATH)
  if (UseAvx2()) v = ProjectVerticesAvx2(clip, vertex_count, half_width, half_height, projected);
#endif
  for (; v < vertex_count; ++v) {
    Float4 c;
    std::memcpy(&c, clip + 4 * v, sizeof(c));
    const float q = 1.0f / c[3];
    Float4 p = (c * q + shift) * scale;
    p[3] = q;
    const Float4 abs_c = reinterpret_cast<Float4>(reinterpret_cast<Int4>(c) & no_sign);
    const Float4 abs_p = reinterpret_cast<Float4>(reinterpret_cast<Int4>(p) & no_sign);
    if (!(q >= kMinFastInvW && q <= kMaxFastInvW &&
          LaneMask((abs_c < infinity) & (abs_p < limit)) == 0xFu)) {
      p[0] = p[1] = kInfinity;
    }
    std::memcpy(projected + v, &p, sizeof(p));
  }
}

namespace {

// RasterizeRows's arguments, shared by its per-triangle path and its group
// loops.
struct RowsJob {
  const float* clip;
  const ProjectedVertex* projected;
  const int32_t* triangles;
  int width, height, row_begin, row_end;
  bool cull_backfaces;
  int32_t* triangle_ids;
  float* mask;
  float* barycentrics;
  float* depth;
};

// Writes pixel `pixel` of triangle `id`, whose depth z and barycentrics b0-b2
// there were computed as FastDepth and FastBarycentrics do (lane by lane), if
// it is nearer: ShadePixel's depth test and stores.
inline void WritePixel(const RowsJob& job, int32_t id, int64_t pixel, float z, float b0,
                       float b1, float b2) {
  if (z > job.depth[pixel]) return;
  job.depth[pixel] = z;
  job.triangle_ids[pixel] = id;
  job.mask[pixel] = 1.0f;
  float* b = job.barycentrics + 3 * pixel;
  b[0] = b0;
  b[1] = b1;
  b[2] = b2;
}

// One triangle, any size or kind.
void RasterizeOne(const RowsJob& job, int64_t t) {
  const ProjectedVertex* projected = job.projected;
  const int width = job.width;
  const Float4 box_low = {0.0f, static_cast<float>(job.row_begin), 0.0f, static_cast<float>(job.row_begin)};
  const Float4 box_high = {static_cast<float>(width), static_cast<float>(job.row_end),
                           static_cast<float>(width), static_cast<float>(job.row_end)};
  const int32_t* ids = job.triangles + 3 * t;
  const ProjectedVertex* const v[3] = {projected + ids[0], projected + ids[1],
                                       projected + ids[2]};
  // Candidate pixels: columns [c0, c1) and rows [r0, r1) of the centres
  // that may lie in the bounding box, with (c0, r0, c1, r1) =
  // floor(clamp((x_min, y_min, x_max, y_max) + 0.5 -+ slack)), all four at
  // once; clamping before the conversion keeps it in range, and truncation
  // is floor for values >= 0. Slow-path vertices have x = y = +infinity.
  const Float4 a = LoadVertex(v[0]), b = LoadVertex(v[1]), c = LoadVertex(v[2]);
  const Float4 box = FACE3D_SHUFFLE(Min4(Min4(a, b), c), Max4(Max4(a, b), c), 0, 1, 4, 5);
  if (!(box[2] < kInfinity)) {
    RasterizeHomogeneousTriangle(job.clip, ids, static_cast<int32_t>(t), width,
                                 job.height, job.row_begin, job.row_end, job.cull_backfaces,
                                 job.triangle_ids, job.mask, job.barycentrics, job.depth);
    return;
  }
  const Int4 range = __builtin_convertvector(
      Min4(Max4(box + kBoxOffset, box_low), box_high), Int4);
  // Candidate counts (columns, rows, columns, rows): lanes 0-1 must be
  // positive, lanes 2-3 at most 2 for the 2x2 block.
  const Int4 counts = FACE3D_SHUFFLE(range, range, 2, 3, 2, 3) - FACE3D_SHUFFLE(range, range, 0, 1, 0, 1);
  const unsigned count_bits = LaneMask(counts > kCountLimits);
  if ((count_bits & 3u) != 3u) return;
  const int col_min = range[0], row_min = range[1];

  const int32_t id = static_cast<int32_t>(t);
  if ((count_bits & 12u) == 0u) {
    // Most triangles of a dense mesh have at most a 2x2 block of candidate
    // pixels: test all four at once (same arithmetic as PixelEdges, lane by
    // lane), then shade those inside. A pixel is inside when its three edge
    // functions share a sign, the sign of the triangle's area (negative,
    // with y down, for front faces); ShadePixel works with either sign.
    const Float4 px = kBlockX + static_cast<float>(col_min);
    const Float4 py = kBlockY + static_cast<float>(row_min);
    Float4 x[3], y[3];
    for (int i = 0; i < 3; ++i) {
      x[i] = v[i]->x - px;
      y[i] = v[i]->y - py;
    }
    const Float4 e0 = x[1] * y[2] - y[1] * x[2];
    const Float4 e1 = x[2] * y[0] - y[2] * x[0];
    const Float4 e2 = x[0] * y[1] - y[0] * x[1];
    // All three <= 0 is all of their maximum; all >= 0, their minimum.
    const Float4 zero = {0.0f, 0.0f, 0.0f, 0.0f};
    Int4 inside_lanes = Max4(Max4(e0, e1), e2) <= zero;
    if (!job.cull_backfaces) inside_lanes |= Min4(Min4(e0, e1), e2) >= zero;
    unsigned inside = LaneMask(inside_lanes) & kBlockLanes[LaneMask(counts == kTwo) & 3u];
    while (inside != 0) {
      const int lane = __builtin_ctz(inside);
      inside &= inside - 1;
      const float e[3] = {e0[lane], e1[lane], e2[lane]};
      ShadePixel(e, v, id, static_cast<int64_t>(row_min + (lane >> 1)) * width + col_min + (lane & 1),
                 job.triangle_ids, job.mask, job.barycentrics, job.depth);
    }
    return;
  }
  // Larger triangles: the shared setup (the same candidates) and test.
  FastCandidates setup;
  if (!FastTriangleSetup(v, width, job.row_begin, job.row_end, job.cull_backfaces, &setup)) return;
  for (int row = setup.r0; row < setup.r1; ++row) {
    const int64_t row_offset = static_cast<int64_t>(row) * width;
    for (int col = setup.c0; col < setup.c1; ++col) {
      float e[3];
      if (!FastPixelInside(setup, v, col, row, job.cull_backfaces, e)) continue;
      ShadePixel(e, v, id, row_offset + col, job.triangle_ids, job.mask, job.barycentrics, job.depth);
    }
  }
}

// Groups of four triangles from t on, while four remain; returns the first
// triangle not taken. The common case, a candidate block of at most 2x2
// pixels, is tested one block position at a time for all four triangles at
// once (lane k = triangle t + k), with the same arithmetic as RasterizeOne;
// the other triangles of the group go to RasterizeOne. Triangles are shaded
// in order, so depth ties resolve as with one triangle at a time.
int64_t RasterizeGroups4(const RowsJob& job, int64_t t, int64_t triangle_count) {
  const ProjectedVertex* projected = job.projected;
  const int width = job.width;
  const Float4 zero = {0.0f, 0.0f, 0.0f, 0.0f};
  const Float4 low_x = {0.0f, 0.0f, 0.0f, 0.0f};
  const Float4 high_x = zero + static_cast<float>(width);
  const Float4 low_y = zero + static_cast<float>(job.row_begin);
  const Float4 high_y = zero + static_cast<float>(job.row_end);
  const Int4 one = {1, 1, 1, 1};
  const Int4 two = one + one;
  for (; t + 4 <= triangle_count; t += 4) {
    const int32_t* ids = job.triangles + 3 * t;
    Float4 vx[3], vy[3];  // lane k: vertex i of triangle t + k
    for (int i = 0; i < 3; ++i) {
      const Float4 p0 = LoadVertex(projected + ids[i]), p1 = LoadVertex(projected + ids[3 + i]);
      const Float4 p2 = LoadVertex(projected + ids[6 + i]), p3 = LoadVertex(projected + ids[9 + i]);
      const Float4 xy01 = FACE3D_SHUFFLE(p0, p1, 0, 4, 1, 5);  // x0 x1 y0 y1
      const Float4 xy23 = FACE3D_SHUFFLE(p2, p3, 0, 4, 1, 5);
      vx[i] = FACE3D_SHUFFLE(xy01, xy23, 0, 1, 4, 5);
      vy[i] = FACE3D_SHUFFLE(xy01, xy23, 2, 3, 6, 7);
    }
    const Float4 x_max = Max4(Max4(vx[0], vx[1]), vx[2]);
    const Int4 c0 = __builtin_convertvector(
        Min4(Max4(Min4(Min4(vx[0], vx[1]), vx[2]) + kBoxOffset[0], low_x), high_x), Int4);
    const Int4 c1 = __builtin_convertvector(Min4(Max4(x_max + kBoxOffset[2], low_x), high_x), Int4);
    const Int4 r0 = __builtin_convertvector(
        Min4(Max4(Min4(Min4(vy[0], vy[1]), vy[2]) + kBoxOffset[1], low_y), high_y), Int4);
    const Int4 r1 = __builtin_convertvector(
        Min4(Max4(Max4(Max4(vy[0], vy[1]), vy[2]) + kBoxOffset[3], low_y), high_y), Int4);
    const Int4 columns = c1 - c0, rows = r1 - r0;
    const Int4 finite = x_max < kInfinity;
    // Triangles with no candidate pixel (and every vertex in front).
    const unsigned empty = LaneMask(finite & ((columns < one) | (rows < one)));
    const Int4 block = finite & (columns >= one) & (rows >= one) & (columns <= two) & (rows <= two);
    const unsigned blocks = LaneMask(block);
    unsigned inside[4] = {0u, 0u, 0u, 0u};  // per block position, lane k set: pixel inside t + k
    Float4 edge[4][3];
    if (blocks != 0u) {
      const Float4 px0 = __builtin_convertvector(c0, Float4) + 0.5f;
      const Float4 py0 = __builtin_convertvector(r0, Float4) + 0.5f;
      for (int position = 0; position < 4; ++position) {
        const int dx = position & 1, dy = position >> 1;
        const Float4 px = px0 + static_cast<float>(dx), py = py0 + static_cast<float>(dy);
        Float4 x[3], y[3];
        for (int i = 0; i < 3; ++i) {
          x[i] = vx[i] - px;
          y[i] = vy[i] - py;
        }
        const Float4 e0 = x[1] * y[2] - y[1] * x[2];
        const Float4 e1 = x[2] * y[0] - y[2] * x[0];
        const Float4 e2 = x[0] * y[1] - y[0] * x[1];
        Int4 lanes = Max4(Max4(e0, e1), e2) <= zero;
        if (!job.cull_backfaces) lanes |= Min4(Min4(e0, e1), e2) >= zero;
        lanes &= block & (columns > dx) & (rows > dy);
        inside[position] = LaneMask(lanes);
        edge[position][0] = e0;
        edge[position][1] = e1;
        edge[position][2] = e2;
      }
    }
    if (((blocks | empty) & 0xFu) == 0xFu) {
      // The common case: every triangle of the group is a block or has no
      // candidate. Its covered pixels, as one 16-bit set (bit 4 k + position),
      // are shaded in ascending bit order: triangle by triangle, as below,
      // but without a data-dependent branch per triangle and position.
      unsigned covered = TransposeNibbles(inside[0] | inside[1] << 4 | inside[2] << 8 |
                                          inside[3] << 12);
      while (covered != 0u) {
        const int bit = __builtin_ctz(covered);
        covered &= covered - 1u;
        const int k = bit >> 2, position = bit & 3;
        const int32_t* tri = ids + 3 * k;
        const ProjectedVertex* const v[3] = {projected + tri[0], projected + tri[1], projected + tri[2]};
        const float e[3] = {edge[position][0][k], edge[position][1][k], edge[position][2][k]};
        ShadePixel(e, v, static_cast<int32_t>(t + k),
                   static_cast<int64_t>(r0[k] + (position >> 1)) * width + c0[k] + (position & 1),
                   job.triangle_ids, job.mask, job.barycentrics, job.depth);
      }
      continue;
    }
    for (int k = 0; k < 4; ++k) {
      if ((blocks >> k) & 1u) {
        const int32_t* tri = ids + 3 * k;
        const ProjectedVertex* const v[3] = {projected + tri[0], projected + tri[1], projected + tri[2]};
        for (int position = 0; position < 4; ++position) {
          if (!((inside[position] >> k) & 1u)) continue;
          const float e[3] = {edge[position][0][k], edge[position][1][k], edge[position][2][k]};
          ShadePixel(e, v, static_cast<int32_t>(t + k),
                     static_cast<int64_t>(r0[k] + (position >> 1)) * width + c0[k] + (position & 1),
                     job.triangle_ids, job.mask, job.barycentrics, job.depth);
        }
      } else if (!((empty >> k) & 1u)) {
        RasterizeOne(job, t + k);
      }
    }
  }
  return t;
}

#if defined(FACE3D_AVX2_PATH)
// Bit k of an 8-bit set moved to bit 4 k.
struct SpreadTable {
  uint32_t bits[256];
};
constexpr SpreadTable MakeSpreadTable() {
  SpreadTable table{};
  for (unsigned set = 0; set < 256; ++set) {
    for (unsigned k = 0; k < 8; ++k) {
      if ((set >> k) & 1u) table.bits[set] |= 1u << (4 * k);
    }
  }
  return table;
}
constexpr SpreadTable kSpread = MakeSpreadTable();

// RasterizeGroups4 with eight triangles per group, in the lanes of 8-float
// AVX vectors (lane k = triangle t + k), for CPUs with AVX2 (the caller
// checks). Lane by lane, the same operations in the same order as
// RasterizeGroups4 and ShadePixel, so the outputs are identical bit for bit;
// no FMA is enabled, so nothing can be contracted. Unlike there, the depth
// and barycentrics of each block position that some lane draws are computed
// in vectors before shading (the same operations as FastDepth and
// FastBarycentrics, lane by lane, with FastDepth's tests folded into the
// inside set), leaving the depth test and the stores to the per-pixel loop;
// positions that no lane draws skip the two divisions.
FACE3D_AVX2 int64_t RasterizeGroups8Avx2(const RowsJob& job, int64_t t, int64_t triangle_count) {
  // A copy that the stores to the outputs cannot alias, so that its pointers
  // stay in registers.
  const RowsJob outputs = job;
  const ProjectedVertex* projected = job.projected;
  const int width = job.width;
  const __m256 zero = _mm256_setzero_ps();
  const __m256 high_x = _mm256_set1_ps(static_cast<float>(width));
  const __m256 low_y = _mm256_set1_ps(static_cast<float>(job.row_begin));
  const __m256 high_y = _mm256_set1_ps(static_cast<float>(job.row_end));
  const __m256 low_offset = _mm256_set1_ps(kBoxOffset[0]);
  const __m256 high_offset = _mm256_set1_ps(kBoxOffset[2]);
  const __m256 infinity = _mm256_set1_ps(kInfinity);
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  const __m256 minus_one = _mm256_set1_ps(-1.0f);
  const __m256i zero_i = _mm256_setzero_si256(), one_i = _mm256_set1_epi32(1);
  const __m256i two_i = _mm256_set1_epi32(2);
  for (; t + 8 <= triangle_count; t += 8) {
    const int32_t* ids = job.triangles + 3 * t;
    __m256 vx[3], vy[3], vz[3], vq[3];  // lane k: vertex i of triangle t + k
    for (int i = 0; i < 3; ++i) {
      // Triangles k and k + 4 in the two halves, then 4 x 4 transposes.
      const __m256 p04 = LoadVertexPair(projected + ids[i], projected + ids[12 + i]);
      const __m256 p15 = LoadVertexPair(projected + ids[3 + i], projected + ids[15 + i]);
      const __m256 p26 = LoadVertexPair(projected + ids[6 + i], projected + ids[18 + i]);
      const __m256 p37 = LoadVertexPair(projected + ids[9 + i], projected + ids[21 + i]);
      const __m256 xy01 = _mm256_unpacklo_ps(p04, p15);  // x0 x1 y0 y1 | x4 x5 y4 y5
      const __m256 zq01 = _mm256_unpackhi_ps(p04, p15);  // z0 z1 q0 q1 | z4 z5 q4 q5
      const __m256 xy23 = _mm256_unpacklo_ps(p26, p37);
      const __m256 zq23 = _mm256_unpackhi_ps(p26, p37);
      vx[i] = _mm256_shuffle_ps(xy01, xy23, _MM_SHUFFLE(1, 0, 1, 0));
      vy[i] = _mm256_shuffle_ps(xy01, xy23, _MM_SHUFFLE(3, 2, 3, 2));
      vz[i] = _mm256_shuffle_ps(zq01, zq23, _MM_SHUFFLE(1, 0, 1, 0));
      vq[i] = _mm256_shuffle_ps(zq01, zq23, _MM_SHUFFLE(3, 2, 3, 2));
    }
    const __m256 x_max = _mm256_max_ps(_mm256_max_ps(vx[0], vx[1]), vx[2]);
    const __m256i c0 = _mm256_cvttps_epi32(_mm256_min_ps(
        _mm256_max_ps(_mm256_add_ps(_mm256_min_ps(_mm256_min_ps(vx[0], vx[1]), vx[2]), low_offset), zero),
        high_x));
    const __m256i c1 = _mm256_cvttps_epi32(
        _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(x_max, high_offset), zero), high_x));
    const __m256i r0 = _mm256_cvttps_epi32(_mm256_min_ps(
        _mm256_max_ps(_mm256_add_ps(_mm256_min_ps(_mm256_min_ps(vy[0], vy[1]), vy[2]), low_offset), low_y),
        high_y));
    const __m256i r1 = _mm256_cvttps_epi32(_mm256_min_ps(
        _mm256_max_ps(_mm256_add_ps(_mm256_max_ps(_mm256_max_ps(vy[0], vy[1]), vy[2]), high_offset), low_y),
        high_y));
    const __m256i columns = _mm256_sub_epi32(c1, c0), rows = _mm256_sub_epi32(r1, r0);
    const __m256i finite = _mm256_castps_si256(_mm256_cmp_ps(x_max, infinity, _CMP_LT_OQ));
    const __m256i has_columns = _mm256_cmpgt_epi32(columns, zero_i);
    const __m256i has_rows = _mm256_cmpgt_epi32(rows, zero_i);
    const __m256i wide = _mm256_cmpgt_epi32(columns, one_i);
    const __m256i tall = _mm256_cmpgt_epi32(rows, one_i);
    const __m256i candidates = _mm256_and_si256(has_columns, has_rows);
    // Triangles with no candidate pixel (and every vertex in front).
    const unsigned empty =
        static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_andnot_si256(candidates, finite))));
    const __m256i block = _mm256_andnot_si256(
        _mm256_or_si256(_mm256_cmpgt_epi32(columns, two_i), _mm256_cmpgt_epi32(rows, two_i)),
        _mm256_and_si256(finite, candidates));
    const unsigned blocks = static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(block)));
    unsigned inside[4] = {0u, 0u, 0u, 0u};  // per block position, lane k set: t + k draws it
    alignas(32) float shade[4][4][8];        // per position: depth, barycentrics 0-2
    alignas(32) int32_t first_col[8], first_row[8];
    if (blocks != 0u) {
      const __m256 px0 = _mm256_add_ps(_mm256_cvtepi32_ps(c0), half);
      const __m256 py0 = _mm256_add_ps(_mm256_cvtepi32_ps(r0), half);
      for (int position = 0; position < 4; ++position) {
        const int dx = position & 1, dy = position >> 1;
        const __m256 px = _mm256_add_ps(px0, _mm256_set1_ps(static_cast<float>(dx)));
        const __m256 py = _mm256_add_ps(py0, _mm256_set1_ps(static_cast<float>(dy)));
        __m256 x[3], y[3];
        for (int i = 0; i < 3; ++i) {
          x[i] = _mm256_sub_ps(vx[i], px);
          y[i] = _mm256_sub_ps(vy[i], py);
        }
        const __m256 e0 = _mm256_sub_ps(_mm256_mul_ps(x[1], y[2]), _mm256_mul_ps(y[1], x[2]));
        const __m256 e1 = _mm256_sub_ps(_mm256_mul_ps(x[2], y[0]), _mm256_mul_ps(y[2], x[0]));
        const __m256 e2 = _mm256_sub_ps(_mm256_mul_ps(x[0], y[1]), _mm256_mul_ps(y[0], x[1]));
        __m256 lanes = _mm256_cmp_ps(_mm256_max_ps(_mm256_max_ps(e0, e1), e2), zero, _CMP_LE_OQ);
        if (!job.cull_backfaces) {
          lanes = _mm256_or_ps(lanes, _mm256_cmp_ps(_mm256_min_ps(_mm256_min_ps(e0, e1), e2), zero, _CMP_GE_OQ));
        }
        const __m256i in_block =
            _mm256_and_si256(block, _mm256_and_si256(dx ? wide : has_columns, dy ? tall : has_rows));
        lanes = _mm256_and_ps(lanes, _mm256_castsi256_ps(in_block));
        if (_mm256_movemask_ps(lanes) == 0) continue;
        // FastDepth: drawn where the sum is nonzero and the depth in [-1, 1].
        const __m256 sum = _mm256_add_ps(_mm256_add_ps(e0, e1), e2);
        const __m256 z = _mm256_div_ps(
            _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(e0, vz[0]), _mm256_mul_ps(e1, vz[1])),
                          _mm256_mul_ps(e2, vz[2])),
            sum);
        lanes = _mm256_and_ps(lanes, _mm256_cmp_ps(sum, zero, _CMP_NEQ_UQ));
        lanes = _mm256_and_ps(lanes, _mm256_cmp_ps(z, minus_one, _CMP_GE_OQ));
        lanes = _mm256_and_ps(lanes, _mm256_cmp_ps(z, one, _CMP_LE_OQ));
        inside[position] = static_cast<unsigned>(_mm256_movemask_ps(lanes));
        // FastBarycentrics.
        const __m256 t0 = _mm256_mul_ps(e0, vq[0]);
        const __m256 t1 = _mm256_mul_ps(e1, vq[1]);
        const __m256 t2 = _mm256_mul_ps(e2, vq[2]);
        const __m256 inv_t = _mm256_div_ps(one, _mm256_add_ps(_mm256_add_ps(t0, t1), t2));
        _mm256_store_ps(shade[position][0], z);
        _mm256_store_ps(shade[position][1], _mm256_mul_ps(t0, inv_t));
        _mm256_store_ps(shade[position][2], _mm256_mul_ps(t1, inv_t));
        _mm256_store_ps(shade[position][3], _mm256_mul_ps(t2, inv_t));
      }
      _mm256_store_si256(reinterpret_cast<__m256i*>(first_col), c0);
      _mm256_store_si256(reinterpret_cast<__m256i*>(first_row), r0);
    }
    const auto write = [&](int k, int position) {
      const float* s = &shade[position][0][k];
      WritePixel(outputs, static_cast<int32_t>(t + k),
                 static_cast<int64_t>(first_row[k] + (position >> 1)) * width + first_col[k] + (position & 1),
                 s[0], s[8], s[16], s[24]);
    };
    if (((blocks | empty) & 0xFFu) == 0xFFu) {
      // Every triangle of the group is a block or has no candidate: its
      // drawn pixels, as one 32-bit set (bit 4 k + position), in ascending
      // bit order, i.e. triangle by triangle.
      uint32_t covered = kSpread.bits[inside[0]] | kSpread.bits[inside[1]] << 1 |
                         kSpread.bits[inside[2]] << 2 | kSpread.bits[inside[3]] << 3;
      while (covered != 0u) {
        const int bit = __builtin_ctz(covered);
        covered &= covered - 1u;
        write(bit >> 2, bit & 3);
      }
      continue;
    }
    for (int k = 0; k < 8; ++k) {
      if ((blocks >> k) & 1u) {
        for (int position = 0; position < 4; ++position) {
          if ((inside[position] >> k) & 1u) write(k, position);
        }
      } else if (!((empty >> k) & 1u)) {
        RasterizeOne(job, t + k);
      }
    }
  }
  return t;
}

#endif  // FACE3D_AVX2_PATH

}  // namespace

void RasterizeRows(const float* clip, const ProjectedVertex* projected,
                   const int32_t* triangles, int64_t triangle_count, int width,
                   int height, int row_begin, int row_end, bool cull_backfaces,
                   int32_t* triangle_ids, float* mask, float* barycentrics,
                   float* depth) {
  const int64_t first = static_cast<int64_t>(row_begin) * width;
  const int64_t last = static_cast<int64_t>(row_end) * width;
  std::fill(triangle_ids + first, triangle_ids + last, 0);
  std::fill(mask + first, mask + last, 0.0f);
  std::fill(barycentrics + 3 * first, barycentrics + 3 * last, 0.0f);
  std::fill(depth + first, depth + last, kBackgroundDepth);

  const RowsJob job = {clip,           projected,    triangles, width,        height, row_begin,
                       row_end,        cull_backfaces, triangle_ids, mask, barycentrics, depth};
  int64_t t = 0;
#if defined(FACE3D_AVX2_PATH)
  if (UseAvx2()) t = RasterizeGroups8Avx2(job, t, triangle_count);
#endif
  t = RasterizeGroups4(job, t, triangle_count);
  for (; t < triangle_count; ++t) RasterizeOne(job, t);
}

namespace {

// Pixels ahead whose triangle the gradient prefetches (see there).
constexpr int64_t kPrefetchAhead = 64;

// Fast-path gradient of pixel (col, row), whose triangle has vertex ids
// `ids`, with output gradients g (barycentrics) and g_depth, added to the
// three vertices' sums in d_projected, in the forward pass's own terms: with
// edge functions e_i, t_i = e_i inv_w_i, barycentrics b_i = t_i / sum(t) and
// depth sum_i e_i z_i / sum(e). Gradients go to the projected vertices here
// and through the projection in FinishGradient. Lane i of a vector holds
// vertex i's value (lane 3 repeats vertex 2 with e_3 = 0 exactly, so it adds
// nothing to the sums and is never stored); `next` and `prev` rotate lanes
// 0-2 to vertices i + 1 and i - 1 (mod 3).
template <bool kDepth>
inline void AccumulateFastPixel(const ProjectedVertex* projected, const int32_t* ids, int col,
                                int row, const float g[3], float g_depth, float* d_projected) {
  const Float4 a = LoadVertex(projected + ids[0]), b = LoadVertex(projected + ids[1]);
  const Float4 c = LoadVertex(projected + ids[2]);
  const Float4 xy01 = FACE3D_SHUFFLE(a, b, 0, 4, 1, 5);  // x0 x1 y0 y1
  const Float4 zq01 = FACE3D_SHUFFLE(a, b, 2, 6, 3, 7);  // z0 z1 q0 q1
  const Float4 x = FACE3D_SHUFFLE(xy01, c, 0, 1, 4, 4) - (col + 0.5f);
  const Float4 y = FACE3D_SHUFFLE(xy01, c, 2, 3, 5, 5) - (row + 0.5f);
  const Float4 z = FACE3D_SHUFFLE(zq01, c, 0, 1, 6, 6);
  const Float4 inv_w = FACE3D_SHUFFLE(zq01, c, 2, 3, 7, 7);
  const Float4 x_next = FACE3D_SHUFFLE(x, x, 1, 2, 0, 3), x_prev = FACE3D_SHUFFLE(x, x, 2, 0, 1, 3);
  const Float4 y_next = FACE3D_SHUFFLE(y, y, 1, 2, 0, 3), y_prev = FACE3D_SHUFFLE(y, y, 2, 0, 1, 3);
  // The forward pass's products, e_i = X_{i+1} Y_{i-1} - Y_{i+1} X_{i-1}.
  const Float4 e = x_next * y_prev - y_next * x_prev;
  const Float4 t = e * inv_w;
  const float e_sum = e[0] + e[1] + e[2];
  const float t_sum = t[0] + t[1] + t[2];
  if (e_sum == 0.0f || t_sum == 0.0f) return;
  const float inv_t_sum = 1.0f / t_sum;
  const float inv_e_sum = kDepth ? 1.0f / e_sum : 0.0f;
  const float g_dot_b = (g[0] * t[0] + g[1] * t[1] + g[2] * t[2]) * inv_t_sum;
  const Float4 d_t = (Float4{g[0], g[1], g[2], 0.0f} - g_dot_b) * inv_t_sum;  // dLoss / d t_i
  Float4 d_e = d_t * inv_w;
  Float4 d_z = {0.0f, 0.0f, 0.0f, 0.0f};
  if (kDepth) {
    const float pixel_depth = (e[0] * z[0] + e[1] * z[1] + e[2] * z[2]) * inv_e_sum;
    d_e += g_depth * (z - pixel_depth) * inv_e_sum;
    d_z = g_depth * e * inv_e_sum;
  }
  const Float4 d_inv_w = d_t * e;
  // Vertex m is the start of edge m - 1 and the end of edge m + 1:
  // d e_{m-1} / d(x_m, y_m) = (Y_{m+1}, -X_{m+1}), d e_{m+1} / d(x_m, y_m)
  // = (-Y_{m-1}, X_{m-1}).
  const Float4 d_e_next = FACE3D_SHUFFLE(d_e, d_e, 1, 2, 0, 3);
  const Float4 d_e_prev = FACE3D_SHUFFLE(d_e, d_e, 2, 0, 1, 3);
  const Float4 d_x = d_e_prev * y_next - d_e_next * y_prev;
  const Float4 d_y = d_e_next * x_prev - d_e_prev * x_next;
  // Transposed to one (x, y, z, inv_w) vector per vertex.
  const Float4 dxy01 = FACE3D_SHUFFLE(d_x, d_y, 0, 4, 1, 5);
  const Float4 dzq01 = FACE3D_SHUFFLE(d_z, d_inv_w, 0, 4, 1, 5);
  const Float4 dxy2 = FACE3D_SHUFFLE(d_x, d_y, 2, 6, 2, 6);
  const Float4 dzq2 = FACE3D_SHUFFLE(d_z, d_inv_w, 2, 6, 2, 6);
  AddToVertex(FACE3D_SHUFFLE(dxy01, dzq01, 0, 1, 4, 5), d_projected + 4 * static_cast<int64_t>(ids[0]));
  AddToVertex(FACE3D_SHUFFLE(dxy01, dzq01, 2, 3, 6, 7), d_projected + 4 * static_cast<int64_t>(ids[1]));
  AddToVertex(FACE3D_SHUFFLE(dxy2, dzq2, 0, 1, 4, 5), d_projected + 4 * static_cast<int64_t>(ids[2]));
}

// The loop of AccumulateGradientRows for d_barycentrics (kBary) and d_depth
// (kDepth) given or null, so that absent gradients cost nothing per pixel:
// visits the covered pixels with a nonzero output gradient in order and hands
// them, with their triangle's vertex ids and output gradients (g0, g1, g2,
// g_depth), to fast.Pixel, then calls fast.Finish; false as soon as either
// returns false. Unless Fast::kTakesSlowPixels, it first adds the slow-path
// pixels to d_clip_slow itself (or returns false at the first, when that is
// null) and hands on the fast-path ones only. Always inlined, so that in an
// AVX2 caller the calls to an AVX2 Fast's members are inlined too (they cannot
// be into a function compiled without AVX2).
template <bool kBary, bool kDepth, class Fast>
__attribute__((always_inline)) inline bool VisitGradientPixels(
    const float* clip, const ProjectedVertex* projected, const int32_t* triangles,
    const int32_t* triangle_ids, const float* mask, const float* d_barycentrics,
    const float* d_depth, int width, int height, int row_begin, int row_end,
    float* d_clip_slow, Fast& fast) {
  const int64_t band_end = static_cast<int64_t>(row_end) * width;
  for (int row = row_begin; row < row_end; ++row) {
    for (int col = 0; col < width; ++col) {
      const int64_t pixel = static_cast<int64_t>(row) * width + col;
      // The vertices of a pixel's triangle are found through two dependent
      // loads that the hardware cannot foresee, and they are often out of
      // cache (the forward pass wrote them a whole batch ago): prefetch the
      // triangle of a pixel kPrefetchAhead ahead, and the vertices of one
      // half as far ahead, whose triangle was prefetched earlier.
      if (pixel + kPrefetchAhead < band_end) {
        __builtin_prefetch(triangles + 3 * static_cast<int64_t>(triangle_ids[pixel + kPrefetchAhead]));
        const int32_t* near = triangles + 3 * static_cast<int64_t>(triangle_ids[pixel + kPrefetchAhead / 2]);
        __builtin_prefetch(projected + near[0]);
        __builtin_prefetch(projected + near[1]);
        __builtin_prefetch(projected + near[2]);
      }
      if (mask[pixel] == 0.0f) continue;
      const float g[4] = {kBary ? d_barycentrics[3 * pixel + 0] : 0.0f,
                          kBary ? d_barycentrics[3 * pixel + 1] : 0.0f,
                          kBary ? d_barycentrics[3 * pixel + 2] : 0.0f,
                          kDepth ? d_depth[pixel] : 0.0f};
      const Float4 g4 = {g[0], g[1], g[2], g[3]};
      if (LaneMask(g4 != Float4{0.0f, 0.0f, 0.0f, 0.0f}) == 0u) continue;
      const int32_t* ids = triangles + 3 * static_cast<int64_t>(triangle_ids[pixel]);
      if (!Fast::kTakesSlowPixels &&
          !IsFinite(projected[ids[0]].x + projected[ids[1]].x + projected[ids[2]].x)) {
        if (d_clip_slow == nullptr) return false;
        AccumulateHomogeneousPixel(clip, ids, g, g[3], PixelNdcX(col, width),
                                   PixelNdcY(row, height), d_clip_slow);
        continue;
      }
      if (!fast.Pixel(ids, col, row, g)) return false;
    }
  }
  return fast.Finish();
}

// Fast-path pixels one at a time (AccumulateFastPixel).
template <bool kDepth>
struct FastPixels {
  static constexpr bool kTakesSlowPixels = false;
  const ProjectedVertex* projected;
  float* d_projected;
  bool Pixel(const int32_t* ids, int col, int row, const float g[4]) {
    AccumulateFastPixel<kDepth>(projected, ids, col, row, g, g[3], d_projected);
    return true;
  }
  bool Finish() { return true; }
};

template <bool kBary, bool kDepth>
bool AccumulateGradientRowsImpl(const float* clip, const ProjectedVertex* projected,
                                const int32_t* triangles,
                                const int32_t* triangle_ids, const float* mask,
                                const float* d_barycentrics, const float* d_depth,
                                int width, int height, int row_begin, int row_end,
                                float* d_projected, float* d_clip_slow) {
  FastPixels<kDepth> fast = {projected, d_projected};
  return VisitGradientPixels<kBary, kDepth>(clip, projected, triangles, triangle_ids, mask,
                                            d_barycentrics, d_depth, width, height, row_begin,
                                            row_end, d_clip_slow, fast);
}

#if defined(FACE3D_AVX2_PATH)
// Pixels eight at a time, for CPUs with AVX2: each pixel waits in a slot
// until eight have come, then AccumulateFastPixel's arithmetic runs for all
// eight with lane k = pixel k of 8-float vectors, vertex by vertex (the same
// operations on the same values in the same order as its 4-lane vectors and
// scalar sums, so every term is identical bit for bit). The terms are then
// added to the vertex sums in pixel order, a pixel's three vertices in turn,
// as one pixel at a time would. Slow-path pixels are told apart here, from
// the vertices' x loaded for the eight (the same test as the one-pixel loop),
// and go to d_clip_slow in order after the fast ones of their eight (the two
// sums are separate, so only the order within each matters). The last pixels
// of a band (fewer than eight) go one at a time.
template <bool kDepth>
struct FastPixelOctets {
  static constexpr bool kTakesSlowPixels = true;
  const float* clip;
  const ProjectedVertex* projected;
  float* d_projected;
  float* d_clip_slow;
  int width, height;
  int count = 0;
  const int32_t* ids[8];
  alignas(32) int32_t col[8], row[8];
  alignas(32) float g[4][8];  // g0, g1, g2, g_depth of each slot

  FACE3D_AVX2 bool Pixel(const int32_t* pixel_ids, int pixel_col, int pixel_row, const float pixel_g[4]) {
    ids[count] = pixel_ids;
    col[count] = pixel_col;
    row[count] = pixel_row;
    for (int i = 0; i < 4; ++i) g[i][count] = pixel_g[i];
    if (++count < 8) return true;
    count = 0;
    return Flush();
  }

  // Slot k as a slow-path pixel; false when there is no d_clip_slow.
  bool Slow(int k) {
    if (d_clip_slow == nullptr) return false;
    const float pixel_g[3] = {g[0][k], g[1][k], g[2][k]};
    AccumulateHomogeneousPixel(clip, ids[k], pixel_g, g[3][k], PixelNdcX(col[k], width),
                               PixelNdcY(row[k], height), d_clip_slow);
    return true;
  }

  FACE3D_AVX2 bool Finish() {
    for (int k = 0; k < count; ++k) {
      const int32_t* v = ids[k];
      if (!IsFinite(projected[v[0]].x + projected[v[1]].x + projected[v[2]].x)) {
        if (!Slow(k)) return false;
        continue;
      }
      const float pixel_g[3] = {g[0][k], g[1][k], g[2][k]};
      AccumulateFastPixel<kDepth>(projected, v, col[k], row[k], pixel_g, g[3][k], d_projected);
    }
    count = 0;
    return true;
  }

  FACE3D_AVX2 bool Flush() {
    const __m256 px = _mm256_add_ps(_mm256_cvtepi32_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(col))),
                                    _mm256_set1_ps(0.5f));
    const __m256 py = _mm256_add_ps(_mm256_cvtepi32_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(row))),
                                    _mm256_set1_ps(0.5f));
    __m256 x[3], y[3], z[3], q[3];  // lane k: vertex i of pixel k's triangle
    __m256 vertex_x[3];
    for (int i = 0; i < 3; ++i) {
      __m256 r[4];
      for (int k = 0; k < 4; ++k) r[k] = LoadVertexPair(projected + ids[k][i], projected + ids[k + 4][i]);
      Transpose4x2(r);
      vertex_x[i] = r[0];
      x[i] = _mm256_sub_ps(r[0], px);
      y[i] = _mm256_sub_ps(r[1], py);
      z[i] = r[2];
      q[i] = r[3];
    }
    // IsFinite(x0 + x1 + x2): fast-path pixels.
    const __m256 x_sum = _mm256_add_ps(_mm256_add_ps(vertex_x[0], vertex_x[1]), vertex_x[2]);
    const unsigned fast = static_cast<unsigned>(
        _mm256_movemask_ps(_mm256_cmp_ps(_mm256_sub_ps(x_sum, x_sum), _mm256_setzero_ps(), _CMP_EQ_OQ)));
    // e_i = X_{i+1} Y_{i-1} - Y_{i+1} X_{i-1}.
    __m256 e[3], t[3];
    for (int i = 0; i < 3; ++i) {
      const int n = (i + 1) % 3, p = (i + 2) % 3;
      e[i] = _mm256_sub_ps(_mm256_mul_ps(x[n], y[p]), _mm256_mul_ps(y[n], x[p]));
      t[i] = _mm256_mul_ps(e[i], q[i]);
    }
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    const __m256 e_sum = _mm256_add_ps(_mm256_add_ps(e[0], e[1]), e[2]);
    const __m256 t_sum = _mm256_add_ps(_mm256_add_ps(t[0], t[1]), t[2]);
    // Pixels that contribute: neither sum is zero.
    const unsigned valid = fast & static_cast<unsigned>(_mm256_movemask_ps(
        _mm256_and_ps(_mm256_cmp_ps(e_sum, zero, _CMP_NEQ_UQ), _mm256_cmp_ps(t_sum, zero, _CMP_NEQ_UQ))));
    const __m256 inv_t_sum = _mm256_div_ps(one, t_sum);
    __m256 gv[4];
    for (int i = 0; i < 4; ++i) gv[i] = _mm256_load_ps(g[i]);
    const __m256 g_dot_b = _mm256_mul_ps(
        _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(gv[0], t[0]), _mm256_mul_ps(gv[1], t[1])),
                      _mm256_mul_ps(gv[2], t[2])),
        inv_t_sum);
    __m256 d_e[3], d[3][4];  // d[m]: dLoss / d (x, y, z, inv_w) of vertex m
    for (int i = 0; i < 3; ++i) {
      const __m256 d_t = _mm256_mul_ps(_mm256_sub_ps(gv[i], g_dot_b), inv_t_sum);
      d_e[i] = _mm256_mul_ps(d_t, q[i]);
      d[i][2] = zero;
      d[i][3] = _mm256_mul_ps(d_t, e[i]);
    }
    if (kDepth) {
      const __m256 inv_e_sum = _mm256_div_ps(one, e_sum);
      const __m256 pixel_depth = _mm256_mul_ps(
          _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(e[0], z[0]), _mm256_mul_ps(e[1], z[1])),
                        _mm256_mul_ps(e[2], z[2])),
          inv_e_sum);
      for (int i = 0; i < 3; ++i) {
        d_e[i] = _mm256_add_ps(
            d_e[i], _mm256_mul_ps(_mm256_mul_ps(gv[3], _mm256_sub_ps(z[i], pixel_depth)), inv_e_sum));
        d[i][2] = _mm256_mul_ps(_mm256_mul_ps(gv[3], e[i]), inv_e_sum);
      }
    }
    for (int m = 0; m < 3; ++m) {
      const int n = (m + 1) % 3, p = (m + 2) % 3;
      d[m][0] = _mm256_sub_ps(_mm256_mul_ps(d_e[p], y[n]), _mm256_mul_ps(d_e[n], y[p]));
      d[m][1] = _mm256_sub_ps(_mm256_mul_ps(d_e[n], x[p]), _mm256_mul_ps(d_e[p], x[n]));
      Transpose4x2(d[m]);
    }
    // Pixel k's (x, y, z, inv_w) terms of vertex m: half k / 4 of d[m][k % 4].
    for (int k = 0; k < 4; ++k) {
      if ((valid >> k) & 1u) {
        for (int m = 0; m < 3; ++m) {
          AddToVertex(_mm256_castps256_ps128(d[m][k]), d_projected + 4 * static_cast<int64_t>(ids[k][m]));
        }
      }
    }
    for (int k = 0; k < 4; ++k) {
      if ((valid >> (k + 4)) & 1u) {
        for (int m = 0; m < 3; ++m) {
          AddToVertex(_mm256_extractf128_ps(d[m][k], 1), d_projected + 4 * static_cast<int64_t>(ids[k + 4][m]));
        }
      }
    }
    for (unsigned slow = ~fast & 0xFFu; slow != 0u; slow &= slow - 1u) {
      if (!Slow(__builtin_ctz(slow))) return false;
    }
    return true;
  }
};

template <bool kBary, bool kDepth>
FACE3D_AVX2 bool AccumulateGradientRowsAvx2(const float* clip, const ProjectedVertex* projected,
                                            const int32_t* triangles,
                                            const int32_t* triangle_ids, const float* mask,
                                            const float* d_barycentrics, const float* d_depth,
                                            int width, int height, int row_begin, int row_end,
                                            float* d_projected, float* d_clip_slow) {
  FastPixelOctets<kDepth> fast;
  fast.clip = clip;
  fast.projected = projected;
  fast.d_projected = d_projected;
  fast.d_clip_slow = d_clip_slow;
  fast.width = width;
  fast.height = height;
  return VisitGradientPixels<kBary, kDepth>(clip, projected, triangles, triangle_ids, mask,
                                            d_barycentrics, d_depth, width, height, row_begin,
                                            row_end, d_clip_slow, fast);
}
#endif  // FACE3D_AVX2_PATH

// AccumulateGradientRows for given d_barycentrics (kBary) and d_depth (kDepth).
template <bool kBary, bool kDepth>
bool AccumulateGradientRowsFor(const float* clip, const ProjectedVertex* projected,
                               const int32_t* triangles, const int32_t* triangle_ids,
                               const float* mask, const float* d_barycentrics,
                               const float* d_depth, int width, int height, int row_begin,
                               int row_end, float* d_projected, float* d_clip_slow) {
#if defined(FACE3D_AVX2_PATH)
  if (UseAvx2()) {
    return AccumulateGradientRowsAvx2<kBary, kDepth>(
        clip, projected, triangles, triangle_ids, mask, d_barycentrics, d_depth, width, height,
        row_begin, row_end, d_projected, d_clip_slow);
  }
#endif
  return AccumulateGradientRowsImpl<kBary, kDepth>(
      clip, projected, triangles, triangle_ids, mask, d_barycentrics, d_depth, width, height,
      row_begin, row_end, d_projected, d_clip_slow);
}

}  // namespace

bool AccumulateGradientRows(const float* clip, const ProjectedVertex* projected,
                            const int32_t* triangles,
                            const int32_t* triangle_ids, const float* mask,
                            const float* d_barycentrics, const float* d_depth,
                            int width, int height, int row_begin, int row_end,
                            float* d_projected, float* d_clip_slow) {
  if (d_barycentrics != nullptr && d_depth != nullptr) {
    return AccumulateGradientRowsFor<true, true>(
        clip, projected, triangles, triangle_ids, mask, d_barycentrics, d_depth,
        width, height, row_begin, row_end, d_projected, d_clip_slow);
  }
  if (d_barycentrics != nullptr) {
    return AccumulateGradientRowsFor<true, false>(
        clip, projected, triangles, triangle_ids, mask, d_barycentrics, d_depth,
        width, height, row_begin, row_end, d_projected, d_clip_slow);
  }
  if (d_depth != nullptr) {
    return AccumulateGradientRowsFor<false, true>(
        clip, projected, triangles, triangle_ids, mask, d_barycentrics, d_depth,
        width, height, row_begin, row_end, d_projected, d_clip_slow);
  }
  return true;
}

void FinishGradient(const float* clip, const float* const* d_projected,
                    const float* const* d_clip_slow, int band_count,
                    int64_t vertex_begin, int64_t vertex_end, int width,
                    int height, float* d_clip) {
  const double half_width = 0.5 * width, half_height = 0.5 * height;
  if (band_count == 1 && d_clip_slow == nullptr) {
    // The common case (one band, nothing behind the eye), without the sums,
    // in 4-float vectors: (x, y, z, inv_w) -> (x, y, z, w) of one vertex.
    const Float4 scale = {static_cast<float>(half_width), -static_cast<float>(half_height), 1.0f, 0.0f};
    const Float4 zero = {0.0f, 0.0f, 0.0f, 0.0f};
    // Four vertices at a time, transposed so that lane k holds vertex v + k:
    // lane by lane the operations of the one-vertex loop below, in the same
    // order, and no branch (which vertices have a gradient follows the
    // coverage and is hard to predict); vertices without one get zeros.
    const Float4 x_scale = zero + static_cast<float>(half_width);
    const Float4 y_scale = zero - static_cast<float>(half_height);
    const Float4 one = zero + 1.0f;
    int64_t v = vertex_begin;
#if defined(FACE3D_AVX2_PATH)
    if (UseAvx2()) {
      v = FinishGradientAvx2(clip, d_projected[0], v, vertex_end, static_cast<float>(half_width),
                             static_cast<float>(half_height), d_clip);
    }
#endif
    for (; v + 4 <= vertex_end; v += 4) {
      Float4 d[4], c[4];
      std::memcpy(d, d_projected[0] + 4 * v, sizeof(d));
      std::memcpy(c, clip + 4 * v, sizeof(c));
      Transpose4(d);
      Transpose4(c);
      const Int4 nonzero = (d[0] != zero) | (d[1] != zero) | (d[2] != zero) | (d[3] != zero);
      const Float4 q = one / c[3];
      const Float4 d_q = d[3] + d[0] * (c[0] * x_scale) + d[1] * (c[1] * y_scale) + d[2] * (c[2] * one);
      Float4 out[4] = {d[0] * x_scale * q, d[1] * y_scale * q, d[2] * one * q, -d_q * q * q};
      for (int k = 0; k < 4; ++k) {
        out[k] = reinterpret_cast<Float4>(reinterpret_cast<Int4>(out[k]) & nonzero);
      }
      Transpose4(out);
      std::memcpy(d_clip + 4 * v, out, sizeof(out));
    }
    for (; v < vertex_end; ++v) {
      Float4 d, c;
      std::memcpy(&d, d_projected[0] + 4 * v, sizeof(d));
      Float4 out = zero;
      if (LaneMask(d != zero) != 0u) {
        // x_px = (x q + 1) W / 2, y_px = (1 - y q) H / 2, z_ndc = z q, q = 1 / w.
        std::memcpy(&c, clip + 4 * v, sizeof(c));
        const float q = 1.0f / c[3];
        const Float4 through_q = d * (c * scale);
        const float d_q = d[3] + through_q[0] + through_q[1] + through_q[2];
        out = d * scale * q;
        out[3] = -d_q * q * q;
      }
      std::memcpy(d_clip + 4 * v, &out, sizeof(out));
    }
    return;
  }
  for (int64_t v = vertex_begin; v < vertex_end; ++v) {
    double projected[4] = {0.0, 0.0, 0.0, 0.0}, slow[4] = {0.0, 0.0, 0.0, 0.0};
    for (int band = 0; band < band_count; ++band) {
      for (int k = 0; k < 4; ++k) {
        projected[k] += d_projected[band][4 * v + k];
        if (d_clip_slow != nullptr && d_clip_slow[band] != nullptr) {
          slow[k] += d_clip_slow[band][4 * v + k];
        }
      }
    }
    FinishVertex(clip + 4 * v, projected, slow, width, height, d_clip + 4 * v);
  }
}

}  // namespace face3d
