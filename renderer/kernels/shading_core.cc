// CPU loops of SH shading; the arithmetic is in shading_core.h.
#include "shading_core.h"

namespace face3d {

void ShadeVertices(const ShadingParams& params, float* colours) {
  for (int64_t v = 0; v < params.vertex_count; ++v) {
    ShadeVertex(params.normals + 3 * v, params.albedo + 3 * v, params.coefficients,
                params.band_scales, colours + 3 * v);
  }
}

void ShadeVerticesGradient(const ShadingParams& params, const float* d_colours,
                           float* d_normals, float* d_albedo,
                           float* d_coefficients) {
  // The light's gradient sums over every vertex: double, against rounding.
  double d_light[kShBands * 3] = {0.0};
  for (int64_t v = 0; v < params.vertex_count; ++v) {
    float basis[kShBands], d_irradiance[3];
    ShadeVertexGradient(params.normals + 3 * v, params.albedo + 3 * v, d_colours + 3 * v,
                        params.coefficients, params.band_scales, d_normals + 3 * v,
                        d_albedo + 3 * v, basis, d_irradiance);
    for (int k = 0; k < kShBands; ++k) {
      for (int c = 0; c < 3; ++c) d_light[3 * k + c] += basis[k] * d_irradiance[c];
    }
  }
  for (int i = 0; i < kShBands * 3; ++i) d_coefficients[i] = static_cast<float>(d_light[i]);
}

}  // namespace face3d
