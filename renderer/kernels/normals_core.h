// Area-weighted unit vertex normals of a triangle mesh, and unit face normals:
// the plain C++ core of the VertexNormals and TriangleNormals ops and their
// gradients.
//
// No TensorFlow in here. The per-triangle and per-vertex arithmetic is in
// inline functions marked FACE3D_HOST_DEVICE, shared with the CUDA twin
// (normals_cuda.cu: one thread per triangle adding into the vertex sums with
// atomics, then one per vertex); the CPU loops below own one mesh (batch
// element) each and add plainly.
//
// Layouts (row-major, one mesh): vertices and normals [vertex_count, 3];
// triangles [triangle_count, 3] vertex indices (validated by the caller).
// Face normal f = (v1 - v0) x (v2 - v0), whose length is twice the area: the
// sum s over a vertex's faces weights them by area. The unit normal is
// n = s / sqrt(max(|s|^2, kNormalEpsilon)), exactly as
// tf.math.l2_normalize(s, epsilon=kNormalEpsilon), so a vertex no
// non-degenerate face uses gets n = 0.
#ifndef FACE3D_RENDERER_KERNELS_NORMALS_CORE_H_
#define FACE3D_RENDERER_KERNELS_NORMALS_CORE_H_

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

constexpr float kNormalEpsilon = 1e-24f;

struct NormalsParams {
  const float* vertices;     // [vertex_count, 3]
  const int32_t* triangles;  // [triangle_count, 3]
  int64_t vertex_count;
  int64_t triangle_count;
};

// out = a x b.
FACE3D_HOST_DEVICE inline void Cross(const float* a, const float* b,
                                     float* out) {
  out[0] = a[1] * b[2] - a[2] * b[1];
  out[1] = a[2] * b[0] - a[0] * b[2];
  out[2] = a[0] * b[1] - a[1] * b[0];
}

// face = (v1 - v0) x (v2 - v0).
FACE3D_HOST_DEVICE inline void FaceNormal(const float* v0, const float* v1,
                                          const float* v2, float* face) {
  const float a[3] = {v1[0] - v0[0], v1[1] - v0[1], v1[2] - v0[2]};
  const float b[3] = {v2[0] - v0[0], v2[1] - v0[1], v2[2] - v0[2]};
  Cross(a, b, face);
}

// 1 / sqrt(max(|s|^2, kNormalEpsilon)).
FACE3D_HOST_DEVICE inline float InverseNorm(const float* s) {
  const float squared = s[0] * s[0] + s[1] * s[1] + s[2] * s[2];
  return 1.0f / sqrtf(squared > kNormalEpsilon ? squared : kNormalEpsilon);
}

// Gradient of n = s * r, r = InverseNorm(s), with respect to s, given d_n
// and r: r (d_n - n (n . d_n)) where |s|^2 exceeds the epsilon, else r d_n
// (the clamped norm is constant there).
FACE3D_HOST_DEVICE inline void NormalizeGradGivenInverse(const float* s, float r,
                                                         const float* d_n, float* d_s) {
  const float squared = s[0] * s[0] + s[1] * s[1] + s[2] * s[2];
  float projection = 0.0f;
  if (squared > kNormalEpsilon) {
    projection = r * r * (s[0] * d_n[0] + s[1] * d_n[1] + s[2] * d_n[2]);
  }
  for (int k = 0; k < 3; ++k) d_s[k] = r * (d_n[k] - s[k] * projection);
}

// Gradient of n = s * InverseNorm(s) with respect to s, given d_n.
FACE3D_HOST_DEVICE inline void NormalizeGrad(const float* s, const float* d_n,
                                             float* d_s) {
  NormalizeGradGivenInverse(s, InverseNorm(s), d_n, d_s);
}

// Given d_face (the gradient of the face normal), the gradients of the
// triangle's vertices: d_v1 = b x d_face, d_v2 = d_face x a,
// d_v0 = -(d_v1 + d_v2), with a = v1 - v0, b = v2 - v0.
FACE3D_HOST_DEVICE inline void FaceNormalGrad(const float* v0, const float* v1,
                                              const float* v2,
                                              const float* d_face, float* d_v0,
                                              float* d_v1, float* d_v2) {
  const float a[3] = {v1[0] - v0[0], v1[1] - v0[1], v1[2] - v0[2]};
  const float b[3] = {v2[0] - v0[0], v2[1] - v0[1], v2[2] - v0[2]};
  Cross(b, d_face, d_v1);
  Cross(d_face, a, d_v2);
  for (int k = 0; k < 3; ++k) d_v0[k] = -(d_v1[k] + d_v2[k]);
}

// The scratch floats of ComputeVertexNormals and VertexNormalsGradient for
// one mesh, per vertex: four-float rows of the vertices and of the sums (and,
// for the gradient, of the sums' gradient) and the inverse norms.
constexpr int64_t kVertexNormalsScratchPerVertex = 9;
constexpr int64_t kVertexNormalsGradientScratchPerVertex = 13;

// Unit normals [vertex_count, 3] of one mesh, and the unnormalised sums
// [vertex_count, 3] that the gradient takes; `scratch` holds
// kVertexNormalsScratchPerVertex * vertex_count floats.
void ComputeVertexNormals(const NormalsParams& params, float* scratch,
                          float* normals, float* sums);

// d_vertices [vertex_count, 3] (overwritten) of one mesh given the sums
// [vertex_count, 3] of ComputeVertexNormals (not recomputed) and d_normals
// [vertex_count, 3]; `scratch` holds
// kVertexNormalsGradientScratchPerVertex * vertex_count floats.
void VertexNormalsGradient(const NormalsParams& params, const float* sums,
                           const float* d_normals, float* scratch,
                           float* d_vertices);

// Unit face normals [triangle_count, 3] of one mesh:
// normalize((v1 - v0) x (v2 - v0)) with the same epsilon as the vertex normals
// (tf.math.l2_normalize(face, epsilon=kNormalEpsilon): 0 for a degenerate face).
void ComputeTriangleNormals(const NormalsParams& params, float* normals);

// d_vertices [vertex_count, 3] (overwritten) of one mesh given d_normals
// [triangle_count, 3] of its unit face normals.
void TriangleNormalsGradient(const NormalsParams& params, const float* d_normals,
                             float* d_vertices);

}  // namespace face3d

#endif  // FACE3D_RENDERER_KERNELS_NORMALS_CORE_H_
