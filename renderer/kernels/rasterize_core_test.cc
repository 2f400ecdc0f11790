// Tests of the plain C++ core, without TensorFlow: compiled and run by
// tests/test_rasterizer_core.py (g++ rasterize_core_test.cc rasterize_core.cc).
// Prints one line per failed check and exits non-zero if any failed.
#include <cmath>
#include <cstdio>
#include <random>
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
  std::printf("%d failure(s)\n", face3d::failures);
  return face3d::failures == 0 ? 0 : 1;
}
