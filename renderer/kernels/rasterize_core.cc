// Plain C++ rasterization core; see rasterize_core.h for the conventions.
//
// Two paths. Triangles with all vertices in front of the eye (w > 0) are
// rasterized in pixel coordinates from the projected vertices: edge functions
// in double precision, each shared edge computed from its lower-id endpoint so
// that both neighbours get the same numbers up to an exact sign flip (no cracks,
// no double coverage except exactly on the edge); this needs the compiler not
// to contract a * b - c into fused multiply-adds (build.py passes
// -ffp-contract=off). Triangles with a vertex at or behind the eye take the
// slower homogeneous path (Olano and Greer), which tests every pixel.
#include "rasterize_core.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace face3d {
namespace {

// Slack, in pixels, added to each triangle's bounding box. The box comes from
// float-rounded projections while the inside test is exact, so without it a
// pixel centre lying exactly on a vertex's row or column could be missed.
constexpr float kBoundingBoxSlack = 1e-3f;

// Clip-space x, y, w of a triangle's three vertices, and the unnormalised
// inverse of the 3x3 matrix M whose columns they are.
struct TriangleSetup {
  double x[3], y[3], z[3], w[3];
  // edge[i] = row i of adj(M) = cross product of the other two columns, so
  // edge[i] . (px, py, 1) = det(M) * (barycentric_i / w at that pixel).
  double edge[3][3];
  double det;
};

void LoadTriangle(const float* clip, const int32_t* vertex_ids,
                  TriangleSetup* s) {
  for (int i = 0; i < 3; ++i) {
    const float* v = clip + 4 * static_cast<int64_t>(vertex_ids[i]);
    s->x[i] = v[0];
    s->y[i] = v[1];
    s->z[i] = v[2];
    s->w[i] = v[3];
  }
  for (int i = 0; i < 3; ++i) {
    const int j = (i + 1) % 3, k = (i + 2) % 3;
    s->edge[i][0] = s->y[j] * s->w[k] - s->w[j] * s->y[k];
    s->edge[i][1] = s->w[j] * s->x[k] - s->x[j] * s->w[k];
    s->edge[i][2] = s->x[j] * s->y[k] - s->y[j] * s->x[k];
  }
  s->det = s->x[0] * s->edge[0][0] + s->y[0] * s->edge[0][1] +
           s->w[0] * s->edge[0][2];
}

inline double PixelNdcX(int column, int width) {
  return (2.0 * column + 1.0) / width - 1.0;
}

inline double PixelNdcY(int row, int height) {
  return 1.0 - (2.0 * row + 1.0) / height;
}

// First pixel index whose centre (index + 0.5) is >= coordinate, in [lo, hi].
inline int FirstCentreAtOrAfter(float coordinate, int lo, int hi) {
  const float v = coordinate - 0.5f - kBoundingBoxSlack;
  if (!(v > lo)) return lo;
  if (v >= hi) return hi;
  const int i = static_cast<int>(v);  // v > lo >= 0, so truncation is floor
  return i + (static_cast<float>(i) < v ? 1 : 0);
}

// Last pixel index whose centre is <= coordinate, in [lo, hi] (lo = -1 means
// none).
inline int LastCentreAtOrBefore(float coordinate, int lo, int hi) {
  const float v = coordinate - 0.5f + kBoundingBoxSlack;
  if (!(v >= 0.0f)) return lo;
  if (v >= hi) return hi;
  return static_cast<int>(v);
}

bool AllFinite(const float* v) {
  return std::isfinite(v[0]) && std::isfinite(v[1]) && std::isfinite(v[2]) &&
         std::isfinite(v[3]);
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
                     int height, float* screen) {
  const float half_width = 0.5f * width, half_height = 0.5f * height;
  const float infinity = std::numeric_limits<float>::infinity();
  for (int64_t v = 0; v < vertex_count; ++v) {
    const float* c = clip + 4 * v;
    float* s = screen + 4 * v;
    const float inv_w = 1.0f / c[3];
    s[0] = (c[0] * inv_w + 1.0f) * half_width;
    s[1] = (1.0f - c[1] * inv_w) * half_height;
    s[2] = c[2] * inv_w;
    s[3] = inv_w;
    if (!(c[3] > 0.0f) || !AllFinite(s) || !AllFinite(c)) {
      s[0] = s[1] = s[2] = s[3] = infinity;
    }
  }
}

namespace {

// Rasterizes one triangle that has a vertex at or behind the eye (or beyond
// float range after projection) with homogeneous edge functions, which select
// exactly the part in front of the eye, testing every pixel of the rows.
void RasterizeHomogeneousTriangle(const float* clip, const int32_t* ids,
                                  int32_t triangle_id, int width, int height,
                                  int row_begin, int row_end,
                                  bool cull_backfaces, int32_t* triangle_ids,
                                  float* mask, float* barycentrics,
                                  float* depth) {
  for (int i = 0; i < 3; ++i) {
    if (!AllFinite(clip + 4 * static_cast<int64_t>(ids[i]))) return;
  }
  TriangleSetup s;
  LoadTriangle(clip, ids, &s);
  if (!(s.w[0] > 0.0) && !(s.w[1] > 0.0) && !(s.w[2] > 0.0)) return;
  if (!(s.det != 0.0) || !std::isfinite(s.det)) return;
  // det > 0 exactly when the triangle is counter-clockwise in NDC (front).
  if (cull_backfaces && s.det < 0.0) return;
  // Flipping the rows to a positive determinant makes the inside test one
  // sign for both windings.
  const double sign = s.det > 0.0 ? 1.0 : -1.0;
  const double inv_abs_det = 1.0 / (sign * s.det);
  for (int row = row_begin; row < row_end; ++row) {
    const double py = PixelNdcY(row, height);
    for (int col = 0; col < width; ++col) {
      const double px = PixelNdcX(col, width);
      double l[3];
      for (int i = 0; i < 3; ++i) {
        l[i] = sign * (s.edge[i][0] * px + s.edge[i][1] * py + s.edge[i][2]);
      }
      if (l[0] < 0.0 || l[1] < 0.0 || l[2] < 0.0) continue;
      const double sum = l[0] + l[1] + l[2];
      if (!(sum > 0.0)) continue;
      // l_i = |det| barycentric_i / w_pixel and sum_i l_i w_i = |det|, so
      // NDC z = sum_i l_i z_i / |det|.
      const double z = (l[0] * s.z[0] + l[1] * s.z[1] + l[2] * s.z[2]) * inv_abs_det;
      if (!(z >= -1.0 && z <= 1.0)) continue;
      const int64_t pixel = static_cast<int64_t>(row) * width + col;
      const float z_float = static_cast<float>(z);
      if (z_float > depth[pixel]) continue;
      depth[pixel] = z_float;
      triangle_ids[pixel] = triangle_id;
      mask[pixel] = 1.0f;
      for (int i = 0; i < 3; ++i) {
        barycentrics[3 * pixel + i] = static_cast<float>(l[i] / sum);
      }
    }
  }
}

// One edge function E(p) = dx (p.y - from_y) - dy (p.x - from_x) in pixel
// coordinates, positive inside the triangle.
struct Edge {
  double from_x, from_y, dx, dy;
};

}  // namespace

void RasterizeRows(const float* clip, const float* screen,
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

  for (int64_t t = 0; t < triangle_count; ++t) {
    const int32_t* ids = triangles + 3 * t;
    const float* v[3] = {screen + 4 * static_cast<int64_t>(ids[0]),
                         screen + 4 * static_cast<int64_t>(ids[1]),
                         screen + 4 * static_cast<int64_t>(ids[2])};
    if (!std::isfinite(v[0][0] + v[1][0] + v[2][0])) {
      RasterizeHomogeneousTriangle(clip, ids, static_cast<int32_t>(t), width,
                                   height, row_begin, row_end, cull_backfaces,
                                   triangle_ids, mask, barycentrics, depth);
      continue;
    }
    const float y_min = std::min(std::min(v[0][1], v[1][1]), v[2][1]);
    const float y_max = std::max(std::max(v[0][1], v[1][1]), v[2][1]);
    const int row_min = FirstCentreAtOrAfter(y_min, row_begin, row_end);
    const int row_max = LastCentreAtOrBefore(y_max, row_begin - 1, row_end - 1);
    if (row_min > row_max) continue;
    const float x_min = std::min(std::min(v[0][0], v[1][0]), v[2][0]);
    const float x_max = std::max(std::max(v[0][0], v[1][0]), v[2][0]);
    const int col_min = FirstCentreAtOrAfter(x_min, 0, width);
    const int col_max = LastCentreAtOrBefore(x_max, -1, width - 1);
    if (col_min > col_max) continue;

    const double x[3] = {v[0][0], v[1][0], v[2][0]};
    const double y[3] = {v[0][1], v[1][1], v[2][1]};
    // Twice the signed area in pixel coordinates (y down): negative for
    // triangles counter-clockwise in NDC, i.e. front faces.
    const double area = (x[1] - x[0]) * (y[2] - y[0]) - (y[1] - y[0]) * (x[2] - x[0]);
    if (!(area != 0.0)) continue;
    if (cull_backfaces && area > 0.0) continue;
    // Edge i is opposite vertex i. It is computed from its lower-id endpoint
    // so that a neighbour sharing it computes the same numbers, then negated
    // as needed (exactly) to be positive inside this triangle.
    Edge edge[3];
    for (int i = 0; i < 3; ++i) {
      int a = (i + 1) % 3, b = (i + 2) % 3;
      double sign = area < 0.0 ? -1.0 : 1.0;
      if (ids[b] < ids[a]) {
        std::swap(a, b);
        sign = -sign;
      }
      edge[i] = {x[a], y[a], sign * (x[b] - x[a]), sign * (y[b] - y[a])};
    }
    for (int row = row_min; row <= row_max; ++row) {
      const double py = row + 0.5;
      const double r0 = edge[0].dx * (py - edge[0].from_y);
      const double r1 = edge[1].dx * (py - edge[1].from_y);
      const double r2 = edge[2].dx * (py - edge[2].from_y);
      const int64_t row_offset = static_cast<int64_t>(row) * width;
      for (int col = col_min; col <= col_max; ++col) {
        const double px = col + 0.5;
        const double e0 = r0 - edge[0].dy * (px - edge[0].from_x);
        const double e1 = r1 - edge[1].dy * (px - edge[1].from_x);
        const double e2 = r2 - edge[2].dy * (px - edge[2].from_x);
        if (e0 < 0.0 || e1 < 0.0 || e2 < 0.0) continue;
        const double sum = e0 + e1 + e2;
        if (!(sum > 0.0)) continue;
        // NDC z is affine in screen space; barycentrics are perspective
        // corrected by weighting the screen-space ones with 1 / w.
        const double inv_sum = 1.0 / sum;
        const double z = (e0 * v[0][2] + e1 * v[1][2] + e2 * v[2][2]) * inv_sum;
        if (!(z >= -1.0 && z <= 1.0)) continue;
        const int64_t pixel = row_offset + col;
        const float z_float = static_cast<float>(z);
        if (z_float > depth[pixel]) continue;
        const double t0 = e0 * v[0][3], t1 = e1 * v[1][3], t2 = e2 * v[2][3];
        const double inv_t = 1.0 / (t0 + t1 + t2);
        depth[pixel] = z_float;
        triangle_ids[pixel] = static_cast<int32_t>(t);
        mask[pixel] = 1.0f;
        barycentrics[3 * pixel + 0] = static_cast<float>(t0 * inv_t);
        barycentrics[3 * pixel + 1] = static_cast<float>(t1 * inv_t);
        barycentrics[3 * pixel + 2] = static_cast<float>(t2 * inv_t);
      }
    }
  }
}

void AccumulateGradientRows(const float* clip, const int32_t* triangles,
                            const int32_t* triangle_ids, const float* mask,
                            const float* d_barycentrics, const float* d_depth,
                            int width, int height, int row_begin, int row_end,
                            float* d_clip) {
  // With M the matrix of clip-space (x, y, w) columns and p = (px, py, 1),
  // lambda = M^-1 p, barycentrics = lambda / sum(lambda), depth = lambda . z.
  // d lambda = -M^-1 dM lambda, so for a loss with gradient q with respect to
  // lambda, dLoss/d(x, y, w)_j = -lambda_j M^-T q and dLoss/dz_j =
  // d_depth * lambda_j.
  TriangleSetup s;
  for (int row = row_begin; row < row_end; ++row) {
    const double py = PixelNdcY(row, height);
    for (int col = 0; col < width; ++col) {
      const int64_t pixel = static_cast<int64_t>(row) * width + col;
      if (mask[pixel] == 0.0f) continue;
      const double g[3] = {
          d_barycentrics ? d_barycentrics[3 * pixel + 0] : 0.0,
          d_barycentrics ? d_barycentrics[3 * pixel + 1] : 0.0,
          d_barycentrics ? d_barycentrics[3 * pixel + 2] : 0.0};
      const double g_depth = d_depth ? d_depth[pixel] : 0.0;
      if (g[0] == 0.0 && g[1] == 0.0 && g[2] == 0.0 && g_depth == 0.0) continue;

      const int32_t* ids = triangles + 3 * static_cast<int64_t>(triangle_ids[pixel]);
      LoadTriangle(clip, ids, &s);
      if (!(s.det != 0.0)) continue;
      const double px = PixelNdcX(col, width);
      double l[3];
      for (int i = 0; i < 3; ++i) {
        l[i] = s.edge[i][0] * px + s.edge[i][1] * py + s.edge[i][2];
      }
      const double l_sum = l[0] + l[1] + l[2];
      if (l_sum == 0.0) continue;
      // lambda = l / det; barycentrics b = l / l_sum.
      const double inv_det = 1.0 / s.det;
      const double inv_l_sum = 1.0 / l_sum;
      const double g_dot_b = (g[0] * l[0] + g[1] * l[1] + g[2] * l[2]) * inv_l_sum;
      const double scale = s.det * inv_l_sum;
      double q[3];
      for (int i = 0; i < 3; ++i) {
        q[i] = (g[i] - g_dot_b) * scale + g_depth * s.z[i];
      }
      // u = M^-T q = sum_i q_i edge_i / det.
      double u[3];
      for (int k = 0; k < 3; ++k) {
        u[k] = (q[0] * s.edge[0][k] + q[1] * s.edge[1][k] + q[2] * s.edge[2][k]) *
               inv_det;
      }
      for (int j = 0; j < 3; ++j) {
        const double lambda = l[j] * inv_det;
        float* d = d_clip + 4 * static_cast<int64_t>(ids[j]);
        d[0] += static_cast<float>(-lambda * u[0]);
        d[1] += static_cast<float>(-lambda * u[1]);
        d[2] += static_cast<float>(g_depth * lambda);
        d[3] += static_cast<float>(-lambda * u[2]);
      }
    }
  }
}

}  // namespace face3d
