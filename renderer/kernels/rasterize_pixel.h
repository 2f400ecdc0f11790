// Per-vertex and per-pixel arithmetic of the rasterizer, shared by the CPU core
// (rasterize_core.cc) and its CUDA twin (rasterize_cuda.cu).
//
// g++ compiles these as ordinary inline functions, nvcc as __host__ __device__
// ones, so both back ends run the same float operations in the same order and
// agree bit for bit wherever they evaluate the same pixel of the same
// triangle. That needs IEEE division and square root and no fused
// multiply-add: build.py passes -ffp-contract=off to g++ and -fmad=false to
// nvcc (whose defaults already give IEEE division). The CPU core's 4-lane
// vector loops do, lane by lane, exactly the operations written here (see the
// notes there); its scalar paths call these functions.
//
// Conventions are those of rasterize_core.h.
#ifndef FACE3D_RENDERER_KERNELS_RASTERIZE_PIXEL_H_
#define FACE3D_RENDERER_KERNELS_RASTERIZE_PIXEL_H_

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define FACE3D_HD __host__ __device__ inline
#else
#define FACE3D_HD inline
#endif

namespace face3d {

// Value written to `depth` where no triangle covers a pixel (the far plane).
constexpr float kBackgroundDepth = 1.0f;

// Slack, in pixels, added to each triangle's range of candidate pixels: the
// range comes from float arithmetic while the inside test decides, so being
// generous costs a test and never a pixel.
constexpr float kBoundingBoxSlack = 1e-3f;

// Vertices projecting further from the image than this (in pixels) take the
// slow path, whose double-precision homogeneous arithmetic has the range.
constexpr float kMaxPixelCoordinate = 1e6f;

// The fast path needs 1 / w in [2^-40, 2^40]: a covered pixel's nonzero edge
// functions are at least about 2^-74 (differences of products of pixel
// offsets of at least 2^-25), so their products with 1 / w stay normal floats
// (>= 2^-126) and sums of them stay below float's maximum. Outside that range
// (w below ~1e-12 or above ~1e12, subnormal, or w <= 0) a vertex takes the
// exact double-precision path.
constexpr float kMinFastInvW = 0x1p-40f;
constexpr float kMaxFastInvW = 0x1p40f;

// A vertex in pixel space: 16 bytes, loaded as one 4-float vector by the CPU
// rasterizer and gradient.
struct alignas(16) ProjectedVertex {
  float x, y;    // pixel coordinates, x right, y down; +infinity: slow path
  float z;       // NDC z
  float inv_w;   // 1 / clip w
};

FACE3D_HD bool IsFinite(float v) { return v - v == 0.0f; }
FACE3D_HD bool IsFinite(double v) { return v - v == 0.0; }

// The exact value of a float as a double, also for subnormals: TensorFlow runs
// kernels with denormals-are-zero set, under which the plain conversion would
// read a subnormal as zero.
FACE3D_HD double ExactDouble(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  if ((bits & 0x7f800000u) != 0u) return static_cast<double>(f);
  const double magnitude = static_cast<double>(bits & 0x007fffffu) * 0x1p-149;
  return (bits >> 31) != 0u ? -magnitude : magnitude;
}

// Projects clip (x, y, z, w) for an image of half_width = W / 2, half_height
// = H / 2: x = (x q + 1) W / 2, y = (y q - 1) (-H / 2), z = z q, inv_w = q =
// 1 / w, as the CPU core's vector code computes them lane by lane. Vertices
// that the fast path cannot take (non-finite, 1 / w outside [kMinFastInvW,
// kMaxFastInvW], or a million pixels or more away) get x = y = +infinity.
FACE3D_HD ProjectedVertex ProjectVertex(const float c[4], float half_width,
                                        float half_height) {
  const float q = 1.0f / c[3];
  ProjectedVertex p;
  p.x = (c[0] * q + 1.0f) * half_width;
  p.y = (c[1] * q + -1.0f) * -half_height;
  p.z = (c[2] * q + 0.0f) * 1.0f;
  p.inv_w = q;
  const bool fast = q >= kMinFastInvW && q <= kMaxFastInvW && IsFinite(c[0]) &&
                    IsFinite(c[1]) && IsFinite(c[2]) && IsFinite(c[3]) &&
                    fabsf(p.x) < kMaxPixelCoordinate &&
                    fabsf(p.y) < kMaxPixelCoordinate && IsFinite(p.z);
  if (!fast) p.x = p.y = INFINITY;
  return p;
}

FACE3D_HD float Min3(float a, float b, float c) {
  const float m = a < b ? a : b;
  return m < c ? m : c;
}

FACE3D_HD float Max3(float a, float b, float c) {
  const float m = a > b ? a : b;
  return m > c ? m : c;
}

FACE3D_HD float Clamp(float v, float low, float high) {
  return (v > low ? v : low) < high ? (v > low ? v : low) : high;
}

// Edge functions of a fast-path triangle at one pixel centre (px, py), in
// coordinates relative to it (small numbers, so float keeps its precision):
// edge i (opposite vertex i, from vertex j to vertex k) is twice the signed
// area of (v_j, v_k, p), e_i = X_j Y_k - Y_j X_k with X = x - px, Y = y - py.
// Swapping j and k swaps the two (commuting) products, so a neighbour sharing
// the edge computes exactly the negation: no cracks, no double coverage.
struct PixelEdges {
  float x[3], y[3];  // vertices relative to the pixel centre
  float e[3];

  FACE3D_HD PixelEdges(const ProjectedVertex* const v[3], float px, float py) {
    for (int i = 0; i < 3; ++i) {
      x[i] = v[i]->x - px;
      y[i] = v[i]->y - py;
    }
    e[0] = x[1] * y[2] - y[1] * x[2];
    e[1] = x[2] * y[0] - y[2] * x[0];
    e[2] = x[0] * y[1] - y[0] * x[1];
  }
};

// Candidate pixels of a fast-path triangle in rows [row_begin, row_end):
// columns [c0, c1) and rows [r0, r1), floor(clamp((x_min, y_min, x_max,
// y_max) + 0.5 -+ slack)). Triangles with at most 2x2 candidates (`block`)
// take a pixel where its three edge functions are all <= 0 or (without
// culling) all >= 0; larger ones where they all have the sign of the
// triangle's double-precision area (`sign`, the edge functions multiplied by
// it before shading). Returns false when no pixel can be drawn.
struct FastCandidates {
  int c0, r0, c1, r1;
  bool block;
  float sign;
};

FACE3D_HD bool FastTriangleSetup(const ProjectedVertex* const v[3], int width,
                                 int row_begin, int row_end, bool cull_backfaces,
                                 FastCandidates* out) {
  const float x_min = Min3(v[0]->x, v[1]->x, v[2]->x), x_max = Max3(v[0]->x, v[1]->x, v[2]->x);
  const float y_min = Min3(v[0]->y, v[1]->y, v[2]->y), y_max = Max3(v[0]->y, v[1]->y, v[2]->y);
  const float w = static_cast<float>(width);
  const float low_y = static_cast<float>(row_begin), high_y = static_cast<float>(row_end);
  out->c0 = static_cast<int>(Clamp(x_min + (0.5f - kBoundingBoxSlack), 0.0f, w));
  out->r0 = static_cast<int>(Clamp(y_min + (0.5f - kBoundingBoxSlack), low_y, high_y));
  out->c1 = static_cast<int>(Clamp(x_max + (0.5f + kBoundingBoxSlack), 0.0f, w));
  out->r1 = static_cast<int>(Clamp(y_max + (0.5f + kBoundingBoxSlack), low_y, high_y));
  const int columns = out->c1 - out->c0, rows = out->r1 - out->r0;
  if (columns < 1 || rows < 1) return false;
  out->block = columns <= 2 && rows <= 2;
  out->sign = 1.0f;
  if (out->block) return true;
  // Twice the signed area in pixel coordinates (y down), exact but for one
  // rounding: negative for triangles counter-clockwise in NDC (y up), i.e.
  // front faces.
  const double area = (static_cast<double>(v[1]->x) - v[0]->x) * (static_cast<double>(v[2]->y) - v[0]->y) -
                      (static_cast<double>(v[1]->y) - v[0]->y) * (static_cast<double>(v[2]->x) - v[0]->x);
  if (!(area != 0.0)) return false;
  if (cull_backfaces && area > 0.0) return false;
  out->sign = area < 0.0 ? -1.0f : 1.0f;
  return true;
}

// Whether the centre of pixel (col, row), a candidate of `setup`, is inside
// the triangle; if so, e holds the edge functions to shade it with.
FACE3D_HD bool FastPixelInside(const FastCandidates& setup,
                               const ProjectedVertex* const v[3], int col,
                               int row, bool cull_backfaces, float e[3]) {
  const PixelEdges edges(v, col + 0.5f, row + 0.5f);
  if (setup.block) {
    const float high = Max3(edges.e[0], edges.e[1], edges.e[2]);
    const float low = Min3(edges.e[0], edges.e[1], edges.e[2]);
    if (!(high <= 0.0f || (!cull_backfaces && low >= 0.0f))) return false;
    for (int i = 0; i < 3; ++i) e[i] = edges.e[i];
    return true;
  }
  for (int i = 0; i < 3; ++i) e[i] = setup.sign * edges.e[i];
  return e[0] >= 0.0f && e[1] >= 0.0f && e[2] >= 0.0f;
}

// NDC depth of a fast-path pixel with edge functions e (all of one sign):
// affine in screen space. Returns false where the pixel is not drawn (zero
// sum, or depth outside [-1, 1]).
FACE3D_HD bool FastDepth(const float e[3], const ProjectedVertex* const v[3],
                         float* z) {
  // In float: inside the triangle the e_i share a sign, so the sums do not
  // cancel.
  const float sum = e[0] + e[1] + e[2];
  if (!(sum != 0.0f)) return false;
  *z = (e[0] * v[0]->z + e[1] * v[1]->z + e[2] * v[2]->z) / sum;
  return *z >= -1.0f && *z <= 1.0f;
}

// Perspective-correct barycentrics of a fast-path pixel: the screen-space ones
// weighted by 1 / w.
FACE3D_HD void FastBarycentrics(const float e[3], const ProjectedVertex* const v[3],
                                float b[3]) {
  const float t0 = e[0] * v[0]->inv_w;
  const float t1 = e[1] * v[1]->inv_w;
  const float t2 = e[2] * v[2]->inv_w;
  const float inv_t = 1.0f / (t0 + t1 + t2);
  b[0] = t0 * inv_t;
  b[1] = t1 * inv_t;
  b[2] = t2 * inv_t;
}

FACE3D_HD double PixelNdcX(int column, int width) {
  return (2.0 * column + 1.0) / width - 1.0;
}

FACE3D_HD double PixelNdcY(int row, int height) {
  return 1.0 - (2.0 * row + 1.0) / height;
}

// Clip-space x, y, z, w of a triangle's three vertices (exact doubles), and
// the unnormalised inverse of the 3x3 matrix M whose columns are their
// (x, y, w).
struct HomogeneousTriangle {
  double x[3], y[3], z[3], w[3];
  // edge[i] = row i of adj(M) = cross product of the other two columns, so
  // edge[i] . (ndc_x, ndc_y, 1) = det(M) * (barycentric_i / w at that pixel).
  double edge[3][3];
  double det;
};

FACE3D_HD void LoadHomogeneousTriangle(const float* clip, const int32_t* vertex_ids,
                                       HomogeneousTriangle* s) {
  for (int i = 0; i < 3; ++i) {
    const float* v = clip + 4 * static_cast<int64_t>(vertex_ids[i]);
    s->x[i] = ExactDouble(v[0]);
    s->y[i] = ExactDouble(v[1]);
    s->z[i] = ExactDouble(v[2]);
    s->w[i] = ExactDouble(v[3]);
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

// Slow-path triangle (a vertex at or behind the eye, or outside the fast
// path's range) set up for HomogeneousPixel; false when it draws nothing
// (a non-finite vertex, all vertices behind the eye, degenerate, or culled).
// With the rows flipped to a positive determinant (`sign`), l_i = |det| b_i /
// w at a pixel: all >= 0 exactly where the pixel sees the triangle in front of
// the eye, and sum_i l_i w_i = |det|, so NDC z = sum_i l_i z_i / |det|.
struct HomogeneousSetup {
  HomogeneousTriangle s;
  double sign, inv_abs_det;
};

FACE3D_HD bool SetupHomogeneousTriangle(const float* clip, const int32_t* ids,
                                        bool cull_backfaces, HomogeneousSetup* h) {
  for (int i = 0; i < 3; ++i) {
    const float* v = clip + 4 * static_cast<int64_t>(ids[i]);
    if (!(IsFinite(v[0]) && IsFinite(v[1]) && IsFinite(v[2]) && IsFinite(v[3]))) return false;
  }
  HomogeneousTriangle& s = h->s;
  LoadHomogeneousTriangle(clip, ids, &s);
  if (!(s.w[0] > 0.0) && !(s.w[1] > 0.0) && !(s.w[2] > 0.0)) return false;
  if (!(s.det != 0.0) || !IsFinite(s.det)) return false;
  // det > 0 exactly when the triangle is counter-clockwise in NDC (front).
  if (cull_backfaces && s.det < 0.0) return false;
  h->sign = s.det > 0.0 ? 1.0 : -1.0;
  h->inv_abs_det = 1.0 / (h->sign * s.det);
  return true;
}

// Candidate pixels [c0, c1) x [r0, r1) of a slow-path triangle, within rows
// [row_begin, row_end). A drawn pixel centre sees a point of the triangle
// with w > 0 and |x|, |y| <= w (its NDC x, y lie in (-1, 1)) and |z| <= w
// (the depth range): the triangle clipped to that frustum (Sutherland-Hodgman,
// in double) projects inside the convex hull of its clipped vertices, whose
// pixel bounding box (plus a pixel of slack) is returned. Where the clipped
// polygon is empty, nothing is drawn (false). Where it comes close to the eye
// point (w tiny against the vertices' size) the projection is not
// trustworthy, and all rows [row_begin, row_end) are returned. The inside test
// of HomogeneousPixel still decides every pixel, so the box only saves work.
FACE3D_HD bool HomogeneousBounds(const HomogeneousTriangle& s, int width, int height,
                                 int row_begin, int row_end, int* c0, int* r0,
                                 int* c1, int* r1) {
  constexpr int kMaxVertices = 9;  // 3 + one per clipping plane
  double poly[2][kMaxVertices][4];
  int count = 3;
  double scale = 0.0;
  for (int i = 0; i < 3; ++i) {
    poly[0][i][0] = s.x[i];
    poly[0][i][1] = s.y[i];
    poly[0][i][2] = s.z[i];
    poly[0][i][3] = s.w[i];
    for (int k = 0; k < 4; ++k) scale = fmax(scale, fabs(poly[0][i][k]));
  }
  int current = 0;
  // Planes w + sign * coordinate >= 0 for coordinate x, y, z.
  for (int plane = 0; plane < 6 && count > 0; ++plane) {
    const int axis = plane >> 1;
    const double sign = (plane & 1) != 0 ? -1.0 : 1.0;
    const double(*in)[4] = poly[current];
    double(*out)[4] = poly[1 - current];
    int out_count = 0;
    for (int i = 0; i < count; ++i) {
      const double* a = in[i];
      const double* b = in[(i + 1) % count];
      const double da = a[3] + sign * a[axis], db = b[3] + sign * b[axis];
      if (da >= 0.0) {
        for (int k = 0; k < 4; ++k) out[out_count][k] = a[k];
        ++out_count;
      }
      if ((da >= 0.0) != (db >= 0.0)) {
        const double t = da / (da - db);
        for (int k = 0; k < 4; ++k) out[out_count][k] = a[k] + t * (b[k] - a[k]);
        ++out_count;
      }
    }
    count = out_count;
    current = 1 - current;
  }
  if (count == 0) return false;
  *c0 = 0;
  *c1 = width;
  *r0 = row_begin;
  *r1 = row_end;
  double col_min = INFINITY, col_max = -INFINITY, row_min = INFINITY, row_max = -INFINITY;
  for (int i = 0; i < count; ++i) {
    const double* p = poly[current][i];
    if (!(p[3] > 1e-9 * scale)) return true;
    const double col = (p[0] / p[3] + 1.0) * 0.5 * width;
    const double row = (1.0 - p[1] / p[3]) * 0.5 * height;
    col_min = fmin(col_min, col);
    col_max = fmax(col_max, col);
    row_min = fmin(row_min, row);
    row_max = fmax(row_max, row);
  }
  // Centres c + 0.5 in [col_min, col_max], widened by a pixel each way.
  const double first_col = floor(col_min - 0.5) - 1.0, last_col = floor(col_max - 0.5) + 2.0;
  const double first_row = floor(row_min - 0.5) - 1.0, last_row = floor(row_max - 0.5) + 2.0;
  *c0 = static_cast<int>(fmin(fmax(first_col, 0.0), static_cast<double>(width)));
  *c1 = static_cast<int>(fmin(fmax(last_col, 0.0), static_cast<double>(width)));
  *r0 = static_cast<int>(fmin(fmax(first_row, static_cast<double>(row_begin)), static_cast<double>(row_end)));
  *r1 = static_cast<int>(fmin(fmax(last_row, static_cast<double>(row_begin)), static_cast<double>(row_end)));
  return *c0 < *c1 && *r0 < *r1;
}

// Columns [*first, *last) of [c0, c1) in whose pixel centres, at NDC y = py,
// the three homogeneous edge functions may all be >= 0: each is linear in the
// NDC x of the centre, so each bounds the columns on one side. Widened by a
// pixel each way against rounding; HomogeneousPixel decides every pixel, so
// the span only saves work (a sliver crossing the image diagonally has a
// large bounding box but short rows).
FACE3D_HD void HomogeneousRowSpan(const HomogeneousSetup& h, double py, int width,
                                  int c0, int c1, int* first, int* last) {
  double low = c0, high = c1;
  for (int i = 0; i < 3; ++i) {
    const double a = h.sign * h.s.edge[i][0];
    const double c = h.sign * (h.s.edge[i][1] * py + h.s.edge[i][2]);
    if (a == 0.0) {
      if (c < 0.0) high = low;
      continue;
    }
    // a (2 col + 1) / W - a + c >= 0 at column col, i.e. col >= or <= bound.
    const double bound = ((a - c) / a * width - 1.0) * 0.5;
    if (!IsFinite(bound)) continue;
    if (a > 0.0) {
      low = fmax(low, floor(bound) - 1.0);
    } else {
      high = fmin(high, floor(bound) + 2.0);
    }
  }
  *first = static_cast<int>(low);
  *last = static_cast<int>(high > low ? high : low);
}

// Slow path at the pixel centre (px, py) in NDC: whether the pixel sees the
// triangle in front of the eye and within the depth range, with its NDC depth
// z and barycentrics b.
FACE3D_HD bool HomogeneousPixel(const HomogeneousSetup& h, double px, double py,
                                float* z, float b[3]) {
  const HomogeneousTriangle& s = h.s;
  double l[3];
  for (int i = 0; i < 3; ++i) {
    l[i] = h.sign * (s.edge[i][0] * px + s.edge[i][1] * py + s.edge[i][2]);
  }
  if (l[0] < 0.0 || l[1] < 0.0 || l[2] < 0.0) return false;
  const double sum = l[0] + l[1] + l[2];
  if (!(sum > 0.0)) return false;
  const double depth = (l[0] * s.z[0] + l[1] * s.z[1] + l[2] * s.z[2]) * h.inv_abs_det;
  if (!(depth >= -1.0 && depth <= 1.0)) return false;
  *z = static_cast<float>(depth);
  for (int i = 0; i < 3; ++i) b[i] = static_cast<float>(l[i] / sum);
  return true;
}

// Slow-path gradient of one pixel: with M the matrix of clip (x, y, w)
// columns and p = (ndc_x, ndc_y, 1), lambda = M^-1 p, barycentrics
// b = lambda / sum(lambda) and depth = lambda . z. Since d lambda =
// -M^-1 dM lambda, a loss with gradient q with respect to lambda has
// dLoss/d(x, y, w)_j = -lambda_j M^-T q and dLoss/dz_j = d_depth lambda_j.
// Writes d[j] = dLoss / d clip (x, y, z, w) of vertex j; false when the
// pixel contributes nothing.
FACE3D_HD bool HomogeneousPixelGradient(const float* clip, const int32_t* ids,
                                        const float g[3], double g_depth, double px,
                                        double py, float d[3][4]) {
  HomogeneousTriangle s;
  LoadHomogeneousTriangle(clip, ids, &s);
  if (!(s.det != 0.0)) return false;
  double l[3];
  for (int i = 0; i < 3; ++i) {
    l[i] = s.edge[i][0] * px + s.edge[i][1] * py + s.edge[i][2];
  }
  const double l_sum = l[0] + l[1] + l[2];
  if (l_sum == 0.0) return false;
  // lambda = l / det; barycentrics b = l / l_sum.
  const double inv_det = 1.0 / s.det;
  const double inv_l_sum = 1.0 / l_sum;
  const double g_dot_b = (g[0] * l[0] + g[1] * l[1] + g[2] * l[2]) * inv_l_sum;
  const double scale = s.det * inv_l_sum;
  double q[3];
  for (int i = 0; i < 3; ++i) {
    q[i] = (g[i] - g_dot_b) * scale + g_depth * s.z[i];
  }
  double u[3];  // M^-T q = sum_i q_i edge_i / det
  for (int k = 0; k < 3; ++k) {
    u[k] = (q[0] * s.edge[0][k] + q[1] * s.edge[1][k] + q[2] * s.edge[2][k]) * inv_det;
  }
  for (int j = 0; j < 3; ++j) {
    const double lambda = l[j] * inv_det;
    d[j][0] = static_cast<float>(-lambda * u[0]);
    d[j][1] = static_cast<float>(-lambda * u[1]);
    d[j][2] = static_cast<float>(g_depth * lambda);
    d[j][3] = static_cast<float>(-lambda * u[2]);
  }
  return true;
}

// Fast-path gradient of pixel (col, row) with respect to the projected
// (x, y, z, inv_w) of the three vertices, written to d[j], in the forward
// pass's own terms: with edge functions e_i, t_i = e_i inv_w_i, barycentrics
// b_i = t_i / sum(t) and depth sum_i e_i z_i / sum(e). The CPU core does the
// same operations with vertex i in lane i of 4-float vectors. false when the
// pixel contributes nothing.
FACE3D_HD bool FastPixelGradient(const ProjectedVertex* const v[3], int col, int row,
                                 const float g[3], float g_depth, bool with_depth,
                                 float d[3][4]) {
  float x[3], y[3], z[3], q[3], e[3], t[3];
  for (int i = 0; i < 3; ++i) {
    x[i] = v[i]->x - (col + 0.5f);
    y[i] = v[i]->y - (row + 0.5f);
    z[i] = v[i]->z;
    q[i] = v[i]->inv_w;
  }
  // e_i = X_{i+1} Y_{i-1} - Y_{i+1} X_{i-1}, the forward pass's products.
  for (int i = 0; i < 3; ++i) {
    const int n = (i + 1) % 3, p = (i + 2) % 3;
    e[i] = x[n] * y[p] - y[n] * x[p];
    t[i] = e[i] * q[i];
  }
  const float e_sum = e[0] + e[1] + e[2];
  const float t_sum = t[0] + t[1] + t[2];
  if (e_sum == 0.0f || t_sum == 0.0f) return false;
  const float inv_t_sum = 1.0f / t_sum;
  const float inv_e_sum = with_depth ? 1.0f / e_sum : 0.0f;
  const float g_dot_b = (g[0] * t[0] + g[1] * t[1] + g[2] * t[2]) * inv_t_sum;
  float d_e[3], d_z[3], d_q[3];
  const float pixel_depth = with_depth ? (e[0] * z[0] + e[1] * z[1] + e[2] * z[2]) * inv_e_sum : 0.0f;
  for (int i = 0; i < 3; ++i) {
    const float d_t = (g[i] - g_dot_b) * inv_t_sum;  // dLoss / d t_i
    d_e[i] = d_t * q[i];
    d_z[i] = 0.0f;
    if (with_depth) {
      d_e[i] += g_depth * (z[i] - pixel_depth) * inv_e_sum;
      d_z[i] = g_depth * e[i] * inv_e_sum;
    }
    d_q[i] = d_t * e[i];
  }
  // Vertex m is the start of edge m - 1 and the end of edge m + 1:
  // d e_{m-1} / d(x_m, y_m) = (Y_{m+1}, -X_{m+1}), d e_{m+1} / d(x_m, y_m)
  // = (-Y_{m-1}, X_{m-1}).
  for (int m = 0; m < 3; ++m) {
    const int n = (m + 1) % 3, p = (m + 2) % 3;
    d[m][0] = d_e[p] * y[n] - d_e[n] * y[p];
    d[m][1] = d_e[n] * x[p] - d_e[p] * x[n];
    d[m][2] = d_z[m];
    d[m][3] = d_q[m];
  }
  return true;
}

// d clip (x, y, z, w) of one vertex from its summed gradients with respect to
// the projected (x, y, z, inv_w) and to clip from slow-path pixels: the
// projection x_px = (x q + 1) W / 2, y_px = (1 - y q) H / 2, z_ndc = z q,
// q = 1 / w, differentiated in double.
FACE3D_HD void FinishVertex(const float c[4], const double projected[4],
                            const double slow[4], int width, int height, float out[4]) {
  const double d_x = projected[0], d_y = projected[1], d_z = projected[2];
  if (d_x == 0.0 && d_y == 0.0 && d_z == 0.0 && projected[3] == 0.0) {
    // Also the case of vertices that take the slow path, whose projection
    // may be undefined.
    for (int k = 0; k < 4; ++k) out[k] = static_cast<float>(slow[k]);
    return;
  }
  const double half_width = 0.5 * width, half_height = 0.5 * height;
  const double q = 1.0 / c[3];
  const double d_q = projected[3] + d_x * c[0] * half_width - d_y * c[1] * half_height + d_z * c[2];
  out[0] = static_cast<float>(slow[0] + d_x * q * half_width);
  out[1] = static_cast<float>(slow[1] - d_y * q * half_height);
  out[2] = static_cast<float>(slow[2] + d_z * q);
  out[3] = static_cast<float>(slow[3] - d_q * q * q);
}

}  // namespace face3d

#endif  // FACE3D_RENDERER_KERNELS_RASTERIZE_PIXEL_H_
