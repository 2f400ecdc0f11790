// The work of one CUDA thread of each fused-op kernel, as FACE3D_HOST_DEVICE
// functions of the thread's index: the __global__ kernels of
// interpolate_cuda.cu, normals_cuda.cu, shading_cuda.cu, group_norm_cuda.cu and
// photometric_cuda.cu are one-line wrappers around them, and fused_harness.cc runs the same
// functions serially on the host ("emulated twin"), so the CUDA twins'
// decomposition (indexing, layouts, scratch) is checked against the CPU cores
// even where there is no GPU. On the host, ScatterAdd adds plainly (one
// thread at a time); on the device it is an atomicAdd.
//
// The per-element arithmetic itself is the cores' (interpolate_core.h,
// normals_core.h, shading_core.h, group_norm_core.h, photometric_core.h).
#ifndef FACE3D_RENDERER_KERNELS_FUSED_THREADS_H_
#define FACE3D_RENDERER_KERNELS_FUSED_THREADS_H_

#include <cstdint>

#include "group_norm_core.h"
#include "group_norm_cuda.h"
#include "interpolate_core.h"
#include "interpolate_cuda.h"
#include "normals_core.h"
#include "normals_cuda.h"
#include "photometric_core.h"
#include "photometric_cuda.h"
#include "shading_core.h"
#include "shading_cuda.h"

namespace face3d {
namespace fused_threads {

// *target += value: an atomic add on the device, a plain one on the host.
FACE3D_HOST_DEVICE inline void ScatterAdd(float* target, float value) {
#if defined(__CUDA_ARCH__)
  atomicAdd(target, value);
#else
  *target += value;
#endif
}

// ------------------------------------------------------------ interpolation
// One thread per pixel of the batch, i < batch * pixel_count.

FACE3D_HOST_DEVICE inline const int32_t* PixelTriangle(const InterpolateCudaParams& p,
                                                       int64_t i) {
  return p.triangles + 3 * static_cast<int64_t>(p.triangle_ids[i]);
}

FACE3D_HOST_DEVICE inline void InterpolateThread(const InterpolateCudaParams& p, int64_t i,
                                                 float* output) {
  const int64_t b = i / p.pixel_count;
  const int64_t c = p.channels;
  const float* attributes = p.attributes + b * p.vertex_count * c;
  const int32_t* t = PixelTriangle(p, i);
  InterpolatePixel(attributes + c * t[0], attributes + c * t[1], attributes + c * t[2],
                   p.barycentrics + 3 * i, p.channels, output + c * i);
}

// d_barycentrics of pixel i, and its terms scattered into d_attributes
// (zeroed before).
FACE3D_HOST_DEVICE inline void InterpolateGradientThread(const InterpolateCudaParams& p,
                                                         int64_t i, const float* d_output,
                                                         float* d_barycentrics,
                                                         float* d_attributes) {
  const int64_t b = i / p.pixel_count;
  const int64_t c = p.channels;
  const float* attributes = p.attributes + b * p.vertex_count * c;
  const int32_t* t = PixelTriangle(p, i);
  const float* d_out = d_output + c * i;
  InterpolatePixelBarycentricGrad(attributes + c * t[0], attributes + c * t[1],
                                  attributes + c * t[2], d_out, p.channels,
                                  d_barycentrics + 3 * i);
  const float* bary = p.barycentrics + 3 * i;
  if (IsBackgroundPixel(bary)) return;
  float* image_d_attributes = d_attributes + b * p.vertex_count * c;
  for (int corner = 0; corner < 3; ++corner) {
    float* d_a = image_d_attributes + c * t[corner];
    for (int64_t k = 0; k < c; ++k) ScatterAdd(d_a + k, bary[corner] * d_out[k]);
  }
}

// ------------------------------------------------------------ vertex normals
// Triangle threads: i < batch * triangle_count; vertex threads: v < batch *
// vertex_count (flat over the batch).

FACE3D_HOST_DEVICE inline void ScatterAdd3(float* target, const float* value) {
  ScatterAdd(target, value[0]);
  ScatterAdd(target + 1, value[1]);
  ScatterAdd(target + 2, value[2]);
}

// sums (zeroed before) += triangle i's face normal, at its three vertices.
FACE3D_HOST_DEVICE inline void SumFaceNormalsThread(const NormalsCudaParams& p, int64_t i,
                                                    float* sums) {
  const int64_t b = i / p.triangle_count, t = i % p.triangle_count;
  const int32_t* tri = p.triangles + 3 * t;
  const float* vertices = p.vertices + 3 * p.vertex_count * b;
  float face[3];
  FaceNormal(vertices + 3 * tri[0], vertices + 3 * tri[1], vertices + 3 * tri[2], face);
  float* mesh_sums = sums + 3 * p.vertex_count * b;
  for (int corner = 0; corner < 3; ++corner) ScatterAdd3(mesh_sums + 3 * tri[corner], face);
}

FACE3D_HOST_DEVICE inline void NormalizeThread(int64_t v, const float* sums, float* normals) {
  const float* s = sums + 3 * v;
  const float r = InverseNorm(s);
  for (int k = 0; k < 3; ++k) normals[3 * v + k] = s[k] * r;
}

FACE3D_HOST_DEVICE inline void NormalizeGradThread(int64_t v, const float* sums,
                                                   const float* d_normals, float* d_sums) {
  NormalizeGrad(sums + 3 * v, d_normals + 3 * v, d_sums + 3 * v);
}

// Triangle i's face-normal gradient (its vertices' d_sums, added in the CPU's
// order) scattered into d_vertices (zeroed before).
FACE3D_HOST_DEVICE inline void FaceGradThread(const NormalsCudaParams& p, int64_t i,
                                              const float* d_sums, float* d_vertices) {
  const int64_t b = i / p.triangle_count, t = i % p.triangle_count;
  const int32_t* tri = p.triangles + 3 * t;
  const int64_t offset = 3 * p.vertex_count * b;
  const float* vertices = p.vertices + offset;
  const float* mesh_d_sums = d_sums + offset;
  float d_face[3];
  for (int k = 0; k < 3; ++k) {
    d_face[k] = mesh_d_sums[3 * tri[0] + k] + mesh_d_sums[3 * tri[1] + k] +
                mesh_d_sums[3 * tri[2] + k];
  }
  float d_v[3][3];
  FaceNormalGrad(vertices + 3 * tri[0], vertices + 3 * tri[1], vertices + 3 * tri[2], d_face,
                 d_v[0], d_v[1], d_v[2]);
  float* mesh_d_vertices = d_vertices + offset;
  for (int corner = 0; corner < 3; ++corner) {
    ScatterAdd3(mesh_d_vertices + 3 * tri[corner], d_v[corner]);
  }
}

// TriangleNormals: one thread per (mesh, triangle), i < batch * triangle_count.
// normals [batch, triangle_count, 3] = triangle i's unit face normal (no sum:
// the forward pass writes its own row only).
FACE3D_HOST_DEVICE inline void TriangleNormalThread(const NormalsCudaParams& p, int64_t i,
                                                    float* normals) {
  const int64_t b = i / p.triangle_count, t = i % p.triangle_count;
  const int32_t* tri = p.triangles + 3 * t;
  const float* vertices = p.vertices + 3 * p.vertex_count * b;
  float face[3];
  FaceNormal(vertices + 3 * tri[0], vertices + 3 * tri[1], vertices + 3 * tri[2], face);
  const float r = InverseNorm(face);
  for (int k = 0; k < 3; ++k) normals[3 * i + k] = face[k] * r;
}

// Triangle i's gradient through its normalisation and cross product (the CPU
// core's TriangleNormalsGradient body), scattered into d_vertices (zeroed before).
FACE3D_HOST_DEVICE inline void TriangleNormalGradThread(const NormalsCudaParams& p, int64_t i,
                                                        const float* d_normals,
                                                        float* d_vertices) {
  const int64_t b = i / p.triangle_count, t = i % p.triangle_count;
  const int32_t* tri = p.triangles + 3 * t;
  const int64_t offset = 3 * p.vertex_count * b;
  const float* vertices = p.vertices + offset;
  const float* v0 = vertices + 3 * tri[0];
  const float* v1 = vertices + 3 * tri[1];
  const float* v2 = vertices + 3 * tri[2];
  float face[3], d_face[3];
  FaceNormal(v0, v1, v2, face);
  NormalizeGrad(face, d_normals + 3 * i, d_face);
  float d_v[3][3];
  FaceNormalGrad(v0, v1, v2, d_face, d_v[0], d_v[1], d_v[2]);
  float* mesh_d_vertices = d_vertices + offset;
  for (int corner = 0; corner < 3; ++corner) {
    ScatterAdd3(mesh_d_vertices + 3 * tri[corner], d_v[corner]);
  }
}

// ------------------------------------------------------------ SH shading
// Vertex threads: i < batch * vertex_count. The light gradient: one block of
// kLightThreads threads per mesh; thread t sums vertices t, t + kLightThreads,
// ... (LightPartialThread), then a tree over the block (LightTreeStep for
// half = kLightThreads / 2, ..., 1), entry by entry.

constexpr int kLightEntries = kShBands * 3;
constexpr int kLightThreads = 256;  // a power of two

FACE3D_HOST_DEVICE inline void ShadeThread(const ShadingCudaParams& p, int64_t i,
                                           float* colours) {
  const int64_t b = i / p.vertex_count;
  ShadeVertex(p.normals + 3 * i, p.albedo + 3 * i, p.coefficients + kLightEntries * b,
              p.band_scales, colours + 3 * i);
}

FACE3D_HOST_DEVICE inline void ShadeGradientThread(const ShadingCudaParams& p, int64_t i,
                                                   const float* d_colours, float* d_normals,
                                                   float* d_albedo) {
  const int64_t b = i / p.vertex_count;
  float basis[kShBands], d_irradiance[3];
  ShadeVertexGradient(p.normals + 3 * i, p.albedo + 3 * i, d_colours + 3 * i,
                      p.coefficients + kLightEntries * b, p.band_scales, d_normals + 3 * i,
                      d_albedo + 3 * i, basis, d_irradiance);
}

// Thread t's part of mesh b's d_coefficients, sums[kLightEntries].
FACE3D_HOST_DEVICE inline void LightPartialThread(const ShadingCudaParams& p, int64_t b, int t,
                                                  const float* d_colours, double* sums) {
  const float* coefficients = p.coefficients + kLightEntries * b;
  for (int e = 0; e < kLightEntries; ++e) sums[e] = 0.0;
  for (int64_t v = t; v < p.vertex_count; v += kLightThreads) {
    const int64_t i = p.vertex_count * b + v;
    float basis[kShBands], d_irradiance[3], d_n[3], d_a[3];
    ShadeVertexGradient(p.normals + 3 * i, p.albedo + 3 * i, d_colours + 3 * i, coefficients,
                        p.band_scales, d_n, d_a, basis, d_irradiance);
    for (int k = 0; k < kShBands; ++k) {
      for (int c = 0; c < 3; ++c) sums[3 * k + c] += basis[k] * d_irradiance[c];
    }
  }
}

FACE3D_HOST_DEVICE inline void LightTreeStep(double* partial, int t, int half) {
  if (t < half) partial[t] += partial[t + half];
}

// ------------------------------------------------------------ group norm

FACE3D_HOST_DEVICE inline int64_t GroupNormChunks(const GroupNormCudaParams& p) {
  return (p.pixel_count + kGroupNormChunk - 1) / kGroupNormChunk;
}

// The scratch, carved: doubles first (their alignment), then floats.
struct GroupNormScratch {
  double* sum_a;    // [batch, channels]
  double* sum_b;    // [batch, channels]
  float* part_a;    // [batch, chunks, channels]
  float* part_b;    // [batch, chunks, channels]
  float* coeff[3];  // [batch, channels] each: scale, shift (forward); k_dy, k_x, k_1
};

inline int64_t GroupNormScratchBytes(const GroupNormCudaParams& p) {
  const int64_t per_image = p.batch * p.channels;
  return 2 * per_image * static_cast<int64_t>(sizeof(double)) +
         (2 * per_image * GroupNormChunks(p) + 3 * per_image) *
             static_cast<int64_t>(sizeof(float));
}

inline GroupNormScratch CarveGroupNormScratch(const GroupNormCudaParams& p, void* memory) {
  const int64_t per_image = p.batch * p.channels;
  const int64_t parts = per_image * GroupNormChunks(p);
  GroupNormScratch s;
  s.sum_a = static_cast<double*>(memory);
  s.sum_b = s.sum_a + per_image;
  s.part_a = reinterpret_cast<float*>(s.sum_b + per_image);
  s.part_b = s.part_a + parts;
  s.coeff[0] = s.part_b + parts;
  s.coeff[1] = s.coeff[0] + per_image;
  s.coeff[2] = s.coeff[1] + per_image;
  return s;
}

// Thread i < batch * chunks * channels, channel fastest (so neighbouring
// threads read neighbouring channels): the chunk's float sums in pixel order.
// Forward (dy null): x and x^2; backward: dy xhat and dy.
FACE3D_HOST_DEVICE inline void ChunkSumsThread(const GroupNormCudaParams& p, int64_t chunks,
                                               int64_t i, const float* x, const float* dy,
                                               const float* mean, const float* rstd,
                                               float* part_a, float* part_b) {
  const int64_t channels = p.channels;
  const int64_t c = i % channels, rest = i / channels;
  const int64_t chunk = rest % chunks, b = rest / chunks;
  const int64_t begin = chunk * kGroupNormChunk;
  const int64_t end =
      begin + kGroupNormChunk < p.pixel_count ? begin + kGroupNormChunk : p.pixel_count;
  const float* xs = x + (p.pixel_count * b) * channels + c;
  float a = 0.0f, s = 0.0f;
  if (dy == nullptr) {
    for (int64_t pixel = begin; pixel < end; ++pixel) ForwardTerms(xs[channels * pixel], &a, &s);
  } else {
    const int64_t g = b * p.groups + c / (channels / p.groups);
    float xhat_scale, xhat_shift;
    XhatAffine(mean[g], rstd[g], &xhat_scale, &xhat_shift);
    const float* dys = dy + (p.pixel_count * b) * channels + c;
    for (int64_t pixel = begin; pixel < end; ++pixel) {
      BackwardTerms(xs[channels * pixel], dys[channels * pixel], xhat_scale, xhat_shift, &a, &s);
    }
  }
  part_a[i] = a;
  part_b[i] = s;
}

// Thread i < batch * channels: the chunks' sums in double, in chunk order.
FACE3D_HOST_DEVICE inline void ChannelSumsThread(const GroupNormCudaParams& p, int64_t chunks,
                                                 int64_t i, const float* part_a,
                                                 const float* part_b, double* sum_a,
                                                 double* sum_b) {
  const int64_t channels = p.channels;
  const int64_t c = i % channels, b = i / channels;
  double a = 0.0, s = 0.0;
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t k = (b * chunks + chunk) * channels + c;
    a += part_a[k];
    s += part_b[k];
  }
  sum_a[i] = a;
  sum_b[i] = s;
}

// Thread i < batch * groups: mean, rstd and the group's channels' affine maps.
FACE3D_HOST_DEVICE inline void StatisticsThread(const GroupNormCudaParams& p, int64_t i,
                                                const double* sum_a, const double* sum_b,
                                                const float* gamma, const float* beta,
                                                float* mean, float* rstd, float* scale,
                                                float* shift) {
  const int64_t b = i / p.groups, g = i % p.groups;
  const int per_group = p.channels / p.groups;
  const int64_t first = b * p.channels + g * per_group;
  double sum = 0.0, sum_squares = 0.0;
  for (int c = 0; c < per_group; ++c) {
    sum += sum_a[first + c];
    sum_squares += sum_b[first + c];
  }
  const double count = static_cast<double>(p.pixel_count) * per_group;
  GroupStatistics(sum, sum_squares, count, p.epsilon, mean + i, rstd + i);
  for (int c = 0; c < per_group; ++c) {
    const int channel = static_cast<int>(g) * per_group + c;
    ForwardAffine(mean[i], rstd[i], gamma[channel], beta[channel], scale + first + c,
                  shift + first + c);
  }
}

// Thread i < batch * groups when there is no pixel (as the CPU op sets them).
FACE3D_HOST_DEVICE inline void EmptyStatisticsThread(int64_t i, float epsilon, float* mean,
                                                     float* rstd) {
  mean[i] = 0.0f;
  rstd[i] = 1.0f / sqrtf(epsilon);
}

// Thread i < batch * pixel_count * channels: y = x scale + shift.
FACE3D_HOST_DEVICE inline void ApplyThread(const GroupNormCudaParams& p, int64_t i, const float* x,
                                           const float* scale, const float* shift, float* y) {
  const int64_t channels = p.channels;
  const int64_t k = (i / (p.pixel_count * channels)) * channels + i % channels;
  y[i] = x[i] * scale[k] + shift[k];
}

// Thread i < batch * groups: the input gradient's coefficients of the group's
// channels, from this image's d_gamma and d_beta parts.
FACE3D_HOST_DEVICE inline void CoefficientsThread(const GroupNormCudaParams& p, int64_t i,
                                                  const float* gamma, const float* mean,
                                                  const float* rstd, const double* d_gamma_part,
                                                  const double* d_beta_part, float* k_dy,
                                                  float* k_x, float* k_1) {
  const int64_t b = i / p.groups, g = i % p.groups;
  const int per_group = p.channels / p.groups;
  const int64_t first = b * p.channels + g * per_group;
  const float* group_gamma = gamma + g * per_group;
  double s1 = 0.0, s2 = 0.0;
  for (int c = 0; c < per_group; ++c) {
    s1 += group_gamma[c] * d_beta_part[first + c];
    s2 += group_gamma[c] * d_gamma_part[first + c];
  }
  const double n = static_cast<double>(p.pixel_count) * per_group;
  for (int c = 0; c < per_group; ++c) {
    InputGradCoefficients(group_gamma[c], mean[i], rstd[i], s1, s2, n, k_dy + first + c,
                          k_x + first + c, k_1 + first + c);
  }
}

// Thread i < batch * pixel_count * channels: dx.
FACE3D_HOST_DEVICE inline void InputGradThread(const GroupNormCudaParams& p, int64_t i,
                                               const float* x, const float* dy,
                                               const float* k_dy, const float* k_x,
                                               const float* k_1, float* dx) {
  const int64_t channels = p.channels;
  const int64_t k = (i / (p.pixel_count * channels)) * channels + i % channels;
  dx[i] = InputGrad(dy[i], x[i], k_dy[k], k_x[k], k_1[k]);
}

// Thread c < channels: d_gamma and d_beta summed over the batch in double.
FACE3D_HOST_DEVICE inline void BatchSumThread(const GroupNormCudaParams& p, int64_t c,
                                              const double* d_gamma_part,
                                              const double* d_beta_part, float* d_gamma,
                                              float* d_beta) {
  double g = 0.0, s = 0.0;
  for (int64_t b = 0; b < p.batch; ++b) {
    g += d_gamma_part[b * p.channels + c];
    s += d_beta_part[b * p.channels + c];
  }
  d_gamma[c] = static_cast<float>(g);
  d_beta[c] = static_cast<float>(s);
}

// ------------------------------------------------------------ photometric loss
// Chunk threads: i < batch * chunks (chunks = PhotometricChunks(pixel_count));
// image threads: b < batch; pixel threads: i < batch * pixel_count.

// Image b's part of the batch, as the CPU core takes it.
FACE3D_HOST_DEVICE inline PhotometricParams PhotometricImage(const PhotometricCudaParams& p,
                                                             int64_t b) {
  const int64_t values = p.pixel_count * p.channels;
  return {p.images + values * b, p.renders + values * b, p.mask + p.pixel_count * b,
          p.pixel_count, p.channels, p.epsilon};
}

// The S and T of chunk i % chunks of image i / chunks into sums [2 i], [2 i + 1]
// (sums [batch, chunks, 2]).
FACE3D_HOST_DEVICE inline void PhotometricChunkThread(const PhotometricCudaParams& p, int64_t i,
                                                      double* sums) {
  const int64_t chunks = PhotometricChunks(p.pixel_count);
  ChunkSums(PhotometricImage(p, i / chunks), i % chunks, sums + 2 * i, sums + 2 * i + 1);
}

FACE3D_HOST_DEVICE inline void PhotometricImageThread(const PhotometricCudaParams& p, int64_t b,
                                                      const double* sums, float* per_image,
                                                      float* mask_total) {
  const int64_t chunks = PhotometricChunks(p.pixel_count);
  ImageLossFromChunks(p.pixel_count, sums + 2 * chunks * b, per_image + b, mask_total + b);
}

FACE3D_HOST_DEVICE inline void PhotometricGradientThread(const PhotometricCudaParams& p,
                                                         int64_t i, const float* per_image,
                                                         const float* mask_total,
                                                         const float* d_per_image,
                                                         float* d_renders, float* d_mask) {
  const int64_t b = i / p.pixel_count;
  float scale, offset;
  ImageGradientFactors(per_image[b], mask_total[b], d_per_image[b], &scale, &offset);
  const int64_t c = p.channels;
  PixelGradient(p.images + c * i, p.renders + c * i, p.mask[i], c, p.epsilon, scale, offset,
                d_renders + c * i, d_mask + i);
}

}  // namespace fused_threads
}  // namespace face3d

#endif  // FACE3D_RENDERER_KERNELS_FUSED_THREADS_H_
