// CPU loops of vertex normals; the arithmetic is in normals_core.h.
//
// The vertex-normal loops keep the vertices, the sums and the gradients as
// four-float rows (x, y, z, 0) in the caller's scratch, so that a triangle's
// face normal, its gradient and the additions into its vertices are 4-wide
// vector operations (GCC and Clang vector extensions: SSE on x86-64, NEON on
// ARM, plain code elsewhere). Lanes 0-2 do the operations of the header's
// FaceNormal, FaceNormalGrad and of the three-float additions, in the same
// order (the cross products as a.yzx b.zxy - a.zxy b.yzx), so the results
// are those of the three-float code bit for bit; lane 3 is never read out.
// The gradient takes the forward's sums (the VertexNormals op's second
// output) instead of adding the face normals again.
#include "normals_core.h"

#include <algorithm>

#if defined(__SSE2__)
#include <emmintrin.h>
#include <xmmintrin.h>
#endif

namespace face3d {
namespace {

typedef float Float4 __attribute__((vector_size(16)));
typedef int32_t Int4 __attribute__((vector_size(16)));

#if defined(__clang__)
#define FACE3D_NORMALS_SHUFFLE(a, i, j, k, l) __builtin_shufflevector(a, a, i, j, k, l)
#else
#define FACE3D_NORMALS_SHUFFLE(a, i, j, k, l) __builtin_shuffle(a, Int4{i, j, k, l})
#endif

inline Float4 Load4(const float* p) {
  Float4 v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

inline void Store4(float* p, Float4 v) { __builtin_memcpy(p, &v, sizeof(v)); }

// a x b lane by lane as Cross: lane 0 a1 b2 - a2 b1, lane 1 a2 b0 - a0 b2,
// lane 2 a0 b1 - a1 b0 (lane 3 a3 b3 - a3 b3).
inline Float4 Cross4(Float4 a, Float4 b) {
  return FACE3D_NORMALS_SHUFFLE(a, 1, 2, 0, 3) * FACE3D_NORMALS_SHUFFLE(b, 2, 0, 1, 3) -
         FACE3D_NORMALS_SHUFFLE(a, 2, 0, 1, 3) * FACE3D_NORMALS_SHUFFLE(b, 1, 2, 0, 3);
}

// points4[v] = (x, y, z, 0) of vertex v.
void PadVertices(const NormalsParams& p, float* points4) {
  for (int64_t v = 0; v < p.vertex_count; ++v) {
    const float* in = p.vertices + 3 * v;
    float* out = points4 + 4 * v;
    out[0] = in[0];
    out[1] = in[1];
    out[2] = in[2];
    out[3] = 0.0f;
  }
}

// sums4[v] = sum of the face normals of the triangles using v, in triangle
// order (as the three-float loop adds them).
void SumFaceNormals4(const NormalsParams& p, const float* points4, float* sums4) {
  std::fill(sums4, sums4 + 4 * p.vertex_count, 0.0f);
  for (int64_t t = 0; t < p.triangle_count; ++t) {
    const int32_t* tri = p.triangles + 3 * t;
    const Float4 v0 = Load4(points4 + 4 * tri[0]);
    const Float4 face = Cross4(Load4(points4 + 4 * tri[1]) - v0, Load4(points4 + 4 * tri[2]) - v0);
    for (int corner = 0; corner < 3; ++corner) {
      float* s = sums4 + 4 * tri[corner];
      Store4(s, Load4(s) + face);
    }
  }
}

// inverse[v] = InverseNorm(sums4 + 4 v) for every vertex: with SSE2 four
// vertices at a time (the rows transposed; max(squared, epsilon) is
// squared > epsilon ? squared : epsilon, NaN included, as maxps returns its
// second operand unless the first is greater; square root and division are
// correctly rounded), the same bits as InverseNorm.
void InverseNorms(const float* sums4, int64_t vertex_count, float* inverse) {
  int64_t v = 0;
#if defined(__SSE2__)
  const __m128 epsilon = _mm_set1_ps(kNormalEpsilon);
  const __m128 one = _mm_set1_ps(1.0f);
  for (; v + 4 <= vertex_count; v += 4) {
    __m128 x = _mm_loadu_ps(sums4 + 4 * v);
    __m128 y = _mm_loadu_ps(sums4 + 4 * v + 4);
    __m128 z = _mm_loadu_ps(sums4 + 4 * v + 8);
    __m128 w = _mm_loadu_ps(sums4 + 4 * v + 12);
    _MM_TRANSPOSE4_PS(x, y, z, w);
    const __m128 squared =
        _mm_add_ps(_mm_add_ps(_mm_mul_ps(x, x), _mm_mul_ps(y, y)), _mm_mul_ps(z, z));
    _mm_storeu_ps(inverse + v, _mm_div_ps(one, _mm_sqrt_ps(_mm_max_ps(squared, epsilon))));
  }
#endif
  for (; v < vertex_count; ++v) inverse[v] = InverseNorm(sums4 + 4 * v);
}

}  // namespace

void ComputeVertexNormals(const NormalsParams& params, float* scratch, float* normals,
                          float* sums) {
  float* points4 = scratch;
  float* sums4 = scratch + 4 * params.vertex_count;
  float* inverse = scratch + 8 * params.vertex_count;
  PadVertices(params, points4);
  SumFaceNormals4(params, points4, sums4);
  InverseNorms(sums4, params.vertex_count, inverse);
  for (int64_t v = 0; v < params.vertex_count; ++v) {
    for (int k = 0; k < 3; ++k) {
      sums[3 * v + k] = sums4[4 * v + k];
      normals[3 * v + k] = sums4[4 * v + k] * inverse[v];
    }
  }
}

void VertexNormalsGradient(const NormalsParams& params, const float* sums,
                           const float* d_normals, float* scratch, float* d_vertices) {
  const int64_t rows = 4 * params.vertex_count;
  float* points4 = scratch;
  float* sums4 = scratch + rows;  // then the vertices' gradient
  float* d_sums4 = scratch + 2 * rows;
  float* inverse = scratch + 3 * rows;
  PadVertices(params, points4);
  for (int64_t v = 0; v < params.vertex_count; ++v) {
    for (int k = 0; k < 3; ++k) sums4[4 * v + k] = sums[3 * v + k];
    sums4[4 * v + 3] = 0.0f;
  }
  InverseNorms(sums4, params.vertex_count, inverse);
  for (int64_t v = 0; v < params.vertex_count; ++v) {
    float* d_s = d_sums4 + 4 * v;
    NormalizeGradGivenInverse(sums4 + 4 * v, inverse[v], d_normals + 3 * v, d_s);
    d_s[3] = 0.0f;
  }
  float* d_vertices4 = sums4;
  std::fill(d_vertices4, d_vertices4 + rows, 0.0f);
  for (int64_t t = 0; t < params.triangle_count; ++t) {
    const int32_t* tri = params.triangles + 3 * t;
    // FaceNormalGrad: d_v1 = b x d_face, d_v2 = d_face x a, d_v0 = -(d_v1 + d_v2).
    const Float4 d_face = Load4(d_sums4 + 4 * tri[0]) + Load4(d_sums4 + 4 * tri[1]) +
                          Load4(d_sums4 + 4 * tri[2]);
    const Float4 v0 = Load4(points4 + 4 * tri[0]);
    const Float4 a = Load4(points4 + 4 * tri[1]) - v0;
    const Float4 b = Load4(points4 + 4 * tri[2]) - v0;
    const Float4 d_v1 = Cross4(b, d_face);
    const Float4 d_v2 = Cross4(d_face, a);
    const Float4 d_v0 = -(d_v1 + d_v2);
    float* d0 = d_vertices4 + 4 * tri[0];
    Store4(d0, Load4(d0) + d_v0);
    float* d1 = d_vertices4 + 4 * tri[1];
    Store4(d1, Load4(d1) + d_v1);
    float* d2 = d_vertices4 + 4 * tri[2];
    Store4(d2, Load4(d2) + d_v2);
  }
  for (int64_t v = 0; v < params.vertex_count; ++v) {
    for (int k = 0; k < 3; ++k) d_vertices[3 * v + k] = d_vertices4[4 * v + k];
  }
}

void ComputeTriangleNormals(const NormalsParams& params, float* normals) {
  for (int64_t t = 0; t < params.triangle_count; ++t) {
    const int32_t* tri = params.triangles + 3 * t;
    float face[3];
    FaceNormal(params.vertices + 3 * tri[0], params.vertices + 3 * tri[1],
               params.vertices + 3 * tri[2], face);
    const float r = InverseNorm(face);
    for (int k = 0; k < 3; ++k) normals[3 * t + k] = face[k] * r;
  }
}

void TriangleNormalsGradient(const NormalsParams& params, const float* d_normals,
                             float* d_vertices) {
  std::fill(d_vertices, d_vertices + 3 * params.vertex_count, 0.0f);
  for (int64_t t = 0; t < params.triangle_count; ++t) {
    const int32_t* tri = params.triangles + 3 * t;
    const float* v0 = params.vertices + 3 * tri[0];
    const float* v1 = params.vertices + 3 * tri[1];
    const float* v2 = params.vertices + 3 * tri[2];
    float face[3], d_face[3];
    FaceNormal(v0, v1, v2, face);
    NormalizeGrad(face, d_normals + 3 * t, d_face);
    float d_v[3][3];
    FaceNormalGrad(v0, v1, v2, d_face, d_v[0], d_v[1], d_v[2]);
    for (int corner = 0; corner < 3; ++corner) {
      float* d = d_vertices + 3 * tri[corner];
      d[0] += d_v[corner][0];
      d[1] += d_v[corner][1];
      d[2] += d_v[corner][2];
    }
  }
}

}  // namespace face3d
