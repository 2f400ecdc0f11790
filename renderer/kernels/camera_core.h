// The crop camera's projection (rotation, scale, translation, clip space) and
// the rotation of vectors (normals) into the camera frame: the plain C++ core
// of the CropProject and RotateVectors ops and their gradients.
//
// No TensorFlow in here. The loops own one mesh each (row-major, one mesh):
//
//   CropProject: vertices [N, 3] mm (model frame), rotation R [3, 3] (row
//   major, applied to column vectors), centre c [3], scale s, shift (tx, ty);
//   the image is size x size pixels and depths in (-depth_scale, depth_scale)
//   are drawn. Per vertex, in this order of float operations (model/face/
//   camera.py's CropCamera.project and renderer/camera.pixels_to_clip):
//     d = X - c;  p_i = (d_0 R_i0 + d_1 R_i1) + d_2 R_i2
//     u = (s p_0 + size/2) + tx,  v = (-s p_1 + size/2) + ty,  depth = s p_2
//     clip = (2u / size - 1, -2v / size + 1, -depth / depth_scale, 1)
//   points [N, 3] (u, v, depth) and clip [N, 4].
//
//   RotateVectors: vectors [N, 3], R [3, 3]: out_i = (x_0 R_i0 + x_1 R_i1) + x_2 R_i2.
//
// The gradients' sums over the vertices (of the rotation, scale and shift)
// run in double, in eight partial sums each (vertex i of a 128-vertex block
// into sum i % 8), added in order at the end (camera_core.cc).
#ifndef FACE3D_RENDERER_KERNELS_CAMERA_CORE_H_
#define FACE3D_RENDERER_KERNELS_CAMERA_CORE_H_

#include <cstdint>

namespace face3d {

struct CropProjectParams {
  const float* vertices;  // [vertex_count, 3]
  const float* rotation;  // [3, 3]
  const float* centre;    // [3]
  float scale;            // s, pixels per mm
  float shift_u, shift_v; // tx, ty in pixels
  float image_size;       // size in pixels (square image)
  float depth_scale;
  int64_t vertex_count;
};

// points [vertex_count, 3] and clip [vertex_count, 4] of one mesh.
void CropProject(const CropProjectParams& params, float* points, float* clip);

// The gradient of one mesh given d_points [vertex_count, 3] and d_clip
// [vertex_count, 4] (either may be null: zeros): d_vertices [vertex_count, 3],
// d_rotation [9], d_scale [1], d_shift [2] (all overwritten).
void CropProjectGradient(const CropProjectParams& params, const float* d_points,
                         const float* d_clip, float* d_vertices, float* d_rotation,
                         float* d_scale, float* d_shift);

// out [vertex_count, 3] = vectors rotated by rotation [3, 3].
void RotateVectors(const float* vectors, const float* rotation, int64_t vertex_count,
                   float* out);

// d_vectors [vertex_count, 3] = d_out R, d_rotation [9] = sum_n d_out_n x_n^T.
void RotateVectorsGradient(const float* vectors, const float* rotation, const float* d_out,
                           int64_t vertex_count, float* d_vectors, float* d_rotation);

}  // namespace face3d

#endif  // FACE3D_RENDERER_KERNELS_CAMERA_CORE_H_
