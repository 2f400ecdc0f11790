// CPU loops of the crop camera's projection and of vector rotation; see camera_core.h.
//
// The loops walk the mesh in blocks of kBlock vertices copied into
// structure-of-arrays buffers: the per-vertex arithmetic then runs on the
// block's own arrays (nothing aliases them) and vectorises, compiled for the
// baseline and for AVX2 (simd_dispatch.h); lane by lane it does the float
// operations of the one-vertex-at-a-time code in its order, so points, clip,
// rotated vectors, d_vertices and d_vectors are the same bits. The sums over the vertices (rotation, scale,
// shift) run in double on terms computed as before, into kLanes partial sums
// each (vertex i of a block into lane i % kLanes, a fixed order whatever the
// vector width), added in lane order at the end.
#include "camera_core.h"

#include <algorithm>

#include "simd_dispatch.h"

namespace face3d {
namespace {

constexpr int kBlock = 128;
constexpr int kLanes = 8;
static_assert(kBlock % kLanes == 0, "a block is whole lane groups");

inline void Rotate(const float* r, float x0, float x1, float x2, float* out) {
  out[0] = (x0 * r[0] + x1 * r[1]) + x2 * r[2];
  out[1] = (x0 * r[3] + x1 * r[4]) + x2 * r[5];
  out[2] = (x0 * r[6] + x1 * r[7]) + x2 * r[8];
}

// Rows [begin, begin + count) of `rows` [N, stride] (first three columns)
// into soa[3][kBlock], zeros after them up to `padded`.
FACE3D_SIMD_INLINE void Deinterleave(const float* rows, int stride, int64_t begin, int count,
                                     int padded, float (*soa)[kBlock]) {
  const float* in = rows + stride * begin;
  for (int i = 0; i < count; ++i) {
    soa[0][i] = in[stride * i];
    soa[1][i] = in[stride * i + 1];
    soa[2][i] = in[stride * i + 2];
  }
  for (int i = count; i < padded; ++i) soa[0][i] = soa[1][i] = soa[2][i] = 0.0f;
}

FACE3D_SIMD_INLINE void Interleave(const float (*soa)[kBlock], int64_t begin, int count,
                                   float* rows) {
  float* out = rows + 3 * begin;
  for (int i = 0; i < count; ++i) {
    out[3 * i] = soa[0][i];
    out[3 * i + 1] = soa[1][i];
    out[3 * i + 2] = soa[2][i];
  }
}

// lanes[i % kLanes] += term(i) for the block's real vertices i < count (the
// padding adds nothing, not even a NaN of non-finite parameters).
template <typename Term>
FACE3D_SIMD_INLINE void AddToLanes(int count, double* lanes, Term term) {
  const int whole = count / kLanes * kLanes;
  for (int i = 0; i < whole; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lanes[j] += term(i + j);
  }
  for (int i = whole; i < count; ++i) lanes[i - whole] += term(i);
}

FACE3D_SIMD_INLINE double SumLanes(const double* lanes) {
  double sum = 0.0;
  for (int j = 0; j < kLanes; ++j) sum += lanes[j];
  return sum;
}

struct ProjectGradientBlock {
  float x[3][kBlock], g_points[3][kBlock], g_clip[3][kBlock];  // in
  float d_x[3][kBlock];                                        // out
  float d[3][kBlock], p[3][kBlock], du[kBlock], dv[kBlock], ddepth[kBlock],
      dp[3][kBlock];  // to the sums
};

template <bool kPoints, bool kClip>
FACE3D_SIMD_INLINE void CropProjectGradientBody(const CropProjectParams& params,
                                                const float* d_points, const float* d_clip,
                                                float* d_vertices, float* d_rotation,
                                                float* d_scale, float* d_shift) {
  float r[9];
  std::copy(params.rotation, params.rotation + 9, r);
  const float c0 = params.centre[0], c1 = params.centre[1], c2 = params.centre[2];
  const float s = params.scale;
  const float size = params.image_size, depth_scale = params.depth_scale;
  // Partial sums: rotation [9], scale, u, v.
  double lanes[12][kLanes] = {{0.0}};
  ProjectGradientBlock block;
  for (int64_t begin = 0; begin < params.vertex_count; begin += kBlock) {
    const int count = static_cast<int>(std::min<int64_t>(kBlock, params.vertex_count - begin));
    const int padded = (count + kLanes - 1) / kLanes * kLanes;
    Deinterleave(params.vertices, 3, begin, count, padded, block.x);
    if (kPoints) Deinterleave(d_points, 3, begin, count, padded, block.g_points);
    if (kClip) Deinterleave(d_clip, 4, begin, count, padded, block.g_clip);
    for (int i = 0; i < padded; ++i) {
      const float d[3] = {block.x[0][i] - c0, block.x[1][i] - c1, block.x[2][i] - c2};
      float p[3];
      Rotate(r, d[0], d[1], d[2], p);
      // d(u, v, depth): the points' own gradient plus the clip's through pixels_to_clip.
      float du = 0.0f, dv = 0.0f, ddepth = 0.0f;
      if (kClip) {
        du = (block.g_clip[0][i] / size) * 2.0f;
        dv = (block.g_clip[1][i] / size) * -2.0f;
        ddepth = (block.g_clip[2][i] / depth_scale) * -1.0f;
      }
      if (kPoints) {
        du += block.g_points[0][i];
        dv += block.g_points[1][i];
        ddepth += block.g_points[2][i];
      }
      const float dp[3] = {s * du, -s * dv, s * ddepth};
      block.d_x[0][i] = (dp[0] * r[0] + dp[1] * r[3]) + dp[2] * r[6];
      block.d_x[1][i] = (dp[0] * r[1] + dp[1] * r[4]) + dp[2] * r[7];
      block.d_x[2][i] = (dp[0] * r[2] + dp[1] * r[5]) + dp[2] * r[8];
      for (int k = 0; k < 3; ++k) {
        block.d[k][i] = d[k];
        block.p[k][i] = p[k];
        block.dp[k][i] = dp[k];
      }
      block.du[i] = du;
      block.dv[i] = dv;
      block.ddepth[i] = ddepth;
    }
    Interleave(block.d_x, begin, count, d_vertices);
    for (int a = 0; a < 3; ++a) {
      for (int b = 0; b < 3; ++b) {
        const float* dp = block.dp[a];
        const float* d = block.d[b];
        AddToLanes(count, lanes[3 * a + b],
                   [&](int i) { return static_cast<double>(dp[i]) * d[i]; });
      }
    }
    AddToLanes(count, lanes[9], [&](int i) {
      return static_cast<double>(block.du[i]) * block.p[0][i] -
             static_cast<double>(block.dv[i]) * block.p[1][i] +
             static_cast<double>(block.ddepth[i]) * block.p[2][i];
    });
    AddToLanes(count, lanes[10], [&](int i) { return static_cast<double>(block.du[i]); });
    AddToLanes(count, lanes[11], [&](int i) { return static_cast<double>(block.dv[i]); });
  }
  for (int i = 0; i < 9; ++i) d_rotation[i] = static_cast<float>(SumLanes(lanes[i]));
  d_scale[0] = static_cast<float>(SumLanes(lanes[9]));
  d_shift[0] = static_cast<float>(SumLanes(lanes[10]));
  d_shift[1] = static_cast<float>(SumLanes(lanes[11]));
}

FACE3D_SIMD_INLINE void CropProjectGradientAny(const CropProjectParams& params,
                                               const float* d_points, const float* d_clip,
                                               float* d_vertices, float* d_rotation,
                                               float* d_scale, float* d_shift) {
  if (d_points != nullptr && d_clip != nullptr) {
    CropProjectGradientBody<true, true>(params, d_points, d_clip, d_vertices, d_rotation, d_scale,
                                        d_shift);
  } else if (d_points != nullptr) {
    CropProjectGradientBody<true, false>(params, d_points, d_clip, d_vertices, d_rotation,
                                         d_scale, d_shift);
  } else if (d_clip != nullptr) {
    CropProjectGradientBody<false, true>(params, d_points, d_clip, d_vertices, d_rotation,
                                         d_scale, d_shift);
  } else {
    CropProjectGradientBody<false, false>(params, d_points, d_clip, d_vertices, d_rotation,
                                          d_scale, d_shift);
  }
}

struct RotateGradientBlock {
  float x[3][kBlock], g[3][kBlock], d_x[3][kBlock];
};

FACE3D_SIMD_INLINE void RotateVectorsGradientBody(const float* vectors, const float* rotation,
                                                  const float* d_out, int64_t vertex_count,
                                                  float* d_vectors, float* d_rotation) {
  float r[9];
  std::copy(rotation, rotation + 9, r);
  double lanes[9][kLanes] = {{0.0}};
  RotateGradientBlock block;
  for (int64_t begin = 0; begin < vertex_count; begin += kBlock) {
    const int count = static_cast<int>(std::min<int64_t>(kBlock, vertex_count - begin));
    const int padded = (count + kLanes - 1) / kLanes * kLanes;
    Deinterleave(vectors, 3, begin, count, padded, block.x);
    Deinterleave(d_out, 3, begin, count, padded, block.g);
    for (int i = 0; i < padded; ++i) {
      const float g[3] = {block.g[0][i], block.g[1][i], block.g[2][i]};
      block.d_x[0][i] = (g[0] * r[0] + g[1] * r[3]) + g[2] * r[6];
      block.d_x[1][i] = (g[0] * r[1] + g[1] * r[4]) + g[2] * r[7];
      block.d_x[2][i] = (g[0] * r[2] + g[1] * r[5]) + g[2] * r[8];
    }
    Interleave(block.d_x, begin, count, d_vectors);
    for (int a = 0; a < 3; ++a) {
      for (int b = 0; b < 3; ++b) {
        const float* g = block.g[a];
        const float* x = block.x[b];
        AddToLanes(count, lanes[3 * a + b],
                   [&](int i) { return static_cast<double>(g[i]) * x[i]; });
      }
    }
  }
  for (int i = 0; i < 9; ++i) d_rotation[i] = static_cast<float>(SumLanes(lanes[i]));
}

struct ProjectBlock {
  float x[3][kBlock], points[3][kBlock], clip[3][kBlock];
};

FACE3D_SIMD_INLINE void CropProjectBody(const CropProjectParams& params, float* points,
                                        float* clip) {
  float r[9];
  std::copy(params.rotation, params.rotation + 9, r);
  const float c0 = params.centre[0], c1 = params.centre[1], c2 = params.centre[2];
  const float s = params.scale, minus_s = -params.scale;
  const float half = 0.5f * params.image_size;
  const float size = params.image_size, depth_scale = params.depth_scale;
  const float tu = params.shift_u, tv = params.shift_v;
  ProjectBlock block;
  for (int64_t begin = 0; begin < params.vertex_count; begin += kBlock) {
    const int count = static_cast<int>(std::min<int64_t>(kBlock, params.vertex_count - begin));
    const int padded = (count + kLanes - 1) / kLanes * kLanes;
    Deinterleave(params.vertices, 3, begin, count, padded, block.x);
    for (int i = 0; i < padded; ++i) {
      float p[3];
      Rotate(r, block.x[0][i] - c0, block.x[1][i] - c1, block.x[2][i] - c2, p);
      const float u = (s * p[0] + half) + tu;
      const float v = (minus_s * p[1] + half) + tv;
      const float depth = (s * p[2] + 0.0f) + 0.0f;
      block.points[0][i] = u;
      block.points[1][i] = v;
      block.points[2][i] = depth;
      block.clip[0][i] = (u * 2.0f) / size + -1.0f;
      block.clip[1][i] = (v * -2.0f) / size + 1.0f;
      block.clip[2][i] = (depth * -1.0f) / depth_scale + 0.0f;
    }
    Interleave(block.points, begin, count, points);
    float* q = clip + 4 * begin;
    for (int i = 0; i < count; ++i) {
      q[4 * i] = block.clip[0][i];
      q[4 * i + 1] = block.clip[1][i];
      q[4 * i + 2] = block.clip[2][i];
      q[4 * i + 3] = 1.0f;
    }
  }
}

FACE3D_SIMD_INLINE void RotateVectorsBody(const float* vectors, const float* rotation,
                                          int64_t vertex_count, float* out) {
  float r[9];
  std::copy(rotation, rotation + 9, r);
  RotateGradientBlock block;  // x in, d_x out
  for (int64_t begin = 0; begin < vertex_count; begin += kBlock) {
    const int count = static_cast<int>(std::min<int64_t>(kBlock, vertex_count - begin));
    const int padded = (count + kLanes - 1) / kLanes * kLanes;
    Deinterleave(vectors, 3, begin, count, padded, block.x);
    for (int i = 0; i < padded; ++i) {
      float o[3];
      Rotate(r, block.x[0][i], block.x[1][i], block.x[2][i], o);
      for (int k = 0; k < 3; ++k) block.d_x[k][i] = o[k];
    }
    Interleave(block.d_x, begin, count, out);
  }
}

void CropProjectBaseline(const CropProjectParams& params, float* points, float* clip) {
  CropProjectBody(params, points, clip);
}

void RotateVectorsBaseline(const float* vectors, const float* rotation, int64_t vertex_count,
                           float* out) {
  RotateVectorsBody(vectors, rotation, vertex_count, out);
}

#if defined(FACE3D_SIMD_AVX2)
FACE3D_SIMD_AVX2_TARGET void CropProjectAvx2(const CropProjectParams& params, float* points,
                                             float* clip) {
  CropProjectBody(params, points, clip);
}

FACE3D_SIMD_AVX2_TARGET void RotateVectorsAvx2(const float* vectors, const float* rotation,
                                               int64_t vertex_count, float* out) {
  RotateVectorsBody(vectors, rotation, vertex_count, out);
}
#endif

void CropProjectGradientBaseline(const CropProjectParams& params, const float* d_points,
                                 const float* d_clip, float* d_vertices, float* d_rotation,
                                 float* d_scale, float* d_shift) {
  CropProjectGradientAny(params, d_points, d_clip, d_vertices, d_rotation, d_scale, d_shift);
}

void RotateVectorsGradientBaseline(const float* vectors, const float* rotation,
                                   const float* d_out, int64_t vertex_count, float* d_vectors,
                                   float* d_rotation) {
  RotateVectorsGradientBody(vectors, rotation, d_out, vertex_count, d_vectors, d_rotation);
}

#if defined(FACE3D_SIMD_AVX2)
FACE3D_SIMD_AVX2_TARGET void CropProjectGradientAvx2(const CropProjectParams& params,
                                                     const float* d_points, const float* d_clip,
                                                     float* d_vertices, float* d_rotation,
                                                     float* d_scale, float* d_shift) {
  CropProjectGradientAny(params, d_points, d_clip, d_vertices, d_rotation, d_scale, d_shift);
}

FACE3D_SIMD_AVX2_TARGET void RotateVectorsGradientAvx2(const float* vectors,
                                                       const float* rotation,
                                                       const float* d_out, int64_t vertex_count,
                                                       float* d_vectors, float* d_rotation) {
  RotateVectorsGradientBody(vectors, rotation, d_out, vertex_count, d_vectors, d_rotation);
}
#endif

}  // namespace

void CropProject(const CropProjectParams& params, float* points, float* clip) {
#if defined(FACE3D_SIMD_AVX2)
  if (UseAvx2Loops()) return CropProjectAvx2(params, points, clip);
#endif
  CropProjectBaseline(params, points, clip);
}

void CropProjectGradient(const CropProjectParams& params, const float* d_points,
                         const float* d_clip, float* d_vertices, float* d_rotation,
                         float* d_scale, float* d_shift) {
#if defined(FACE3D_SIMD_AVX2)
  if (UseAvx2Loops()) {
    return CropProjectGradientAvx2(params, d_points, d_clip, d_vertices, d_rotation, d_scale,
                                   d_shift);
  }
#endif
  CropProjectGradientBaseline(params, d_points, d_clip, d_vertices, d_rotation, d_scale, d_shift);
}

void RotateVectors(const float* vectors, const float* rotation, int64_t vertex_count,
                   float* out) {
#if defined(FACE3D_SIMD_AVX2)
  if (UseAvx2Loops()) return RotateVectorsAvx2(vectors, rotation, vertex_count, out);
#endif
  RotateVectorsBaseline(vectors, rotation, vertex_count, out);
}

void RotateVectorsGradient(const float* vectors, const float* rotation, const float* d_out,
                           int64_t vertex_count, float* d_vectors, float* d_rotation) {
#if defined(FACE3D_SIMD_AVX2)
  if (UseAvx2Loops()) {
    return RotateVectorsGradientAvx2(vectors, rotation, d_out, vertex_count, d_vectors,
                                     d_rotation);
  }
#endif
  RotateVectorsGradientBaseline(vectors, rotation, d_out, vertex_count, d_vectors, d_rotation);
}

}  // namespace face3d
