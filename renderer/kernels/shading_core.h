// Lambertian shading under 9-term spherical-harmonics light: the plain C++
// core of the ShShading op and its gradient.
//
// No TensorFlow in here. The per-vertex arithmetic is in inline functions
// marked FACE3D_HOST_DEVICE, shared with the CUDA twin (shading_cuda.cu: one
// thread per vertex; the light gradient then reduces over a block, in double,
// in a fixed order). The CPU loops own one mesh each.
//
// Layouts (row-major, one mesh): normals, albedo, colours [vertex_count, 3];
// coefficients [9, 3] (band-major, RGB last: the light with the ambient term
// already added); band_scales [9], the real-SH constants times the Lambertian
// band factors, given by renderer/shading.py (their one home). The basis at a
// unit normal (x, y, z) is band_scales times
//   (1, y, z, x, x y, y z, 3 z^2 - 1, x z, x^2 - y^2),
// irradiance_c = sum_k basis_k coefficients[k][c], colour = albedo irradiance.
#ifndef FACE3D_RENDERER_KERNELS_SHADING_CORE_H_
#define FACE3D_RENDERER_KERNELS_SHADING_CORE_H_

#include <cstdint>

#ifndef FACE3D_HOST_DEVICE
#if defined(__CUDACC__)
#define FACE3D_HOST_DEVICE __host__ __device__
#else
#define FACE3D_HOST_DEVICE
#endif
#endif

namespace face3d {

constexpr int kShBands = 9;

struct ShadingParams {
  const float* normals;       // [vertex_count, 3]
  const float* albedo;        // [vertex_count, 3]
  const float* coefficients;  // [9, 3]
  const float* band_scales;   // [9]
  int64_t vertex_count;
};

FACE3D_HOST_DEVICE inline void ShBasis(const float* n, const float* scales,
                                       float* basis) {
  const float x = n[0], y = n[1], z = n[2];
  basis[0] = scales[0];
  basis[1] = scales[1] * y;
  basis[2] = scales[2] * z;
  basis[3] = scales[3] * x;
  basis[4] = scales[4] * x * y;
  basis[5] = scales[5] * y * z;
  basis[6] = scales[6] * (3.0f * z * z - 1.0f);
  basis[7] = scales[7] * x * z;
  basis[8] = scales[8] * (x * x - y * y);
}

// d_n = sum_k d_basis[k] d basis_k / d n.
FACE3D_HOST_DEVICE inline void ShBasisGrad(const float* n, const float* scales,
                                           const float* d_basis, float* d_n) {
  const float x = n[0], y = n[1], z = n[2];
  const float g[kShBands] = {0.0f,
                             scales[1] * d_basis[1],
                             scales[2] * d_basis[2],
                             scales[3] * d_basis[3],
                             scales[4] * d_basis[4],
                             scales[5] * d_basis[5],
                             scales[6] * d_basis[6],
                             scales[7] * d_basis[7],
                             scales[8] * d_basis[8]};
  d_n[0] = g[3] + g[4] * y + g[7] * z + 2.0f * g[8] * x;
  d_n[1] = g[1] + g[4] * x + g[5] * z - 2.0f * g[8] * y;
  d_n[2] = g[2] + g[5] * y + 6.0f * g[6] * z + g[7] * x;
}

// irradiance[c] = sum_k basis[k] coefficients[k][c].
FACE3D_HOST_DEVICE inline void Irradiance(const float* basis,
                                          const float* coefficients,
                                          float* irradiance) {
  for (int c = 0; c < 3; ++c) {
    float sum = 0.0f;
    for (int k = 0; k < kShBands; ++k) sum += basis[k] * coefficients[3 * k + c];
    irradiance[c] = sum;
  }
}

// The colour of one vertex: albedo times the irradiance at its normal.
FACE3D_HOST_DEVICE inline void ShadeVertex(const float* n, const float* albedo,
                                           const float* coefficients,
                                           const float* scales, float* colour) {
  float basis[kShBands], irradiance[3];
  ShBasis(n, scales, basis);
  Irradiance(basis, coefficients, irradiance);
  for (int c = 0; c < 3; ++c) colour[c] = albedo[c] * irradiance[c];
}

// The gradient of one vertex given d_colour: writes d_n and d_albedo, and the
// vertex's basis and d_irradiance = d_colour * albedo, whose products
// basis[k] d_irradiance[c] are its part of d_coefficients[k][c] (summed over
// the vertices by the caller).
FACE3D_HOST_DEVICE inline void ShadeVertexGradient(
    const float* n, const float* albedo, const float* d_colour,
    const float* coefficients, const float* scales, float* d_n,
    float* d_albedo, float* basis, float* d_irradiance) {
  float irradiance[3], d_basis[kShBands];
  ShBasis(n, scales, basis);
  Irradiance(basis, coefficients, irradiance);
  for (int c = 0; c < 3; ++c) {
    d_albedo[c] = d_colour[c] * irradiance[c];
    d_irradiance[c] = d_colour[c] * albedo[c];
  }
  for (int k = 0; k < kShBands; ++k) {
    d_basis[k] = coefficients[3 * k] * d_irradiance[0] +
                 coefficients[3 * k + 1] * d_irradiance[1] +
                 coefficients[3 * k + 2] * d_irradiance[2];
  }
  ShBasisGrad(n, scales, d_basis, d_n);
}

// colours [vertex_count, 3] of one mesh.
void ShadeVertices(const ShadingParams& params, float* colours);

// The gradient of one mesh given d_colours: d_normals, d_albedo
// [vertex_count, 3] and d_coefficients [9, 3] (all overwritten).
void ShadeVerticesGradient(const ShadingParams& params, const float* d_colours,
                           float* d_normals, float* d_albedo,
                           float* d_coefficients);

}  // namespace face3d

#endif  // FACE3D_RENDERER_KERNELS_SHADING_CORE_H_
