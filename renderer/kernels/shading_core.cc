// CPU loops of SH shading; the arithmetic is in shading_core.h.
//
// Both loops walk the mesh in blocks of kBlock vertices, copied into
// structure-of-arrays buffers, so that the per-vertex arithmetic runs on the
// block's own arrays (nothing can alias them) and the compiler vectorises it;
// the loops are compiled for the baseline and for AVX2 (simd_dispatch.h),
// lane by lane the same float operations as ShadeVertex and
// ShadeVertexGradient one vertex at a time, so the colours, d_normals and
// d_albedo are those of a plain vertex loop bit for bit.
#include "shading_core.h"

#include <algorithm>

#include "simd_dispatch.h"

namespace face3d {
namespace {

constexpr int kBlock = 128;
// The light's gradient adds vertex i of a block into accumulator lane
// i % kLanes (see ShadeGradientBody).
constexpr int kLanes = 8;
static_assert(kBlock % kLanes == 0, "a block is whole lane groups");

// Vertices [begin, begin + count) of `interleaved` [vertex_count, 3] into
// soa[3][kBlock], zeros after them up to `padded`.
FACE3D_SIMD_INLINE void Deinterleave(const float* interleaved, int64_t begin, int count,
                                     int padded, float (*soa)[kBlock]) {
  const float* in = interleaved + 3 * begin;
  for (int i = 0; i < count; ++i) {
    soa[0][i] = in[3 * i];
    soa[1][i] = in[3 * i + 1];
    soa[2][i] = in[3 * i + 2];
  }
  for (int i = count; i < padded; ++i) soa[0][i] = soa[1][i] = soa[2][i] = 0.0f;
}

// soa[3][kBlock]'s first `count` vertices into rows [begin, begin + count).
FACE3D_SIMD_INLINE void Interleave(const float (*soa)[kBlock], int64_t begin, int count,
                                   float* interleaved) {
  float* out = interleaved + 3 * begin;
  for (int i = 0; i < count; ++i) {
    out[3 * i] = soa[0][i];
    out[3 * i + 1] = soa[1][i];
    out[3 * i + 2] = soa[2][i];
  }
}

struct ShadeBlock {
  float n[3][kBlock], albedo[3][kBlock], colour[3][kBlock];
};

FACE3D_SIMD_INLINE void ShadeBody(const ShadingParams& params, float* colours) {
  float coefficients[kShBands * 3], scales[kShBands];
  std::copy(params.coefficients, params.coefficients + kShBands * 3, coefficients);
  std::copy(params.band_scales, params.band_scales + kShBands, scales);
  ShadeBlock block;
  for (int64_t begin = 0; begin < params.vertex_count; begin += kBlock) {
    const int count = static_cast<int>(std::min<int64_t>(kBlock, params.vertex_count - begin));
    const int padded = (count + kLanes - 1) / kLanes * kLanes;
    Deinterleave(params.normals, begin, count, padded, block.n);
    Deinterleave(params.albedo, begin, count, padded, block.albedo);
    for (int i = 0; i < padded; ++i) {
      const float n[3] = {block.n[0][i], block.n[1][i], block.n[2][i]};
      const float a[3] = {block.albedo[0][i], block.albedo[1][i], block.albedo[2][i]};
      float colour[3];
      ShadeVertex(n, a, coefficients, scales, colour);
      for (int c = 0; c < 3; ++c) block.colour[c][i] = colour[c];
    }
    Interleave(block.colour, begin, count, colours);
  }
}

struct GradientBlock {
  float n[3][kBlock], albedo[3][kBlock], d_colour[3][kBlock];  // in
  float d_n[3][kBlock], d_albedo[3][kBlock];                   // out
  float basis[kShBands][kBlock], d_irradiance[3][kBlock];      // to the light
};

FACE3D_SIMD_INLINE void ShadeGradientBody(const ShadingParams& params, const float* d_colours,
                                          float* d_normals, float* d_albedo,
                                          float* d_coefficients) {
  float coefficients[kShBands * 3], scales[kShBands];
  std::copy(params.coefficients, params.coefficients + kShBands * 3, coefficients);
  std::copy(params.band_scales, params.band_scales + kShBands, scales);
  // The light's gradient sums over every vertex: each product
  // basis[k] d_irradiance[c] is rounded to float, as one vertex at a time
  // (and in the CUDA twin), then summed in double, against rounding, into
  // kLanes partial sums per entry (vertex i of a block into lane i % kLanes,
  // a fixed order whatever the vector width), added in lane order at the end.
  // Only the order of the double additions differs from a plain vertex loop.
  double d_light[kShBands * 3][kLanes] = {{0.0}};
  GradientBlock block;
  for (int64_t begin = 0; begin < params.vertex_count; begin += kBlock) {
    const int count = static_cast<int>(std::min<int64_t>(kBlock, params.vertex_count - begin));
    // The last block is computed up to a whole lane group, on zeros.
    const int padded = (count + kLanes - 1) / kLanes * kLanes;
    Deinterleave(params.normals, begin, count, padded, block.n);
    Deinterleave(params.albedo, begin, count, padded, block.albedo);
    Deinterleave(d_colours, begin, count, padded, block.d_colour);
    for (int i = 0; i < padded; ++i) {
      const float n[3] = {block.n[0][i], block.n[1][i], block.n[2][i]};
      const float a[3] = {block.albedo[0][i], block.albedo[1][i], block.albedo[2][i]};
      const float d[3] = {block.d_colour[0][i], block.d_colour[1][i], block.d_colour[2][i]};
      float d_n[3], d_a[3], basis[kShBands], d_irradiance[3];
      ShadeVertexGradient(n, a, d, coefficients, scales, d_n, d_a, basis, d_irradiance);
      for (int c = 0; c < 3; ++c) {
        block.d_n[c][i] = d_n[c];
        block.d_albedo[c][i] = d_a[c];
        block.d_irradiance[c][i] = d_irradiance[c];
      }
      for (int k = 0; k < kShBands; ++k) block.basis[k][i] = basis[k];
    }
    Interleave(block.d_n, begin, count, d_normals);
    Interleave(block.d_albedo, begin, count, d_albedo);
    // The block's real vertices alone (the padding adds nothing, not even a
    // NaN of non-finite band scales).
    const int whole = count / kLanes * kLanes;
    for (int k = 0; k < kShBands; ++k) {
      for (int c = 0; c < 3; ++c) {
        double* lanes = d_light[3 * k + c];
        const float* b = block.basis[k];
        const float* d = block.d_irradiance[c];
        for (int i = 0; i < whole; i += kLanes) {
          for (int j = 0; j < kLanes; ++j) {
            lanes[j] += static_cast<double>(b[i + j] * d[i + j]);
          }
        }
        for (int i = whole; i < count; ++i) lanes[i - whole] += static_cast<double>(b[i] * d[i]);
      }
    }
  }
  for (int e = 0; e < kShBands * 3; ++e) {
    double sum = 0.0;
    for (int j = 0; j < kLanes; ++j) sum += d_light[e][j];
    d_coefficients[e] = static_cast<float>(sum);
  }
}

void ShadeBaseline(const ShadingParams& params, float* colours) { ShadeBody(params, colours); }

void ShadeGradientBaseline(const ShadingParams& params, const float* d_colours, float* d_normals,
                           float* d_albedo, float* d_coefficients) {
  ShadeGradientBody(params, d_colours, d_normals, d_albedo, d_coefficients);
}

#if defined(FACE3D_SIMD_AVX2)
FACE3D_SIMD_AVX2_TARGET void ShadeAvx2(const ShadingParams& params, float* colours) {
  ShadeBody(params, colours);
}

FACE3D_SIMD_AVX2_TARGET void ShadeGradientAvx2(const ShadingParams& params,
                                               const float* d_colours, float* d_normals,
                                               float* d_albedo, float* d_coefficients) {
  ShadeGradientBody(params, d_colours, d_normals, d_albedo, d_coefficients);
}
#endif

}  // namespace

void ShadeVertices(const ShadingParams& params, float* colours) {
#if defined(FACE3D_SIMD_AVX2)
  if (UseAvx2Loops()) return ShadeAvx2(params, colours);
#endif
  ShadeBaseline(params, colours);
}

void ShadeVerticesGradient(const ShadingParams& params, const float* d_colours,
                           float* d_normals, float* d_albedo,
                           float* d_coefficients) {
#if defined(FACE3D_SIMD_AVX2)
  if (UseAvx2Loops()) {
    return ShadeGradientAvx2(params, d_colours, d_normals, d_albedo, d_coefficients);
  }
#endif
  ShadeGradientBaseline(params, d_colours, d_normals, d_albedo, d_coefficients);
}

}  // namespace face3d
