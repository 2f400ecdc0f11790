// CUDA twin of the vertex- and triangle-normals core (normals_core.h): framework-free
// parameters and launchers, used by the GPU kernels of normals_op.cc (with
// GOOGLE_CUDA) and by the standalone harness (fused_harness.cc).
//
// All pointers are device memory; every launcher runs asynchronously on
// `stream` (a cudaStream_t passed as void*) and returns nullptr or the CUDA
// error's text. Triangle indices must already be valid (the op checks them on
// the device, FindFirstOutOfRangeCuda).
//
// Forward: one thread per (mesh, triangle) computes its face normal with the
// core's FaceNormal and adds it into its three vertices' sums with float
// atomicAdd; then one thread per vertex normalises with the core's
// InverseNorm. Gradient: the sums again, one thread per vertex for the
// core's NormalizeGrad, then one per triangle for FaceNormalGrad, added into
// the vertices with atomicAdd. The per-element arithmetic is the CPU's; the
// sums are added in another order (the CPU adds in triangle order), so the
// results agree with the CPU's to rounding and may differ in the last bits
// from run to run. Atomics rather than a gather: a vertex-to-triangle index
// would have to be built from the triangle list (a sort) on every call or
// cached across calls by the op; a vertex has about six triangles, so the
// atomics rarely contend.
#ifndef FACE3D_RENDERER_KERNELS_NORMALS_CUDA_H_
#define FACE3D_RENDERER_KERNELS_NORMALS_CUDA_H_

#include <cstdint>

namespace face3d {

struct NormalsCudaParams {
  const float* vertices;     // [batch, vertex_count, 3]
  const int32_t* triangles;  // [triangle_count, 3], validated, shared by the batch
  int64_t batch;
  int64_t vertex_count;
  int64_t triangle_count;
};

// normals [batch, vertex_count, 3]; sums [batch, vertex_count, 3] is scratch
// (it ends holding the unnormalised sums).
const char* VertexNormalsCuda(const NormalsCudaParams& params, float* sums,
                              float* normals, void* stream);

// d_vertices [batch, vertex_count, 3] (overwritten) given d_normals; scratch
// holds 2 * batch * vertex_count * 3 floats.
const char* VertexNormalsGradientCuda(const NormalsCudaParams& params,
                                      const float* d_normals, float* scratch,
                                      float* d_vertices, void* stream);

// TriangleNormals: normals [batch, triangle_count, 3], one thread per
// (mesh, triangle) with the core's FaceNormal and InverseNorm (no sums, so
// bit-identical to the CPU's).
const char* TriangleNormalsCuda(const NormalsCudaParams& params, float* normals, void* stream);

// d_vertices [batch, vertex_count, 3] (overwritten) given d_normals [batch,
// triangle_count, 3]: one thread per triangle, added into its vertices with
// atomicAdd (to rounding of the CPU's triangle-order sums).
const char* TriangleNormalsGradientCuda(const NormalsCudaParams& params, const float* d_normals,
                                        float* d_vertices, void* stream);

}  // namespace face3d

#endif  // FACE3D_RENDERER_KERNELS_NORMALS_CUDA_H_
