// CPU loops of the crop camera's projection and of vector rotation; see camera_core.h.
#include "camera_core.h"

namespace face3d {
namespace {

inline void Rotate(const float* r, float x0, float x1, float x2, float* out) {
  out[0] = (x0 * r[0] + x1 * r[1]) + x2 * r[2];
  out[1] = (x0 * r[3] + x1 * r[4]) + x2 * r[5];
  out[2] = (x0 * r[6] + x1 * r[7]) + x2 * r[8];
}

}  // namespace

void CropProject(const CropProjectParams& params, float* points, float* clip) {
  const float* r = params.rotation;
  const float c0 = params.centre[0], c1 = params.centre[1], c2 = params.centre[2];
  const float s = params.scale, minus_s = -params.scale;
  const float half = 0.5f * params.image_size;
  const float size = params.image_size, depth_scale = params.depth_scale;
  const float tu = params.shift_u, tv = params.shift_v;
  for (int64_t n = 0; n < params.vertex_count; ++n) {
    const float* x = params.vertices + 3 * n;
    float p[3];
    Rotate(r, x[0] - c0, x[1] - c1, x[2] - c2, p);
    const float u = (s * p[0] + half) + tu;
    const float v = (minus_s * p[1] + half) + tv;
    const float depth = (s * p[2] + 0.0f) + 0.0f;
    float* point = points + 3 * n;
    point[0] = u;
    point[1] = v;
    point[2] = depth;
    float* q = clip + 4 * n;
    q[0] = (u * 2.0f) / size + -1.0f;
    q[1] = (v * -2.0f) / size + 1.0f;
    q[2] = (depth * -1.0f) / depth_scale + 0.0f;
    q[3] = 1.0f;
  }
}

void CropProjectGradient(const CropProjectParams& params, const float* d_points,
                         const float* d_clip, float* d_vertices, float* d_rotation,
                         float* d_scale, float* d_shift) {
  const float* r = params.rotation;
  const float c0 = params.centre[0], c1 = params.centre[1], c2 = params.centre[2];
  const float s = params.scale;
  const float size = params.image_size, depth_scale = params.depth_scale;
  double g_rotation[9] = {0.0};
  double g_scale = 0.0, g_u = 0.0, g_v = 0.0;
  for (int64_t n = 0; n < params.vertex_count; ++n) {
    const float* x = params.vertices + 3 * n;
    const float d[3] = {x[0] - c0, x[1] - c1, x[2] - c2};
    float p[3];
    Rotate(r, d[0], d[1], d[2], p);
    // d(u, v, depth): the points' own gradient plus the clip's through pixels_to_clip.
    float du = 0.0f, dv = 0.0f, ddepth = 0.0f;
    if (d_clip != nullptr) {
      const float* g = d_clip + 4 * n;
      du = (g[0] / size) * 2.0f;
      dv = (g[1] / size) * -2.0f;
      ddepth = (g[2] / depth_scale) * -1.0f;
    }
    if (d_points != nullptr) {
      const float* g = d_points + 3 * n;
      du += g[0];
      dv += g[1];
      ddepth += g[2];
    }
    g_u += du;
    g_v += dv;
    g_scale += static_cast<double>(du) * p[0] - static_cast<double>(dv) * p[1] +
               static_cast<double>(ddepth) * p[2];
    const float dp[3] = {s * du, -s * dv, s * ddepth};
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j) g_rotation[3 * i + j] += static_cast<double>(dp[i]) * d[j];
    }
    float* dx = d_vertices + 3 * n;
    dx[0] = (dp[0] * r[0] + dp[1] * r[3]) + dp[2] * r[6];
    dx[1] = (dp[0] * r[1] + dp[1] * r[4]) + dp[2] * r[7];
    dx[2] = (dp[0] * r[2] + dp[1] * r[5]) + dp[2] * r[8];
  }
  for (int i = 0; i < 9; ++i) d_rotation[i] = static_cast<float>(g_rotation[i]);
  d_scale[0] = static_cast<float>(g_scale);
  d_shift[0] = static_cast<float>(g_u);
  d_shift[1] = static_cast<float>(g_v);
}

void RotateVectors(const float* vectors, const float* rotation, int64_t vertex_count,
                   float* out) {
  for (int64_t n = 0; n < vertex_count; ++n) {
    const float* x = vectors + 3 * n;
    Rotate(rotation, x[0], x[1], x[2], out + 3 * n);
  }
}

void RotateVectorsGradient(const float* vectors, const float* rotation, const float* d_out,
                           int64_t vertex_count, float* d_vectors, float* d_rotation) {
  const float* r = rotation;
  double g_rotation[9] = {0.0};
  for (int64_t n = 0; n < vertex_count; ++n) {
    const float* x = vectors + 3 * n;
    const float* g = d_out + 3 * n;
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j) g_rotation[3 * i + j] += static_cast<double>(g[i]) * x[j];
    }
    float* dx = d_vectors + 3 * n;
    dx[0] = (g[0] * r[0] + g[1] * r[3]) + g[2] * r[6];
    dx[1] = (g[0] * r[1] + g[1] * r[4]) + g[2] * r[7];
    dx[2] = (g[0] * r[2] + g[1] * r[5]) + g[2] * r[8];
  }
  for (int i = 0; i < 9; ++i) d_rotation[i] = static_cast<float>(g_rotation[i]);
}

}  // namespace face3d
