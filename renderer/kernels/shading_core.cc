// CPU loops of SH shading; the arithmetic is in shading_core.h.
#include "shading_core.h"

namespace face3d {

void ShadeVertices(const ShadingParams& params, float* colours) {
  for (int64_t v = 0; v < params.vertex_count; ++v) {
    float basis[kShBands], irradiance[3];
    ShBasis(params.normals + 3 * v, params.band_scales, basis);
    Irradiance(basis, params.coefficients, irradiance);
    for (int c = 0; c < 3; ++c) colours[3 * v + c] = params.albedo[3 * v + c] * irradiance[c];
  }
}

void ShadeVerticesGradient(const ShadingParams& params, const float* d_colours,
                           float* d_normals, float* d_albedo,
                           float* d_coefficients) {
  // The light's gradient sums over every vertex: double, against rounding.
  double d_light[kShBands * 3] = {0.0};
  const float* coefficients = params.coefficients;
  for (int64_t v = 0; v < params.vertex_count; ++v) {
    float basis[kShBands], irradiance[3], d_irradiance[3], d_basis[kShBands];
    const float* n = params.normals + 3 * v;
    ShBasis(n, params.band_scales, basis);
    Irradiance(basis, coefficients, irradiance);
    for (int c = 0; c < 3; ++c) {
      d_albedo[3 * v + c] = d_colours[3 * v + c] * irradiance[c];
      d_irradiance[c] = d_colours[3 * v + c] * params.albedo[3 * v + c];
    }
    for (int k = 0; k < kShBands; ++k) {
      d_basis[k] = coefficients[3 * k] * d_irradiance[0] +
                   coefficients[3 * k + 1] * d_irradiance[1] +
                   coefficients[3 * k + 2] * d_irradiance[2];
      for (int c = 0; c < 3; ++c) d_light[3 * k + c] += basis[k] * d_irradiance[c];
    }
    ShBasisGrad(n, params.band_scales, d_basis, d_normals + 3 * v);
  }
  for (int i = 0; i < kShBands * 3; ++i) d_coefficients[i] = static_cast<float>(d_light[i]);
}

}  // namespace face3d
