// CPU loops of vertex normals; the arithmetic is in normals_core.h.
#include "normals_core.h"

#include <algorithm>

namespace face3d {
namespace {

// sums[v] = sum of the face normals of the triangles using v.
void SumFaceNormals(const NormalsParams& p, float* sums) {
  std::fill(sums, sums + 3 * p.vertex_count, 0.0f);
  for (int64_t t = 0; t < p.triangle_count; ++t) {
    const int32_t* tri = p.triangles + 3 * t;
    float face[3];
    FaceNormal(p.vertices + 3 * tri[0], p.vertices + 3 * tri[1],
               p.vertices + 3 * tri[2], face);
    for (int corner = 0; corner < 3; ++corner) {
      float* s = sums + 3 * tri[corner];
      s[0] += face[0];
      s[1] += face[1];
      s[2] += face[2];
    }
  }
}

}  // namespace

void ComputeVertexNormals(const NormalsParams& params, float* sums,
                          float* normals) {
  SumFaceNormals(params, sums);
  for (int64_t v = 0; v < params.vertex_count; ++v) {
    const float* s = sums + 3 * v;
    const float r = InverseNorm(s);
    for (int k = 0; k < 3; ++k) normals[3 * v + k] = s[k] * r;
  }
}

void VertexNormalsGradient(const NormalsParams& params, const float* d_normals,
                           float* scratch, float* d_vertices) {
  float* sums = scratch;
  float* d_sums = scratch + 3 * params.vertex_count;
  SumFaceNormals(params, sums);
  for (int64_t v = 0; v < params.vertex_count; ++v) {
    NormalizeGrad(sums + 3 * v, d_normals + 3 * v, d_sums + 3 * v);
  }
  std::fill(d_vertices, d_vertices + 3 * params.vertex_count, 0.0f);
  for (int64_t t = 0; t < params.triangle_count; ++t) {
    const int32_t* tri = params.triangles + 3 * t;
    float d_face[3];
    for (int k = 0; k < 3; ++k) {
      d_face[k] = d_sums[3 * tri[0] + k] + d_sums[3 * tri[1] + k] +
                  d_sums[3 * tri[2] + k];
    }
    float d_v[3][3];
    FaceNormalGrad(params.vertices + 3 * tri[0], params.vertices + 3 * tri[1],
                   params.vertices + 3 * tri[2], d_face, d_v[0], d_v[1],
                   d_v[2]);
    for (int corner = 0; corner < 3; ++corner) {
      float* d = d_vertices + 3 * tri[corner];
      d[0] += d_v[corner][0];
      d[1] += d_v[corner][1];
      d[2] += d_v[corner][2];
    }
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
