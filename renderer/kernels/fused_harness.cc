// Standalone harness (no TensorFlow) for the fused ops: runs each CPU core
// (interpolation, vertex and triangle normals, SH shading, group normalisation, the
// photometric loss; forward and gradient) and its CUDA twin on the same inputs and prints their
// agreement and milliseconds per call.
//
//   build: python renderer/kernels/build.py --harness (nvcc where present,
//     else g++ with FACE3D_HARNESS_CPU_ONLY), or by hand:
//     nvcc -std=c++17 -O3 -fmad=false -Xcompiler -ffp-contract=off fused_harness.cc
//       rasterize_core.cc interpolate_core.cc normals_core.cc shading_core.cc
//       group_norm_core.cc photometric_core.cc rasterize_cuda.cu interpolate_cuda.cu
//       normals_cuda.cu shading_cuda.cu group_norm_cuda.cu photometric_cuda.cu
//       -o fused_harness
//   run:   ./fused_harness [--mesh FILE] [--repeats N]
//
// Inputs: random ones (random triangle ids and barycentrics with background
// pixels, random meshes, random activations with an offset mean), a jittered
// 120 x 120 grid of 28,800 triangles rasterized at 224 x 224 by the CPU
// rasterizer core, and with --mesh the face-sized benchmark mesh written by
// bench/export_harness_mesh.py (the file rasterize_harness reads). The
// interpolation runs on the rasterized ids and barycentrics; normals and
// shading on the mesh's vertices (clip x, y, z); group norm on
// encoder-shaped activations; the photometric loss on random photos, renders
// and masks (an empty one, soft ones, a chunk remainder, one and 3 channels).
//
// Agreement, per output: max |cuda - cpu| and that over max |cpu| (printed as
// "rel"), and whether the two are bit-identical; an output agrees when rel
// <= 1e-5. It also checks that the device index scan
// (FindFirstOutOfRangeCuda, which the GPU ops use to refuse bad indices)
// finds the first bad entry. Exits 1 on any disagreement. Without a CUDA
// device (or built CPU only) it times the CPU cores alone and says so.
// Times: the CPU's are CPU time of this thread (one thread, the whole batch
// image by image, as the TensorFlow op runs each unit of work), the median of
// --repeats; the GPU's are CUDA-event times of the launches, inputs already
// on the device, the median of --repeats after one warm-up call.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <time.h>

#include "fused_threads.h"
#include "group_norm_core.h"
#include "interpolate_core.h"
#include "normals_core.h"
#include "photometric_core.h"
#include "rasterize_core.h"
#include "shading_core.h"
#if !defined(FACE3D_HARNESS_CPU_ONLY)
#include <cuda_runtime.h>

#include "rasterize_cuda.h"
#endif

namespace face3d {
namespace {

using Floats = std::vector<float>;
using Ints = std::vector<int32_t>;

int g_repeats = 10;
bool g_cuda = false;
bool g_all_ok = true;

// CPU time of this thread: steadier than wall time on a shared machine.
double Seconds() {
  timespec now;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return now.tv_sec + 1e-9 * now.tv_nsec;
}

// Median milliseconds of `repeats` runs of `work` (CPU time).
double CpuMs(const std::function<void()>& work) {
  std::vector<double> times;
  for (int r = 0; r < g_repeats; ++r) {
    const double start = Seconds();
    work();
    times.push_back(1e3 * (Seconds() - start));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

Floats Uniform(int64_t count, float low, float high, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(low, high);
  Floats v(count);
  for (float& x : v) x = d(rng);
  return v;
}

Floats Normal(int64_t count, float mean, float sd, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(mean, sd);
  Floats v(count);
  for (float& x : v) x = d(rng);
  return v;
}

// A mesh: vertices [batch, vertex_count, 3] and, rasterized (when it has an
// image size), triangle ids and barycentrics [batch, height, width(, 3)].
struct Mesh {
  std::string name;
  int64_t batch = 0, vertex_count = 0;
  int width = 0, height = 0;
  Floats clip;       // [batch, vertex_count, 4]
  Ints triangles;    // [triangle_count, 3]
  Floats vertices;   // [batch, vertex_count, 3]: clip x, y, z
  Ints ids;          // [batch, height, width]
  Floats barycentrics;
  int64_t triangle_count() const { return static_cast<int64_t>(triangles.size() / 3); }
  int64_t pixels() const { return static_cast<int64_t>(height) * width; }
};

// Vertices from clip x, y, z; ids and barycentrics from the CPU rasterizer.
void Finish(Mesh* m) {
  const int64_t v = m->vertex_count, pixels = m->pixels();
  m->vertices.resize(3 * m->batch * v);
  for (int64_t i = 0; i < m->batch * v; ++i) {
    for (int k = 0; k < 3; ++k) m->vertices[3 * i + k] = m->clip[4 * i + k];
  }
  m->ids.assign(m->batch * pixels, 0);
  m->barycentrics.assign(3 * m->batch * pixels, 0.0f);
  Floats mask(pixels), depth(pixels);
  std::vector<ProjectedVertex> projected(v);
  for (int64_t b = 0; b < m->batch; ++b) {
    const float* clip = m->clip.data() + 4 * v * b;
    ProjectVertices(clip, v, m->width, m->height, projected.data());
    RasterizeRows(clip, projected.data(), m->triangles.data(), m->triangle_count(), m->width,
                  m->height, 0, m->height, false, m->ids.data() + pixels * b, mask.data(),
                  m->barycentrics.data() + 3 * pixels * b, depth.data());
  }
}

// A jittered grid over the NDC square with a bumpy depth, orthographic.
Mesh Grid(int cells, int batch, int size, uint32_t seed) {
  Mesh m;
  m.name = "grid" + std::to_string(cells);
  m.batch = batch;
  m.width = m.height = size;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> jitter(-0.3f / cells, 0.3f / cells), phase(0.0f, 6.0f);
  const int side = cells + 1;
  m.vertex_count = static_cast<int64_t>(side) * side;
  for (int b = 0; b < batch; ++b) {
    const float p = phase(rng);
    for (int r = 0; r <= cells; ++r) {
      for (int c = 0; c <= cells; ++c) {
        const float x = -0.95f + 1.9f * c / cells + jitter(rng);
        const float y = -0.95f + 1.9f * r / cells + jitter(rng);
        const float z = 0.3f * std::sin(4.0f * x + p) * std::cos(3.0f * y);
        m.clip.insert(m.clip.end(), {x, y, z, 1.0f});
      }
    }
  }
  for (int r = 0; r < cells; ++r) {
    for (int c = 0; c < cells; ++c) {
      const int a = r * side + c, b = a + 1, d = a + side, e = d + 1;
      m.triangles.insert(m.triangles.end(), {a, b, e, a, e, d});
    }
  }
  Finish(&m);
  return m;
}

// The file of bench/export_harness_mesh.py (see rasterize_harness.cc).
bool ReadMesh(const char* path, Mesh* m) {
  FILE* f = std::fopen(path, "rb");
  if (f == nullptr) return false;
  char magic[8];
  int64_t header[3];
  int32_t size[2];
  bool ok = std::fread(magic, 1, 8, f) == 8 && std::memcmp(magic, "F3DMESH1", 8) == 0 &&
            std::fread(header, sizeof(int64_t), 3, f) == 3 &&
            std::fread(size, sizeof(int32_t), 2, f) == 2 && header[0] > 0 && header[1] > 0 &&
            header[2] > 0 && size[0] > 0 && size[1] > 0;
  if (ok) {
    m->name = path;
    m->batch = header[0];
    m->vertex_count = header[1];
    m->height = size[0];
    m->width = size[1];
    m->clip.resize(4 * header[0] * header[1]);
    m->triangles.resize(3 * header[2]);
    ok = std::fread(m->clip.data(), sizeof(float), m->clip.size(), f) == m->clip.size() &&
         std::fread(m->triangles.data(), sizeof(int32_t), m->triangles.size(), f) ==
             m->triangles.size();
  }
  std::fclose(f);
  ok = ok && FindInvalidTriangle(m->triangles.data(), m->triangle_count(), m->vertex_count) < 0;
  if (ok) Finish(m);
  return ok;
}

// Random triangles, ids and barycentrics (a third of the pixels background:
// id 0, barycentrics 0 0 0), for the interpolation alone.
Mesh RandomPixels(int batch, int size, int vertex_count, int triangle_count, uint32_t seed) {
  Mesh m;
  m.name = "random pixels";
  m.batch = batch;
  m.width = m.height = size;
  m.vertex_count = vertex_count;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> vertex(0, vertex_count - 1), tri(0, triangle_count - 1);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  for (int t = 0; t < 3 * triangle_count; ++t) m.triangles.push_back(vertex(rng));
  const int64_t pixels = static_cast<int64_t>(batch) * size * size;
  for (int64_t p = 0; p < pixels; ++p) {
    if (unit(rng) < 1.0f / 3.0f) {
      m.ids.push_back(0);
      m.barycentrics.insert(m.barycentrics.end(), {0.0f, 0.0f, 0.0f});
      continue;
    }
    m.ids.push_back(tri(rng));
    const float a = unit(rng), b = unit(rng), c = unit(rng), s = a + b + c;
    m.barycentrics.insert(m.barycentrics.end(), {a / s, b / s, c / s});
  }
  return m;
}

// The basis constants of renderer/shading.py (real SH times the Lambertian
// band factors), here only as plausible values.
Floats BandScales() {
  const double pi = 3.14159265358979323846;
  const double y00 = 0.5 / std::sqrt(pi), y1 = std::sqrt(3.0 / (4.0 * pi));
  const double y2m = 0.5 * std::sqrt(15.0 / pi), y20 = 0.25 * std::sqrt(5.0 / pi);
  const double y22 = 0.25 * std::sqrt(15.0 / pi);
  const double a0 = pi, a1 = 2.0 * pi / 3.0, a2 = pi / 4.0;
  const double s[9] = {a0 * y00, a1 * y1, a1 * y1, a1 * y1, a2 * y2m,
                       a2 * y2m, a2 * y20, a2 * y2m, a2 * y22};
  return Floats(s, s + 9);
}

// Prints the agreement of `gpu` (the CUDA twin's output, or the emulated
// twin's) with `cpu`; returns whether rel <= 1e-5.
bool Agree(const char* what, const Floats& cpu, const Floats& gpu) {
  double largest = 0.0, error = 0.0;
  bool identical = cpu.size() == gpu.size();
  for (size_t i = 0; i < cpu.size() && i < gpu.size(); ++i) {
    largest = std::max(largest, static_cast<double>(std::fabs(cpu[i])));
    const double e = std::fabs(static_cast<double>(cpu[i]) - gpu[i]);
    error = std::isnan(e) ? INFINITY : std::max(error, e);
    identical &= std::memcmp(&cpu[i], &gpu[i], sizeof(float)) == 0;
  }
  const double rel = largest > 0.0 ? error / largest : error;
  const bool ok = cpu.size() == gpu.size() && rel <= 1e-5;
  std::printf("    %-24s %s: max |diff| %.2e, rel %.2e%s\n", what, ok ? "OK" : "FAILED", error,
              rel, identical ? " (bit-identical)" : "");
  g_all_ok &= ok;
  return ok;
}

// The CUDA launchers run serially on the host: the same thread functions
// (fused_threads.h), in thread-index order, with the launchers' steps
// (zeroing, scratch, the light gradient's block tree). Checks the twins'
// decomposition where there is no GPU; what it cannot check is the device
// itself (atomics, shared memory, the compiler's device code).
namespace emulated {

namespace ft = fused_threads;

void Interpolate(const InterpolateCudaParams& p, float* output) {
  if (p.channels == 0) return;
  for (int64_t i = 0; i < p.batch * p.pixel_count; ++i) ft::InterpolateThread(p, i, output);
}

void InterpolateGradient(const InterpolateCudaParams& p, const float* d_output,
                         float* d_barycentrics, float* d_attributes) {
  std::fill(d_attributes, d_attributes + p.batch * p.vertex_count * p.channels, 0.0f);
  for (int64_t i = 0; i < p.batch * p.pixel_count; ++i) {
    ft::InterpolateGradientThread(p, i, d_output, d_barycentrics, d_attributes);
  }
}

void SumFaceNormals(const NormalsCudaParams& p, float* sums) {
  std::fill(sums, sums + 3 * p.batch * p.vertex_count, 0.0f);
  for (int64_t i = 0; i < p.batch * p.triangle_count; ++i) ft::SumFaceNormalsThread(p, i, sums);
}

void VertexNormals(const NormalsCudaParams& p, float* sums, float* normals) {
  SumFaceNormals(p, sums);
  for (int64_t v = 0; v < p.batch * p.vertex_count; ++v) ft::NormalizeThread(v, sums, normals);
}

void VertexNormalsGradient(const NormalsCudaParams& p, const float* d_normals, float* scratch,
                           float* d_vertices) {
  const int64_t vertices = p.batch * p.vertex_count;
  float* sums = scratch;
  float* d_sums = scratch + 3 * vertices;
  SumFaceNormals(p, sums);
  for (int64_t v = 0; v < vertices; ++v) ft::NormalizeGradThread(v, sums, d_normals, d_sums);
  std::fill(d_vertices, d_vertices + 3 * vertices, 0.0f);
  for (int64_t i = 0; i < p.batch * p.triangle_count; ++i) {
    ft::FaceGradThread(p, i, d_sums, d_vertices);
  }
}

void TriangleNormals(const NormalsCudaParams& p, float* normals) {
  for (int64_t i = 0; i < p.batch * p.triangle_count; ++i) ft::TriangleNormalThread(p, i, normals);
}

void TriangleNormalsGradient(const NormalsCudaParams& p, const float* d_normals,
                             float* d_vertices) {
  std::fill(d_vertices, d_vertices + 3 * p.batch * p.vertex_count, 0.0f);
  for (int64_t i = 0; i < p.batch * p.triangle_count; ++i) {
    ft::TriangleNormalGradThread(p, i, d_normals, d_vertices);
  }
}

void Shade(const ShadingCudaParams& p, float* colours) {
  for (int64_t i = 0; i < p.batch * p.vertex_count; ++i) ft::ShadeThread(p, i, colours);
}

void ShadeGradient(const ShadingCudaParams& p, const float* d_colours, float* d_normals,
                   float* d_albedo, float* d_coefficients) {
  for (int64_t i = 0; i < p.batch * p.vertex_count; ++i) {
    ft::ShadeGradientThread(p, i, d_colours, d_normals, d_albedo);
  }
  std::vector<double> sums(ft::kLightThreads * ft::kLightEntries);
  std::vector<double> partial(ft::kLightThreads);
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int t = 0; t < ft::kLightThreads; ++t) {
      ft::LightPartialThread(p, b, t, d_colours, sums.data() + ft::kLightEntries * t);
    }
    for (int e = 0; e < ft::kLightEntries; ++e) {
      for (int t = 0; t < ft::kLightThreads; ++t) partial[t] = sums[ft::kLightEntries * t + e];
      for (int half = ft::kLightThreads / 2; half > 0; half /= 2) {
        for (int t = 0; t < ft::kLightThreads; ++t) ft::LightTreeStep(partial.data(), t, half);
      }
      d_coefficients[ft::kLightEntries * b + e] = static_cast<float>(partial[0]);
    }
  }
}

void GroupNormForward(const GroupNormCudaParams& p, const float* x, const float* gamma,
                      const float* beta, float* y, float* mean, float* rstd, void* scratch) {
  const int64_t statistics = p.batch * p.groups;
  if (p.pixel_count == 0) {
    for (int64_t i = 0; i < statistics; ++i) ft::EmptyStatisticsThread(i, p.epsilon, mean, rstd);
    return;
  }
  const ft::GroupNormScratch w = ft::CarveGroupNormScratch(p, scratch);
  const int64_t chunks = ft::GroupNormChunks(p), per_image = p.batch * p.channels;
  for (int64_t i = 0; i < per_image * chunks; ++i) {
    ft::ChunkSumsThread(p, chunks, i, x, nullptr, nullptr, nullptr, w.part_a, w.part_b);
  }
  for (int64_t i = 0; i < per_image; ++i) {
    ft::ChannelSumsThread(p, chunks, i, w.part_a, w.part_b, w.sum_a, w.sum_b);
  }
  for (int64_t i = 0; i < statistics; ++i) {
    ft::StatisticsThread(p, i, w.sum_a, w.sum_b, gamma, beta, mean, rstd, w.coeff[0], w.coeff[1]);
  }
  for (int64_t i = 0; i < per_image * p.pixel_count; ++i) {
    ft::ApplyThread(p, i, x, w.coeff[0], w.coeff[1], y);
  }
}

void GroupNormBackward(const GroupNormCudaParams& p, const float* x, const float* gamma,
                       const float* mean, const float* rstd, const float* dy, float* dx,
                       float* d_gamma, float* d_beta, void* scratch) {
  if (p.pixel_count == 0 || p.batch == 0) {
    std::fill(d_gamma, d_gamma + p.channels, 0.0f);
    std::fill(d_beta, d_beta + p.channels, 0.0f);
    return;
  }
  const ft::GroupNormScratch w = ft::CarveGroupNormScratch(p, scratch);
  const int64_t chunks = ft::GroupNormChunks(p), per_image = p.batch * p.channels;
  for (int64_t i = 0; i < per_image * chunks; ++i) {
    ft::ChunkSumsThread(p, chunks, i, x, dy, mean, rstd, w.part_a, w.part_b);
  }
  for (int64_t i = 0; i < per_image; ++i) {
    ft::ChannelSumsThread(p, chunks, i, w.part_a, w.part_b, w.sum_a, w.sum_b);
  }
  for (int64_t i = 0; i < p.batch * p.groups; ++i) {
    ft::CoefficientsThread(p, i, gamma, mean, rstd, w.sum_a, w.sum_b, w.coeff[0], w.coeff[1],
                           w.coeff[2]);
  }
  for (int64_t i = 0; i < per_image * p.pixel_count; ++i) {
    ft::InputGradThread(p, i, x, dy, w.coeff[0], w.coeff[1], w.coeff[2], dx);
  }
  for (int64_t c = 0; c < p.channels; ++c) {
    ft::BatchSumThread(p, c, w.sum_a, w.sum_b, d_gamma, d_beta);
  }
}

// Scratch for GroupNorm: 8-byte aligned (doubles come first).
std::vector<double> GroupNormScratch(const GroupNormCudaParams& p) {
  return std::vector<double>((ft::GroupNormScratchBytes(p) + 7) / 8 + 1);
}

void PhotometricLoss(const PhotometricCudaParams& p, float* per_image, float* mask_total) {
  std::vector<double> sums(2 * p.batch * PhotometricChunks(p.pixel_count));
  for (int64_t i = 0; i < p.batch * PhotometricChunks(p.pixel_count); ++i) {
    ft::PhotometricChunkThread(p, i, sums.data());
  }
  for (int64_t b = 0; b < p.batch; ++b) {
    ft::PhotometricImageThread(p, b, sums.data(), per_image, mask_total);
  }
}

void PhotometricGradient(const PhotometricCudaParams& p, const float* per_image,
                         const float* mask_total, const float* d_per_image, float* d_renders,
                         float* d_mask) {
  for (int64_t i = 0; i < p.batch * p.pixel_count; ++i) {
    ft::PhotometricGradientThread(p, i, per_image, mask_total, d_per_image, d_renders, d_mask);
  }
}

}  // namespace emulated

void PrintTimes(const char* what, double cpu_ms, double gpu_ms) {
  if (g_cuda) {
    std::printf("  %s: cpu %.3f ms, cuda %.3f ms per call (%.1fx)\n", what, cpu_ms, gpu_ms,
                gpu_ms > 0.0 ? cpu_ms / gpu_ms : 0.0);
  } else {
    std::printf("  %s: cpu %.3f ms per call\n", what, cpu_ms);
  }
}

#if !defined(FACE3D_HARNESS_CPU_ONLY)
#define CUDA_OK(call)                                                              \
  do {                                                                             \
    const cudaError_t error = (call);                                              \
    if (error != cudaSuccess) {                                                    \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(error), __FILE__, \
                  __LINE__);                                                       \
      std::exit(2);                                                                \
    }                                                                              \
  } while (0)

// A device copy of a host vector, freed with the object.
template <typename T>
struct Device {
  T* data = nullptr;
  int64_t count = 0;
  explicit Device(int64_t n) : count(n) {
    CUDA_OK(cudaMalloc(&data, std::max<int64_t>(1, n) * sizeof(T)));
  }
  explicit Device(const std::vector<T>& host) : Device(static_cast<int64_t>(host.size())) {
    CUDA_OK(cudaMemcpy(data, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  ~Device() { cudaFree(data); }
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  std::vector<T> Download() const {
    std::vector<T> host(count);
    CUDA_OK(cudaMemcpy(host.data(), data, count * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }
};

// Median CUDA-event milliseconds of `launch` (one warm-up call first).
double GpuMs(const std::function<const char*()>& launch) {
  cudaEvent_t begin, end;
  CUDA_OK(cudaEventCreate(&begin));
  CUDA_OK(cudaEventCreate(&end));
  std::vector<float> times;
  for (int r = 0; r <= g_repeats; ++r) {
    CUDA_OK(cudaEventRecord(begin));
    const char* error = launch();
    if (error != nullptr) {
      std::printf("CUDA error: %s\n", error);
      std::exit(2);
    }
    CUDA_OK(cudaEventRecord(end));
    CUDA_OK(cudaEventSynchronize(end));
    float ms = 0.0f;
    CUDA_OK(cudaEventElapsedTime(&ms, begin, end));
    if (r > 0) times.push_back(ms);
  }
  CUDA_OK(cudaEventDestroy(begin));
  CUDA_OK(cudaEventDestroy(end));
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}
#endif

void RunInterpolate(const Mesh& m, int channels) {
  std::printf("interpolate, %s: batch %lld, %dx%d, %lld vertices, %d channels\n", m.name.c_str(),
              static_cast<long long>(m.batch), m.height, m.width,
              static_cast<long long>(m.vertex_count), channels);
  const int64_t pixels = m.pixels(), v = m.vertex_count;
  const Floats attributes = Normal(m.batch * v * channels, 0.5f, 1.0f, 11);
  const Floats d_output = Normal(m.batch * pixels * channels, 0.0f, 1.0f, 12);
  auto image = [&](int64_t b) {
    return InterpolateParams{attributes.data() + b * v * channels, m.triangles.data(),
                             m.ids.data() + b * pixels, m.barycentrics.data() + 3 * b * pixels,
                             v, pixels, channels};
  };
  Floats output(m.batch * pixels * channels), d_attributes(m.batch * v * channels),
      d_barycentrics(3 * m.batch * pixels);
  const double cpu_forward = CpuMs([&] {
    for (int64_t b = 0; b < m.batch; ++b) {
      InterpolatePixels(image(b), 0, pixels, output.data() + b * pixels * channels);
    }
  });
  Floats scratch(InterpolateGradientScratchFloats(image(0)));
  const double cpu_gradient = CpuMs([&] {
    for (int64_t b = 0; b < m.batch; ++b) {
      InterpolateGradient(image(b), d_output.data() + b * pixels * channels,
                          d_barycentrics.data() + 3 * b * pixels,
                          d_attributes.data() + b * v * channels, scratch.data());
    }
  });
  {
    const InterpolateCudaParams p{attributes.data(), m.triangles.data(), m.ids.data(),
                                  m.barycentrics.data(), m.batch, v, pixels, channels};
    Floats e_output(output.size()), e_d_attr(d_attributes.size()), e_d_bary(d_barycentrics.size());
    emulated::Interpolate(p, e_output.data());
    emulated::InterpolateGradient(p, d_output.data(), e_d_bary.data(), e_d_attr.data());
    Agree("output, twin on host", output, e_output);
    Agree("d_barycentrics, on host", d_barycentrics, e_d_bary);
    Agree("d_attributes, on host", d_attributes, e_d_attr);
  }
  double gpu_forward = 0.0, gpu_gradient = 0.0;
#if !defined(FACE3D_HARNESS_CPU_ONLY)
  if (g_cuda) {
    Device<float> d_attr_in(attributes), d_bary_in(m.barycentrics), d_dout(d_output);
    Device<int32_t> d_tris(m.triangles), d_ids(m.ids);
    Device<float> g_output(output.size()), g_d_attr(d_attributes.size()),
        g_d_bary(d_barycentrics.size());
    InterpolateCudaParams p{d_attr_in.data, d_tris.data, d_ids.data, d_bary_in.data,
                            m.batch, v, pixels, channels};
    gpu_forward = GpuMs([&] { return InterpolateCuda(p, g_output.data, nullptr); });
    gpu_gradient = GpuMs([&] {
      return InterpolateGradientCuda(p, d_dout.data, g_d_bary.data, g_d_attr.data, nullptr);
    });
    PrintTimes("forward", cpu_forward, gpu_forward);
    PrintTimes("gradient", cpu_gradient, gpu_gradient);
    Agree("output, cuda", output, g_output.Download());
    Agree("d_barycentrics, cuda", d_barycentrics, g_d_bary.Download());
    Agree("d_attributes, cuda", d_attributes, g_d_attr.Download());
    return;
  }
#endif
  PrintTimes("forward", cpu_forward, gpu_forward);
  PrintTimes("gradient", cpu_gradient, gpu_gradient);
}

// Normals, then shading of those normals (both on the mesh's vertices).
void RunNormalsAndShading(const Mesh& m) {
  const int64_t v = m.vertex_count, floats = 3 * v;
  std::printf("normals and shading, %s: batch %lld, %lld vertices, %lld triangles\n",
              m.name.c_str(), static_cast<long long>(m.batch), static_cast<long long>(v),
              static_cast<long long>(m.triangle_count()));
  const Floats d_normals = Normal(m.batch * floats, 0.0f, 1.0f, 21);
  auto mesh = [&](int64_t b) {
    return NormalsParams{m.vertices.data() + floats * b, m.triangles.data(), v,
                         m.triangle_count()};
  };
  // The CPU cores' scratch, one mesh's worth (the gradient's is the larger).
  Floats normals(m.batch * floats), sums(m.batch * floats),
      scratch(kVertexNormalsGradientScratchPerVertex * v), d_vertices(m.batch * floats);
  const double cpu_normals = CpuMs([&] {
    for (int64_t b = 0; b < m.batch; ++b) {
      ComputeVertexNormals(mesh(b), scratch.data(), normals.data() + floats * b,
                           sums.data() + floats * b);
    }
  });
  const double cpu_normals_grad = CpuMs([&] {
    for (int64_t b = 0; b < m.batch; ++b) {
      VertexNormalsGradient(mesh(b), sums.data() + floats * b, d_normals.data() + floats * b,
                            scratch.data(), d_vertices.data() + floats * b);
    }
  });
  // Shading of the CPU's normals (both cores get the same input).
  const Floats albedo = Uniform(m.batch * floats, 0.0f, 1.0f, 22);
  Floats light = Normal(m.batch * 27, 0.0f, 0.3f, 23);
  for (int64_t b = 0; b < m.batch; ++b) {
    for (int c = 0; c < 3; ++c) light[27 * b + c] += 0.8f;
  }
  const Floats scales = BandScales();
  const Floats d_colours = Normal(m.batch * floats, 0.0f, 1.0f, 24);
  auto shading = [&](int64_t b) {
    return ShadingParams{normals.data() + floats * b, albedo.data() + floats * b,
                         light.data() + 27 * b, scales.data(), v};
  };
  Floats colours(m.batch * floats), d_n(m.batch * floats), d_albedo(m.batch * floats),
      d_light(m.batch * 27);
  const double cpu_shade = CpuMs([&] {
    for (int64_t b = 0; b < m.batch; ++b) ShadeVertices(shading(b), colours.data() + floats * b);
  });
  const double cpu_shade_grad = CpuMs([&] {
    for (int64_t b = 0; b < m.batch; ++b) {
      ShadeVerticesGradient(shading(b), d_colours.data() + floats * b, d_n.data() + floats * b,
                            d_albedo.data() + floats * b, d_light.data() + 27 * b);
    }
  });
  {
    const NormalsCudaParams np{m.vertices.data(), m.triangles.data(), m.batch, v,
                               m.triangle_count()};
    Floats e_normals(normals.size()), e_sums(sums.size()), e_scratch(2 * m.batch * floats),
        e_d_vertices(d_vertices.size());
    emulated::VertexNormals(np, e_sums.data(), e_normals.data());
    emulated::VertexNormalsGradient(np, d_normals.data(), e_scratch.data(), e_d_vertices.data());
    Agree("normals, twin on host", normals, e_normals);
    Agree("d_vertices, on host", d_vertices, e_d_vertices);
    const ShadingCudaParams sp{normals.data(), albedo.data(), light.data(), scales.data(),
                               m.batch, v};
    Floats e_colours(colours.size()), e_d_n(d_n.size()), e_d_albedo(d_albedo.size()),
        e_d_light(d_light.size());
    emulated::Shade(sp, e_colours.data());
    emulated::ShadeGradient(sp, d_colours.data(), e_d_n.data(), e_d_albedo.data(),
                            e_d_light.data());
    Agree("colours, twin on host", colours, e_colours);
    Agree("d_normals, on host", d_n, e_d_n);
    Agree("d_albedo, on host", d_albedo, e_d_albedo);
    Agree("d_coefficients, on host", d_light, e_d_light);
  }
  double gpu[4] = {0.0, 0.0, 0.0, 0.0};
#if !defined(FACE3D_HARNESS_CPU_ONLY)
  if (g_cuda) {
    Device<float> g_vertices(m.vertices), g_d_normals(d_normals), g_normals_in(normals),
        g_albedo(albedo), g_light(light), g_scales(scales), g_d_colours(d_colours);
    Device<int32_t> g_triangles(m.triangles);
    Device<float> g_normals(normals.size()), g_sums(sums.size()), g_scratch(2 * m.batch * floats),
        g_d_vertices(d_vertices.size()), g_colours(colours.size()), g_d_n(d_n.size()),
        g_d_albedo(d_albedo.size()), g_d_light(d_light.size());
    NormalsCudaParams np{g_vertices.data, g_triangles.data, m.batch, v, m.triangle_count()};
    gpu[0] = GpuMs([&] { return VertexNormalsCuda(np, g_sums.data, g_normals.data, nullptr); });
    gpu[1] = GpuMs([&] {
      return VertexNormalsGradientCuda(np, g_d_normals.data, g_scratch.data, g_d_vertices.data,
                                       nullptr);
    });
    ShadingCudaParams sp{g_normals_in.data, g_albedo.data, g_light.data, g_scales.data, m.batch, v};
    gpu[2] = GpuMs([&] { return ShadeVerticesCuda(sp, g_colours.data, nullptr); });
    gpu[3] = GpuMs([&] {
      return ShadeVerticesGradientCuda(sp, g_d_colours.data, g_d_n.data, g_d_albedo.data,
                                       g_d_light.data, nullptr);
    });
    PrintTimes("normals forward", cpu_normals, gpu[0]);
    PrintTimes("normals gradient", cpu_normals_grad, gpu[1]);
    Agree("normals, cuda", normals, g_normals.Download());
    Agree("d_vertices, cuda", d_vertices, g_d_vertices.Download());
    PrintTimes("shading forward", cpu_shade, gpu[2]);
    PrintTimes("shading gradient", cpu_shade_grad, gpu[3]);
    Agree("colours, cuda", colours, g_colours.Download());
    Agree("d_normals, cuda", d_n, g_d_n.Download());
    Agree("d_albedo, cuda", d_albedo, g_d_albedo.Download());
    Agree("d_coefficients, cuda", d_light, g_d_light.Download());
    return;
  }
#endif
  PrintTimes("normals forward", cpu_normals, gpu[0]);
  PrintTimes("normals gradient", cpu_normals_grad, gpu[1]);
  PrintTimes("shading forward", cpu_shade, gpu[2]);
  PrintTimes("shading gradient", cpu_shade_grad, gpu[3]);
}

// Unit face normals (TriangleNormals) and their gradient.
void RunTriangleNormals(const Mesh& m) {
  const int64_t v = m.vertex_count, t = m.triangle_count();
  std::printf("triangle normals, %s: batch %lld, %lld vertices, %lld triangles\n", m.name.c_str(),
              static_cast<long long>(m.batch), static_cast<long long>(v),
              static_cast<long long>(t));
  const Floats d_normals = Normal(m.batch * 3 * t, 0.0f, 1.0f, 25);
  auto mesh = [&](int64_t b) {
    return NormalsParams{m.vertices.data() + 3 * v * b, m.triangles.data(), v, t};
  };
  Floats normals(m.batch * 3 * t), d_vertices(m.batch * 3 * v);
  const double cpu_forward = CpuMs([&] {
    for (int64_t b = 0; b < m.batch; ++b) ComputeTriangleNormals(mesh(b), normals.data() + 3 * t * b);
  });
  const double cpu_gradient = CpuMs([&] {
    for (int64_t b = 0; b < m.batch; ++b) {
      TriangleNormalsGradient(mesh(b), d_normals.data() + 3 * t * b, d_vertices.data() + 3 * v * b);
    }
  });
  {
    const NormalsCudaParams np{m.vertices.data(), m.triangles.data(), m.batch, v, t};
    Floats e_normals(normals.size()), e_d_vertices(d_vertices.size());
    emulated::TriangleNormals(np, e_normals.data());
    emulated::TriangleNormalsGradient(np, d_normals.data(), e_d_vertices.data());
    Agree("triangle normals, twin on host", normals, e_normals);
    Agree("d_vertices, on host", d_vertices, e_d_vertices);
  }
  double gpu_forward = 0.0, gpu_gradient = 0.0;
#if !defined(FACE3D_HARNESS_CPU_ONLY)
  if (g_cuda) {
    Device<float> g_vertices(m.vertices), g_d_normals(d_normals);
    Device<int32_t> g_triangles(m.triangles);
    Device<float> g_normals(normals.size()), g_d_vertices(d_vertices.size());
    NormalsCudaParams np{g_vertices.data, g_triangles.data, m.batch, v, t};
    gpu_forward = GpuMs([&] { return TriangleNormalsCuda(np, g_normals.data, nullptr); });
    gpu_gradient = GpuMs([&] {
      return TriangleNormalsGradientCuda(np, g_d_normals.data, g_d_vertices.data, nullptr);
    });
    Agree("triangle normals, cuda", normals, g_normals.Download());
    Agree("d_vertices, cuda", d_vertices, g_d_vertices.Download());
  }
#endif
  PrintTimes("forward", cpu_forward, gpu_forward);
  PrintTimes("gradient", cpu_gradient, gpu_gradient);
}

void RunGroupNorm(int64_t batch, int height, int width, int channels, int groups, float offset,
                  uint32_t seed) {
  std::printf("group norm: batch %lld, %dx%d, %d channels, %d groups, mean offset %.1f\n",
              static_cast<long long>(batch), height, width, channels, groups, offset);
  const GroupNormParams image{static_cast<int64_t>(height) * width, channels, groups, 1e-5f};
  const int64_t values = image.pixel_count * channels;
  const Floats x = Normal(batch * values, offset, 1.0f, seed);
  const Floats gamma = Normal(channels, 1.0f, 0.2f, seed + 1);
  const Floats beta = Normal(channels, 0.0f, 0.2f, seed + 2);
  const Floats dy = Normal(batch * values, 0.0f, 1.0f, seed + 3);
  Floats y(batch * values), mean(batch * groups), rstd(batch * groups), dx(batch * values),
      d_gamma(channels), d_beta(channels);
  std::vector<double> parts(2 * channels * batch);
  const double cpu_forward = CpuMs([&] {
    for (int64_t b = 0; b < batch; ++b) {
      GroupNormForward(image, x.data() + values * b, gamma.data(), beta.data(),
                       y.data() + values * b, mean.data() + groups * b, rstd.data() + groups * b);
    }
  });
  const double cpu_gradient = CpuMs([&] {
    for (int64_t b = 0; b < batch; ++b) {
      GroupNormBackward(image, x.data() + values * b, gamma.data(), mean.data() + groups * b,
                        rstd.data() + groups * b, dy.data() + values * b, dx.data() + values * b,
                        parts.data() + 2 * channels * b, parts.data() + 2 * channels * b + channels);
    }
    // The op's sum over the batch.
    for (int c = 0; c < channels; ++c) {
      double g = 0.0, s = 0.0;
      for (int64_t b = 0; b < batch; ++b) {
        g += parts[2 * channels * b + c];
        s += parts[2 * channels * b + channels + c];
      }
      d_gamma[c] = static_cast<float>(g);
      d_beta[c] = static_cast<float>(s);
    }
  });
  const GroupNormCudaParams p{batch, image.pixel_count, channels, groups, image.epsilon};
  {
    std::vector<double> scratch = emulated::GroupNormScratch(p);
    Floats e_y(y.size()), e_mean(mean.size()), e_rstd(rstd.size()), e_dx(dx.size()),
        e_d_gamma(channels), e_d_beta(channels);
    emulated::GroupNormForward(p, x.data(), gamma.data(), beta.data(), e_y.data(), e_mean.data(),
                               e_rstd.data(), scratch.data());
    emulated::GroupNormBackward(p, x.data(), gamma.data(), mean.data(), rstd.data(), dy.data(),
                                e_dx.data(), e_d_gamma.data(), e_d_beta.data(), scratch.data());
    Agree("y, twin on host", y, e_y);
    Agree("mean, on host", mean, e_mean);
    Agree("rstd, on host", rstd, e_rstd);
    Agree("dx, on host", dx, e_dx);
    Agree("d_gamma, on host", d_gamma, e_d_gamma);
    Agree("d_beta, on host", d_beta, e_d_beta);
  }
#if !defined(FACE3D_HARNESS_CPU_ONLY)
  if (g_cuda) {
    Device<float> g_x(x), g_gamma(gamma), g_beta(beta), g_dy(dy);
    Device<float> g_y(y.size()), g_mean(mean.size()), g_rstd(rstd.size()), g_dx(dx.size()),
        g_d_gamma(channels), g_d_beta(channels);
    Device<unsigned char> scratch(GroupNormCudaScratchBytes(p));
    const double gpu_forward = GpuMs([&] {
      return GroupNormForwardCuda(p, g_x.data, g_gamma.data, g_beta.data, g_y.data, g_mean.data,
                                  g_rstd.data, scratch.data, nullptr);
    });
    const double gpu_gradient = GpuMs([&] {
      return GroupNormBackwardCuda(p, g_x.data, g_gamma.data, g_mean.data, g_rstd.data, g_dy.data,
                                   g_dx.data, g_d_gamma.data, g_d_beta.data, scratch.data,
                                   nullptr);
    });
    PrintTimes("forward", cpu_forward, gpu_forward);
    PrintTimes("gradient", cpu_gradient, gpu_gradient);
    Agree("y, cuda", y, g_y.Download());
    Agree("mean, cuda", mean, g_mean.Download());
    Agree("rstd, cuda", rstd, g_rstd.Download());
    Agree("dx, cuda", dx, g_dx.Download());
    Agree("d_gamma, cuda", d_gamma, g_d_gamma.Download());
    Agree("d_beta, cuda", d_beta, g_d_beta.Download());
    return;
  }
#endif
  PrintTimes("forward", cpu_forward, 0.0);
  PrintTimes("gradient", cpu_gradient, 0.0);
}

// Photos and renders in [0, 1], a tenth of the pixels with render = photo;
// image b's mask: empty (b % 4 == 0), soft values on about half the pixels
// (1), 0/1 (2), everywhere 1 (3).
void RunPhotometric(int64_t batch, int height, int width, int channels, uint32_t seed) {
  std::printf("photometric loss: batch %lld, %dx%d, %d channels\n", static_cast<long long>(batch),
              height, width, channels);
  const int64_t pixels = static_cast<int64_t>(height) * width, values = pixels * channels;
  Floats images = Uniform(batch * values, 0.0f, 1.0f, seed);
  Floats renders = Uniform(batch * values, 0.0f, 1.0f, seed + 1);
  const Floats coin = Uniform(batch * pixels, 0.0f, 1.0f, seed + 2);
  Floats mask(batch * pixels);
  for (int64_t i = 0; i < batch * pixels; ++i) {
    const int64_t kind = (i / pixels) % 4;
    mask[i] = kind == 0 ? 0.0f : kind == 1 ? (coin[i] < 0.5f ? coin[i] : 0.0f)
                                           : kind == 2 ? (coin[i] < 0.5f ? 1.0f : 0.0f) : 1.0f;
    if (coin[i] > 0.9f) std::copy_n(&images[channels * i], channels, &renders[channels * i]);
  }
  const Floats d_per_image = Normal(batch, 0.0f, 1.0f, seed + 3);
  const float epsilon = 1e-8f;
  auto image = [&](int64_t b) {
    return PhotometricParams{images.data() + values * b, renders.data() + values * b,
                             mask.data() + pixels * b, pixels, channels, epsilon};
  };
  const int64_t chunks = PhotometricChunks(pixels);
  Floats per_image(batch), mask_total(batch), d_renders(batch * values), d_mask(batch * pixels);
  std::vector<double> sums(2 * chunks);
  const double cpu_forward = CpuMs([&] {
    for (int64_t b = 0; b < batch; ++b) {
      PhotometricChunkSums(image(b), 0, chunks, sums.data());
      ImageLossFromChunks(pixels, sums.data(), &per_image[b], &mask_total[b]);
    }
  });
  const double cpu_gradient = CpuMs([&] {
    for (int64_t b = 0; b < batch; ++b) {
      PhotometricGradient(image(b), 0, pixels, per_image[b], mask_total[b], d_per_image[b],
                          d_renders.data() + values * b, d_mask.data() + pixels * b);
    }
  });
  const PhotometricCudaParams p{images.data(), renders.data(), mask.data(), batch, pixels,
                                channels, epsilon};
  {
    Floats e_per_image(batch), e_mask_total(batch), e_d_renders(d_renders.size()),
        e_d_mask(d_mask.size());
    emulated::PhotometricLoss(p, e_per_image.data(), e_mask_total.data());
    emulated::PhotometricGradient(p, per_image.data(), mask_total.data(), d_per_image.data(),
                                  e_d_renders.data(), e_d_mask.data());
    Agree("per_image, twin on host", per_image, e_per_image);
    Agree("mask_total, on host", mask_total, e_mask_total);
    Agree("d_renders, on host", d_renders, e_d_renders);
    Agree("d_mask, on host", d_mask, e_d_mask);
  }
#if !defined(FACE3D_HARNESS_CPU_ONLY)
  if (g_cuda) {
    Device<float> g_images(images), g_renders(renders), g_mask(mask), g_d_per_image(d_per_image);
    Device<float> g_per_image(batch), g_mask_total(batch), g_d_renders(d_renders.size()),
        g_d_mask(d_mask.size());
    PhotometricCudaParams gp = p;
    gp.images = g_images.data;
    gp.renders = g_renders.data;
    gp.mask = g_mask.data;
    Device<unsigned char> scratch(PhotometricCudaScratchBytes(gp));
    const double gpu_forward = GpuMs([&] {
      return PhotometricLossCuda(gp, g_per_image.data, g_mask_total.data, scratch.data, nullptr);
    });
    // The gradient from the CPU's losses (as the op gets the forward pass's).
    Device<float> g_cpu_per_image(per_image), g_cpu_mask_total(mask_total);
    const double gpu_gradient = GpuMs([&] {
      return PhotometricGradientCuda(gp, g_cpu_per_image.data, g_cpu_mask_total.data,
                                     g_d_per_image.data, g_d_renders.data, g_d_mask.data, nullptr);
    });
    PrintTimes("forward", cpu_forward, gpu_forward);
    PrintTimes("gradient", cpu_gradient, gpu_gradient);
    Agree("per_image, cuda", per_image, g_per_image.Download());
    Agree("mask_total, cuda", mask_total, g_mask_total.Download());
    Agree("d_renders, cuda", d_renders, g_d_renders.Download());
    Agree("d_mask, cuda", d_mask, g_d_mask.Download());
    return;
  }
#endif
  PrintTimes("forward", cpu_forward, 0.0);
  PrintTimes("gradient", cpu_gradient, 0.0);
}

#if !defined(FACE3D_HARNESS_CPU_ONLY)
// The device index scan finds the first bad entry (or none).
void RunIndexCheck() {
  std::printf("device index scan (FindFirstOutOfRangeCuda):\n");
  const Ints cases[] = {{0, 1, 2, 3, 4, 5}, {0, 1, 2, 3, 9, -1}, {-5, 0, 1}};
  const int64_t expected[] = {-1, 4, 0};
  Device<unsigned long long> scratch(1);
  for (int i = 0; i < 3; ++i) {
    Device<int32_t> values(cases[i]);
    int64_t first = -2;
    const char* error = FindFirstOutOfRangeCuda(values.data, values.count, 6, scratch.data,
                                                nullptr, &first);
    const bool ok = error == nullptr && first == expected[i];
    std::printf("    case %d %s: first bad index %lld (expected %lld)%s%s\n", i, ok ? "OK" : "FAILED",
                static_cast<long long>(first), static_cast<long long>(expected[i]),
                error ? ", error " : "", error ? error : "");
    g_all_ok &= ok;
  }
}
#endif

}  // namespace
}  // namespace face3d

int main(int argc, char** argv) {
  using namespace face3d;
  std::vector<Mesh> meshes;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--mesh") == 0 && i + 1 < argc) {
      Mesh m;
      if (!ReadMesh(argv[++i], &m)) {
        std::printf("fused_harness: cannot read mesh file %s (see bench/export_harness_mesh.py)\n",
                    argv[i]);
        return 2;
      }
      meshes.push_back(std::move(m));
    } else if (std::strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) {
      g_repeats = std::max(1, std::atoi(argv[++i]));
    } else {
      std::printf("usage: %s [--mesh FILE] [--repeats N]\n", argv[0]);
      return 2;
    }
  }
#if !defined(FACE3D_HARNESS_CPU_ONLY)
  int devices = 0;
  g_cuda = cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0;
  if (!g_cuda) {
    std::printf("no CUDA device: the CPU cores against the twins emulated on the host only\n");
  }
#else
  std::printf("built CPU only: the CPU cores against the twins emulated on the host only\n");
#endif
  meshes.insert(meshes.begin(), Grid(120, 4, 224, 1));
  const Mesh random = RandomPixels(4, 64, 500, 900, 2);
  RunInterpolate(random, 3);
  RunInterpolate(random, 7);
  for (const Mesh& m : meshes) RunInterpolate(m, 3);
  for (const Mesh& m : meshes) RunNormalsAndShading(m);
  for (const Mesh& m : meshes) RunTriangleNormals(m);
  RunGroupNorm(4, 56, 56, 64, 32, 0.5f, 31);  // an encoder layer's shape
  RunGroupNorm(2, 7, 19, 6, 3, 3.0f, 32);     // a chunk remainder, few channels
  RunGroupNorm(3, 1, 130, 1, 1, -1.0f, 33);   // one channel, one group
  RunPhotometric(8, 224, 224, 3, 41);          // the coarse loss's shape
  RunPhotometric(4, 7, 19, 3, 42);             // a chunk remainder (133 pixels), vector tail
  RunPhotometric(4, 13, 21, 1, 43);            // one channel: the scalar loops
#if !defined(FACE3D_HARNESS_CPU_ONLY)
  if (g_cuda) RunIndexCheck();
#endif
  std::printf(g_all_ok ? (g_cuda ? "all fused ops agree (CUDA twins and their emulation on the host)\n"
                                : "the CUDA twins emulated on the host agree; no CUDA device compared\n")
                      : "DISAGREEMENT\n");
  return g_all_ok ? 0 : 1;
}
