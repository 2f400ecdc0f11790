// Tests of the plain C++ core, without TensorFlow: compiled and run by
// tests/test_rasterizer_core.py (g++ rasterize_core_test.cc rasterize_core.cc).
// Prints one line per failed check and exits non-zero if any failed.
#include <cmath>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "rasterize_core.h"

namespace face3d {
namespace {

int failures = 0;

void Check(bool condition, const char* what) {
  if (!condition) {
    std::printf("FAILED: %s\n", what);
    ++failures;
  }
}

struct Image {
  explicit Image(int width, int height)
      : width(width), height(height), ids(width * height), mask(width * height),
        barycentrics(3 * width * height), depth(width * height) {}
  int width, height;
  std::vector<int32_t> ids;
  std::vector<float> mask, barycentrics, depth;
};

// A jittered grid of (cells + 1)^2 vertices over the whole NDC square,
// perspective (random w), split into counter-clockwise triangles.
void JitteredGrid(int cells, std::mt19937* rng, std::vector<float>* clip,
                  std::vector<int32_t>* triangles) {
  std::uniform_real_distribution<float> jitter(-0.3f / cells, 0.3f / cells);
  std::uniform_real_distribution<float> w(0.5f, 2.0f);
  for (int r = 0; r <= cells; ++r) {
    for (int c = 0; c <= cells; ++c) {
      const bool inner = r > 0 && r < cells && c > 0 && c < cells;
      const float x = -1.0f + 2.0f * c / cells + (inner ? jitter(*rng) : 0.0f);
      const float y = -1.0f + 2.0f * r / cells + (inner ? jitter(*rng) : 0.0f);
      const float vw = w(*rng);
      clip->insert(clip->end(), {x * vw, y * vw, 0.0f, vw});
    }
  }
  for (int r = 0; r < cells; ++r) {
    for (int c = 0; c < cells; ++c) {
      const int a = r * (cells + 1) + c, b = a + 1, d = a + cells + 1, e = d + 1;
      triangles->insert(triangles->end(), {a, b, e, a, e, d});
    }
  }
}

void Rasterize(const std::vector<float>& clip,
               const std::vector<int32_t>& triangles, Image* image) {
  std::vector<ProjectedVertex> projected(clip.size() / 4);
  ProjectVertices(clip.data(), projected.size(), image->width, image->height,
                  projected.data());
  RasterizeRows(clip.data(), projected.data(), triangles.data(),
                triangles.size() / 3, image->width, image->height, 0,
                image->height, false, image->ids.data(), image->mask.data(),
                image->barycentrics.data(), image->depth.data());
}

void TestClosedMeshCoversEveryPixelOnce() {
  std::mt19937 rng(1);
  std::vector<float> clip;
  std::vector<int32_t> triangles;
  // Many small triangles: most pixel centres are near some edge.
  JitteredGrid(40, &rng, &clip, &triangles);
  Image image(61, 47);
  Rasterize(clip, triangles, &image);
  bool all_covered = true, sums_to_one = true;
  for (int p = 0; p < image.width * image.height; ++p) {
    all_covered &= image.mask[p] == 1.0f;
    const float* b = &image.barycentrics[3 * p];
    sums_to_one &= std::fabs(b[0] + b[1] + b[2] - 1.0f) < 1e-5f;
  }
  Check(all_covered, "a closed jittered grid leaves no uncovered pixel");
  Check(sums_to_one, "barycentrics sum to one");
}

void TestBandsMatchTheWholeImage() {
  std::mt19937 rng(2);
  std::vector<float> clip;
  std::vector<int32_t> triangles;
  JitteredGrid(9, &rng, &clip, &triangles);
  Image whole(33, 29), banded(33, 29);
  Rasterize(clip, triangles, &whole);
  std::vector<ProjectedVertex> projected(clip.size() / 4);
  ProjectVertices(clip.data(), projected.size(), 33, 29, projected.data());
  for (int row = 0; row < 29; row += 4) {
    RasterizeRows(clip.data(), projected.data(), triangles.data(),
                  triangles.size() / 3, 33, 29, row, std::min(29, row + 4),
                  false, banded.ids.data(), banded.mask.data(),
                  banded.barycentrics.data(), banded.depth.data());
  }
  Check(whole.ids == banded.ids && whole.barycentrics == banded.barycentrics &&
            whole.depth == banded.depth,
        "rasterizing in row bands gives the whole-image result");
}

void TestNonFiniteVertexDropsItsTriangles() {
  const std::vector<float> clip = {-0.5f, -0.5f, 0.0f, 1.0f, 0.5f, -0.5f,
                                   0.0f,  1.0f,  0.0f, 0.5f, 0.0f, 1.0f,
                                   NAN,   0.0f,  0.0f, 1.0f};
  Image image(8, 8);
  Rasterize(clip, {0, 1, 3, 0, 1, 2}, &image);
  bool only_second = true;
  float covered = 0.0f;
  for (int p = 0; p < 64; ++p) {
    covered += image.mask[p];
    only_second &= image.mask[p] == 0.0f || image.ids[p] == 1;
  }
  Check(covered > 0.0f && only_second, "a NaN vertex drops only its triangle");
}

// Per pixel, per triangle, in list order: the rasterizer's arithmetic
// (edge functions relative to the pixel centre, float depth, later triangle
// wins ties) without any of its shortcuts. Fast-path triangles only.
void ReferenceRasterize(const std::vector<float>& clip,
                        const std::vector<int32_t>& triangles, Image* image) {
  std::vector<ProjectedVertex> p(clip.size() / 4);
  ProjectVertices(clip.data(), p.size(), image->width, image->height, p.data());
  std::fill(image->ids.begin(), image->ids.end(), 0);
  std::fill(image->mask.begin(), image->mask.end(), 0.0f);
  std::fill(image->depth.begin(), image->depth.end(), kBackgroundDepth);
  for (size_t t = 0; t < triangles.size() / 3; ++t) {
    const ProjectedVertex* v[3];
    bool finite = true;
    for (int i = 0; i < 3; ++i) {
      v[i] = &p[triangles[3 * t + i]];
      finite &= std::isfinite(v[i]->x);
    }
    if (!finite) continue;
    for (int row = 0; row < image->height; ++row) {
      for (int col = 0; col < image->width; ++col) {
        float x[3], y[3];
        for (int i = 0; i < 3; ++i) {
          x[i] = v[i]->x - (col + 0.5f);
          y[i] = v[i]->y - (row + 0.5f);
        }
        const float e[3] = {x[1] * y[2] - y[1] * x[2], x[2] * y[0] - y[2] * x[0],
                            x[0] * y[1] - y[0] * x[1]};
        const bool inside = (e[0] <= 0.0f && e[1] <= 0.0f && e[2] <= 0.0f) ||
                            (e[0] >= 0.0f && e[1] >= 0.0f && e[2] >= 0.0f);
        const float sum = e[0] + e[1] + e[2];
        if (!inside || sum == 0.0f) continue;
        const float z = (e[0] * v[0]->z + e[1] * v[1]->z + e[2] * v[2]->z) / sum;
        const int pixel = row * image->width + col;
        if (!(z >= -1.0f && z <= 1.0f) || z > image->depth[pixel]) continue;
        image->depth[pixel] = z;
        image->ids[pixel] = static_cast<int32_t>(t);
        image->mask[pixel] = 1.0f;
      }
    }
  }
}

void TestMixedTriangleSizesMatchThePerPixelReference() {
  // A dense grid (at most 2x2 candidate pixels per triangle) and a copy
  // moved by a third of a pixel and enlarged past the image edges, at the
  // same depth and interleaved triangle by triangle (ties go by list order).
  // Large triangles at random depths are spliced in at every position of the
  // rasterizer's four-triangle groups, plus a triangle with a NaN vertex and
  // a tail. Rasterized whole and in row bands, last band first (a band
  // writing outside its rows would spoil a finished one).
  std::mt19937 rng(3);
  std::vector<float> clip;
  std::vector<int32_t> first;
  JitteredGrid(60, &rng, &clip, &first);
  const int32_t offset = static_cast<int32_t>(clip.size() / 4);
  for (int32_t v = 0; v < offset; ++v) {
    const float* c = &clip[4 * v];
    const float moved[4] = {1.1f * c[0] + 0.015f * c[3], 1.1f * c[1] - 0.01f * c[3], c[2], c[3]};
    clip.insert(clip.end(), moved, moved + 4);
  }
  std::vector<int32_t> grids;
  for (size_t t = 0; 3 * t < first.size(); ++t) {
    grids.insert(grids.end(), first.begin() + 3 * t, first.begin() + 3 * t + 3);
    for (int i = 0; i < 3; ++i) grids.push_back(first[3 * t + i] + offset);
  }
  std::uniform_real_distribution<float> coordinate(-1.2f, 1.2f), depth(-0.9f, 0.9f);
  const int32_t first_extra = static_cast<int32_t>(clip.size() / 4);
  for (int i = 0; i < 30; ++i) {
    clip.insert(clip.end(), {coordinate(rng), coordinate(rng), depth(rng), 1.0f});
  }
  clip.insert(clip.end(), {NAN, 0.0f, 0.0f, 1.0f});
  std::vector<int32_t> triangles;
  size_t next = 0;
  for (int big = 0; big < 10; ++big) {
    for (int k = 0; k < 3 * (big % 5) + 1 && next < grids.size(); ++k, next += 3) {
      triangles.insert(triangles.end(), grids.begin() + next, grids.begin() + next + 3);
    }
    triangles.insert(triangles.end(), {first_extra + 3 * big, first_extra + 3 * big + 1,
                                       first_extra + 3 * big + 2});
    triangles.insert(triangles.end(), {first_extra + big, first_extra + 30, first_extra + 29 - big});
  }
  triangles.insert(triangles.end(), grids.begin() + next, grids.end());
  triangles.insert(triangles.end(), {first_extra, first_extra + 1, first_extra + 2});

  const int width = 45, height = 38;
  Image image(width, height), banded(width, height), reference(width, height);
  Rasterize(clip, triangles, &image);
  std::vector<ProjectedVertex> projected(clip.size() / 4);
  ProjectVertices(clip.data(), projected.size(), width, height, projected.data());
  for (int row = height - height % 5; row >= 0; row -= 5) {
    RasterizeRows(clip.data(), projected.data(), triangles.data(), triangles.size() / 3,
                  width, height, row, std::min(height, row + 5), false, banded.ids.data(),
                  banded.mask.data(), banded.barycentrics.data(), banded.depth.data());
  }
  ReferenceRasterize(clip, triangles, &reference);
  bool both_grids_win = false;
  for (int32_t id : reference.ids) both_grids_win |= id > 0 && triangles[3 * id] >= offset;
  Check(both_grids_win, "the test mesh has pixels won by the second grid");
  Check(image.ids == reference.ids && image.mask == reference.mask &&
            image.depth == reference.depth,
        "mixed triangle sizes: ids, mask and depth equal the per-pixel reference");
  Check(banded.ids == reference.ids && banded.mask == reference.mask &&
            banded.depth == reference.depth,
        "mixed triangle sizes in row bands: ids, mask and depth equal the per-pixel reference");
}

// Slow-path triangles (each with a vertex behind the eye) against every pixel
// of the image, in list order: the clipped bounds and row spans must not lose
// a pixel, so the outputs are identical.
void TestSlowPathBoundsLoseNoPixel() {
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> coordinate(-1.5f, 1.5f), w(-1.0f, 2.0f);
  std::vector<float> clip;
  std::vector<int32_t> triangles;
  for (int t = 0; t < 300; ++t) {
    for (int i = 0; i < 3; ++i) {
      const float vw = i == 0 ? -std::fabs(w(rng)) : w(rng);
      clip.insert(clip.end(), {coordinate(rng), coordinate(rng), 0.9f * coordinate(rng) * std::fabs(vw), vw});
      triangles.push_back(3 * t + i);
    }
  }
  const int width = 53, height = 41;
  Image image(width, height), reference(width, height);
  Rasterize(clip, triangles, &image);
  std::fill(reference.depth.begin(), reference.depth.end(), kBackgroundDepth);
  for (int t = 0; t < 300; ++t) {
    HomogeneousSetup h;
    if (!SetupHomogeneousTriangle(clip.data(), &triangles[3 * t], false, &h)) continue;
    for (int row = 0; row < height; ++row) {
      for (int col = 0; col < width; ++col) {
        float z, b[3];
        if (!HomogeneousPixel(h, PixelNdcX(col, width), PixelNdcY(row, height), &z, b)) continue;
        const int pixel = row * width + col;
        if (z > reference.depth[pixel]) continue;
        reference.depth[pixel] = z;
        reference.ids[pixel] = t;
        reference.mask[pixel] = 1.0f;
        for (int i = 0; i < 3; ++i) reference.barycentrics[3 * pixel + i] = b[i];
      }
    }
  }
  float covered = 0.0f;
  for (float m : reference.mask) covered += m;
  Check(covered > 0.3f * width * height, "the eye-crossing test mesh covers much of the image");
  Check(image.ids == reference.ids && image.mask == reference.mask &&
            image.depth == reference.depth && image.barycentrics == reference.barycentrics,
        "slow path with clipped bounds equals testing every pixel");
}

// The CUDA twin's algorithm (rasterize_cuda.cu) run on the host with the
// shared functions of rasterize_pixel.h: scalar projection, one triangle at a
// time over its candidates, the minimum of (depth, -id) keys per pixel, then
// each winner's depth and barycentrics recomputed. It must reproduce the CPU
// core's vector code bit for bit.
uint64_t DepthKey(float z, int32_t id) {
  float positive = z + 0.0f;
  uint32_t bits;
  std::memcpy(&bits, &positive, sizeof(bits));
  bits = (bits & 0x80000000u) != 0u ? ~bits : (bits | 0x80000000u);
  return (static_cast<uint64_t>(bits) << 32) | (0xFFFFFFFEu - static_cast<uint32_t>(id));
}

void TwinRasterize(const std::vector<float>& clip, const std::vector<int32_t>& triangles,
                   bool cull, Image* image, std::vector<ProjectedVertex>* projected) {
  const int width = image->width, height = image->height;
  projected->resize(clip.size() / 4);
  for (size_t v = 0; v < projected->size(); ++v) {
    (*projected)[v] = ProjectVertex(&clip[4 * v], 0.5f * width, 0.5f * height);
  }
  std::vector<uint64_t> keys(width * height, ~0ull);
  for (size_t t = 0; t < triangles.size() / 3; ++t) {
    const int32_t* ids = &triangles[3 * t];
    const ProjectedVertex* const v[3] = {&(*projected)[ids[0]], &(*projected)[ids[1]], &(*projected)[ids[2]]};
    const int32_t id = static_cast<int32_t>(t);
    if (!IsFinite(v[0]->x + v[1]->x + v[2]->x)) {
      HomogeneousSetup h;
      int c0, r0, c1, r1;
      if (!SetupHomogeneousTriangle(clip.data(), ids, cull, &h) ||
          !HomogeneousBounds(h.s, width, height, 0, height, &c0, &r0, &c1, &r1)) {
        continue;
      }
      for (int row = r0; row < r1; ++row) {
        int first, last;
        HomogeneousRowSpan(h, PixelNdcY(row, height), width, c0, c1, &first, &last);
        for (int col = first; col < last; ++col) {
          float z, b[3];
          if (!HomogeneousPixel(h, PixelNdcX(col, width), PixelNdcY(row, height), &z, b)) continue;
          keys[row * width + col] = std::min(keys[row * width + col], DepthKey(z, id));
        }
      }
      continue;
    }
    FastCandidates setup;
    if (!FastTriangleSetup(v, width, 0, height, cull, &setup)) continue;
    for (int row = setup.r0; row < setup.r1; ++row) {
      for (int col = setup.c0; col < setup.c1; ++col) {
        float e[3], z;
        if (!FastPixelInside(setup, v, col, row, cull, e) || !FastDepth(e, v, &z)) continue;
        keys[row * width + col] = std::min(keys[row * width + col], DepthKey(z, id));
      }
    }
  }
  for (int pixel = 0; pixel < width * height; ++pixel) {
    image->ids[pixel] = 0;
    image->mask[pixel] = 0.0f;
    image->depth[pixel] = kBackgroundDepth;
    for (int k = 0; k < 3; ++k) image->barycentrics[3 * pixel + k] = 0.0f;
    if (keys[pixel] == ~0ull) continue;
    const int32_t id = static_cast<int32_t>(0xFFFFFFFEu - static_cast<uint32_t>(keys[pixel]));
    const int32_t* ids = &triangles[3 * id];
    const ProjectedVertex* const v[3] = {&(*projected)[ids[0]], &(*projected)[ids[1]], &(*projected)[ids[2]]};
    const int row = pixel / width, col = pixel % width;
    float z, b[3];
    if (!IsFinite(v[0]->x + v[1]->x + v[2]->x)) {
      HomogeneousSetup h;
      if (!SetupHomogeneousTriangle(clip.data(), ids, cull, &h) ||
          !HomogeneousPixel(h, PixelNdcX(col, width), PixelNdcY(row, height), &z, b)) {
        continue;
      }
    } else {
      FastCandidates setup;
      float e[3];
      if (!FastTriangleSetup(v, width, 0, height, cull, &setup) ||
          !FastPixelInside(setup, v, col, row, cull, e) || !FastDepth(e, v, &z)) {
        continue;
      }
      FastBarycentrics(e, v, b);
    }
    image->ids[pixel] = id;
    image->mask[pixel] = 1.0f;
    image->depth[pixel] = z;
    for (int k = 0; k < 3; ++k) image->barycentrics[3 * pixel + k] = b[k];
  }
}

// The twin's gradient (per-pixel functions, sums per vertex, FinishVertex)
// against the core's, to 1e-5 of the largest gradient (sums in another order
// and in double at the end).
double TwinGradientError(const std::vector<float>& clip, const std::vector<int32_t>& triangles,
                         const std::vector<ProjectedVertex>& projected, const Image& image) {
  const int width = image.width, height = image.height;
  const int64_t vertices = static_cast<int64_t>(clip.size() / 4);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::vector<float> d_bary(3 * width * height), d_depth(width * height);
  for (float& g : d_bary) g = normal(rng);
  for (float& g : d_depth) g = normal(rng);
  std::vector<float> core(4 * vertices, 0.0f), slow(4 * vertices, 0.0f);
  AccumulateGradientRows(clip.data(), projected.data(), triangles.data(), image.ids.data(),
                         image.mask.data(), d_bary.data(), d_depth.data(), width, height, 0, height,
                         core.data(), slow.data());
  const float* core_bands[1] = {core.data()};
  const float* slow_bands[1] = {slow.data()};
  FinishGradient(clip.data(), core_bands, slow_bands, 1, 0, vertices, width, height, core.data());
  std::vector<float> fast_sums(4 * vertices, 0.0f), slow_sums(4 * vertices, 0.0f);
  for (int pixel = 0; pixel < width * height; ++pixel) {
    if (image.mask[pixel] == 0.0f) continue;
    const int32_t* ids = &triangles[3 * image.ids[pixel]];
    const ProjectedVertex* const v[3] = {&projected[ids[0]], &projected[ids[1]], &projected[ids[2]]};
    const int row = pixel / width, col = pixel % width;
    float d[3][4];
    float* sums = nullptr;
    if (!IsFinite(v[0]->x + v[1]->x + v[2]->x)) {
      if (HomogeneousPixelGradient(clip.data(), ids, &d_bary[3 * pixel], d_depth[pixel],
                                   PixelNdcX(col, width), PixelNdcY(row, height), d)) {
        sums = slow_sums.data();
      }
    } else if (FastPixelGradient(v, col, row, &d_bary[3 * pixel], d_depth[pixel], true, d)) {
      sums = fast_sums.data();
    }
    if (sums == nullptr) continue;
    for (int j = 0; j < 3; ++j) {
      for (int k = 0; k < 4; ++k) sums[4 * ids[j] + k] += d[j][k];
    }
  }
  double largest = 0.0, error = 0.0;
  for (int64_t v = 0; v < vertices; ++v) {
    double fast[4], slow_v[4];
    for (int k = 0; k < 4; ++k) {
      fast[k] = fast_sums[4 * v + k];
      slow_v[k] = slow_sums[4 * v + k];
    }
    float twin[4];
    FinishVertex(&clip[4 * v], fast, slow_v, width, height, twin);
    for (int k = 0; k < 4; ++k) {
      largest = std::max(largest, static_cast<double>(std::fabs(core[4 * v + k])));
      error = std::max(error, static_cast<double>(std::fabs(core[4 * v + k] - twin[k])));
    }
  }
  return largest > 0.0 ? error / largest : error;
}

void TestCudaTwinAlgorithmMatchesTheCore() {
  std::mt19937 rng(5);
  struct Case {
    const char* name;
    std::vector<float> clip;
    std::vector<int32_t> triangles;
    int width, height;
  };
  std::vector<Case> cases(3);
  cases[0].name = "jittered grid";
  JitteredGrid(40, &rng, &cases[0].clip, &cases[0].triangles);
  cases[0].width = 61;
  cases[0].height = 47;
  // Two copies of one grid: every covered pixel is an exact depth tie.
  cases[1].name = "tied grids";
  JitteredGrid(12, &rng, &cases[1].clip, &cases[1].triangles);
  const int32_t offset = static_cast<int32_t>(cases[1].clip.size() / 4);
  const size_t count = cases[1].triangles.size();
  cases[1].clip.insert(cases[1].clip.end(), cases[1].clip.begin(), cases[1].clip.end());
  for (size_t i = 0; i < count; ++i) cases[1].triangles.push_back(cases[1].triangles[i] + offset);
  cases[1].width = cases[1].height = 40;
  // Large triangles of random depth and w, some behind the eye.
  cases[2].name = "eye-crossing soup";
  std::uniform_real_distribution<float> coordinate(-1.3f, 1.3f), w(-0.5f, 2.0f);
  for (int v = 0; v < 240; ++v) {
    const float vw = w(rng);
    cases[2].clip.insert(cases[2].clip.end(), {coordinate(rng), coordinate(rng), 0.5f * coordinate(rng) * std::fabs(vw), vw});
    cases[2].triangles.push_back(v);
  }
  cases[2].width = 45;
  cases[2].height = 52;
  for (const Case& c : cases) {
    for (const bool cull : {false, true}) {
      Image core(c.width, c.height), twin(c.width, c.height);
      std::vector<ProjectedVertex> projected(c.clip.size() / 4), twin_projected;
      ProjectVertices(c.clip.data(), projected.size(), c.width, c.height, projected.data());
      RasterizeRows(c.clip.data(), projected.data(), c.triangles.data(), c.triangles.size() / 3,
                    c.width, c.height, 0, c.height, cull, core.ids.data(), core.mask.data(),
                    core.barycentrics.data(), core.depth.data());
      TwinRasterize(c.clip, c.triangles, cull, &twin, &twin_projected);
      const bool same_projection =
          std::memcmp(projected.data(), twin_projected.data(), projected.size() * sizeof(ProjectedVertex)) == 0;
      const std::string what = std::string(c.name) + (cull ? " (culled)" : "");
      Check(same_projection, (what + ": scalar projection equals the vector one bit for bit").c_str());
      Check(core.ids == twin.ids && core.mask == twin.mask && core.depth == twin.depth &&
                core.barycentrics == twin.barycentrics,
            (what + ": the CUDA twin's algorithm reproduces the core bit for bit").c_str());
      if (!cull) {
        const double error = TwinGradientError(c.clip, c.triangles, projected, core);
        Check(error <= 1e-5, (what + ": the twin's gradient is within 1e-5 of the core's").c_str());
      }
    }
  }
}

void TestFindInvalidTriangle() {
  const std::vector<int32_t> triangles = {0, 1, 2, 2, 3, 0, 0, -1, 2};
  Check(FindInvalidTriangle(triangles.data(), 2, 4) == -1, "valid indices pass");
  Check(FindInvalidTriangle(triangles.data(), 2, 3) == 1, "index == vertex count is invalid");
  Check(FindInvalidTriangle(triangles.data(), 3, 4) == 2, "negative index is invalid");
}

}  // namespace
}  // namespace face3d

int main() {
  face3d::TestClosedMeshCoversEveryPixelOnce();
  face3d::TestBandsMatchTheWholeImage();
  face3d::TestNonFiniteVertexDropsItsTriangles();
  face3d::TestFindInvalidTriangle();
  face3d::TestMixedTriangleSizesMatchThePerPixelReference();
  face3d::TestSlowPathBoundsLoseNoPixel();
  face3d::TestCudaTwinAlgorithmMatchesTheCore();
  std::printf("%d failure(s)\n", face3d::failures);
  return face3d::failures == 0 ? 0 : 1;
}
