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

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#if defined(__SSE2__)
#include <emmintrin.h>
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
  for (int64_t v = 0; v < vertex_count; ++v) {
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

  const Float4 box_low = {0.0f, static_cast<float>(row_begin), 0.0f, static_cast<float>(row_begin)};
  const Float4 box_high = {static_cast<float>(width), static_cast<float>(row_end),
                           static_cast<float>(width), static_cast<float>(row_end)};
  // One triangle, any size or kind.
  auto rasterize_one = [&](int64_t t) {
    const int32_t* ids = triangles + 3 * t;
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
      RasterizeHomogeneousTriangle(clip, ids, static_cast<int32_t>(t), width,
                                   height, row_begin, row_end, cull_backfaces,
                                   triangle_ids, mask, barycentrics, depth);
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
      if (!cull_backfaces) inside_lanes |= Min4(Min4(e0, e1), e2) >= zero;
      unsigned inside = LaneMask(inside_lanes) & kBlockLanes[LaneMask(counts == kTwo) & 3u];
      while (inside != 0) {
        const int lane = __builtin_ctz(inside);
        inside &= inside - 1;
        const float e[3] = {e0[lane], e1[lane], e2[lane]};
        ShadePixel(e, v, id, static_cast<int64_t>(row_min + (lane >> 1)) * width + col_min + (lane & 1),
                   triangle_ids, mask, barycentrics, depth);
      }
      return;
    }
    // Larger triangles: the shared setup (the same candidates) and test.
    FastCandidates setup;
    if (!FastTriangleSetup(v, width, row_begin, row_end, cull_backfaces, &setup)) return;
    for (int row = setup.r0; row < setup.r1; ++row) {
      const int64_t row_offset = static_cast<int64_t>(row) * width;
      for (int col = setup.c0; col < setup.c1; ++col) {
        float e[3];
        if (!FastPixelInside(setup, v, col, row, cull_backfaces, e)) continue;
        ShadePixel(e, v, id, row_offset + col, triangle_ids, mask, barycentrics, depth);
      }
    }
  };

  // Groups of four triangles: the common case, a candidate block of at most
  // 2x2 pixels, is tested one block position at a time for all four
  // triangles at once (lane k = triangle t + k), with the same arithmetic as
  // rasterize_one; the other triangles of the group go to rasterize_one.
  // Triangles are shaded in order, so depth ties resolve as before.
  const Float4 zero = {0.0f, 0.0f, 0.0f, 0.0f};
  const Float4 low_x = {0.0f, 0.0f, 0.0f, 0.0f};
  const Float4 high_x = zero + static_cast<float>(width);
  const Float4 low_y = zero + static_cast<float>(row_begin);
  const Float4 high_y = zero + static_cast<float>(row_end);
  const Int4 one = {1, 1, 1, 1};
  const Int4 two = one + one;
  int64_t t = 0;
  for (; t + 4 <= triangle_count; t += 4) {
    const int32_t* ids = triangles + 3 * t;
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
        if (!cull_backfaces) lanes |= Min4(Min4(e0, e1), e2) >= zero;
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
                   triangle_ids, mask, barycentrics, depth);
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
                     triangle_ids, mask, barycentrics, depth);
        }
      } else if (!((empty >> k) & 1u)) {
        rasterize_one(t + k);
      }
    }
  }
  for (; t < triangle_count; ++t) rasterize_one(t);
}

namespace {

// Pixels ahead whose triangle the gradient prefetches (see there).
constexpr int64_t kPrefetchAhead = 64;

// AccumulateGradientRows for d_barycentrics (kBary) and d_depth (kDepth)
// given or null, so that absent gradients cost nothing per pixel.
template <bool kBary, bool kDepth>
bool AccumulateGradientRowsImpl(const float* clip, const ProjectedVertex* projected,
                                const int32_t* triangles,
                                const int32_t* triangle_ids, const float* mask,
                                const float* d_barycentrics, const float* d_depth,
                                int width, int height, int row_begin, int row_end,
                                float* d_projected, float* d_clip_slow) {
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
      const float g[3] = {kBary ? d_barycentrics[3 * pixel + 0] : 0.0f,
                          kBary ? d_barycentrics[3 * pixel + 1] : 0.0f,
                          kBary ? d_barycentrics[3 * pixel + 2] : 0.0f};
      const float g_depth = kDepth ? d_depth[pixel] : 0.0f;
      const Float4 g4 = {g[0], g[1], g[2], g_depth};
      if (LaneMask(g4 != Float4{0.0f, 0.0f, 0.0f, 0.0f}) == 0u) continue;
      const int32_t* ids = triangles + 3 * static_cast<int64_t>(triangle_ids[pixel]);
      const ProjectedVertex* const v[3] = {projected + ids[0], projected + ids[1],
                                           projected + ids[2]};
      if (!IsFinite(v[0]->x + v[1]->x + v[2]->x)) {
        if (d_clip_slow == nullptr) return false;
        AccumulateHomogeneousPixel(clip, ids, g, g_depth, PixelNdcX(col, width),
                                   PixelNdcY(row, height), d_clip_slow);
        continue;
      }
      // Fast path, in the forward pass's own terms: with edge functions e_i,
      // t_i = e_i inv_w_i, barycentrics b_i = t_i / sum(t) and depth
      // sum_i e_i z_i / sum(e). Gradients go to the projected vertices here
      // and through the projection in FinishGradient. Lane i of a vector
      // holds vertex i's value (lane 3 repeats vertex 2 with e_3 = 0 exactly,
      // so it adds nothing to the sums and is never stored); `next` and
      // `prev` rotate lanes 0-2 to vertices i + 1 and i - 1 (mod 3).
      const Float4 a = LoadVertex(v[0]), b = LoadVertex(v[1]), c = LoadVertex(v[2]);
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
      if (e_sum == 0.0f || t_sum == 0.0f) continue;
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
  }
  return true;
}

}  // namespace

bool AccumulateGradientRows(const float* clip, const ProjectedVertex* projected,
                            const int32_t* triangles,
                            const int32_t* triangle_ids, const float* mask,
                            const float* d_barycentrics, const float* d_depth,
                            int width, int height, int row_begin, int row_end,
                            float* d_projected, float* d_clip_slow) {
  if (d_barycentrics != nullptr && d_depth != nullptr) {
    return AccumulateGradientRowsImpl<true, true>(
        clip, projected, triangles, triangle_ids, mask, d_barycentrics, d_depth,
        width, height, row_begin, row_end, d_projected, d_clip_slow);
  }
  if (d_barycentrics != nullptr) {
    return AccumulateGradientRowsImpl<true, false>(
        clip, projected, triangles, triangle_ids, mask, d_barycentrics, d_depth,
        width, height, row_begin, row_end, d_projected, d_clip_slow);
  }
  if (d_depth != nullptr) {
    return AccumulateGradientRowsImpl<false, true>(
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
