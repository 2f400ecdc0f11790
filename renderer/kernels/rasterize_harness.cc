// Standalone harness (no TensorFlow): runs the CPU core and its CUDA twin on
// the same meshes and prints their agreement and milliseconds per image.
//
//   build: python renderer/kernels/build.py --harness (nvcc where present,
//     else g++ with FACE3D_HARNESS_CPU_ONLY), or by hand:
//     nvcc -std=c++17 -O3 -fmad=false -Xcompiler -ffp-contract=off
//       rasterize_harness.cc rasterize_core.cc rasterize_cuda.cu -o rasterize_harness
//   run:   ./rasterize_harness [--mesh FILE] [--repeats N]
//
// --mesh reads a file written by bench/export_harness_mesh.py (the benchmark's
// face-sized mesh). Without a CUDA device (or built CPU only) it runs and
// times the CPU core alone and says so. Agreement, per mesh: triangle ids
// identical except where the two depths are equal (an exact tie), mask
// identical, barycentrics and depth within 1e-5, gradients within 1e-5 of the
// largest gradient magnitude. Exits 1 when a mesh disagrees.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <time.h>

#include "rasterize_core.h"
#if !defined(FACE3D_HARNESS_CPU_ONLY)
#include <cuda_runtime.h>

#include "rasterize_cuda.h"
#endif

namespace face3d {
namespace {

struct Mesh {
  std::string name;
  int64_t batch = 0, vertex_count = 0;
  int width = 0, height = 0;
  std::vector<float> clip;         // [batch, vertex_count, 4]
  std::vector<int32_t> triangles;  // [triangle_count, 3]
  int64_t triangle_count() const { return static_cast<int64_t>(triangles.size() / 3); }
};

struct Outputs {
  std::vector<int32_t> ids;
  std::vector<float> mask, barycentrics, depth, d_clip;
};

// A jittered grid over the NDC square, perspective (random w per vertex),
// `copies` times at the same depth (exact ties between copies).
Mesh Grid(int cells, int copies, int batch, int size, uint32_t seed) {
  Mesh m;
  m.name = "grid" + std::to_string(cells) + "x" + std::to_string(copies);
  m.batch = batch;
  m.width = m.height = size;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> jitter(-0.3f / cells, 0.3f / cells), w(0.5f, 2.0f);
  const int side = cells + 1;
  m.vertex_count = static_cast<int64_t>(side) * side * copies;
  for (int b = 0; b < batch; ++b) {
    for (int copy = 0; copy < copies; ++copy) {
      for (int r = 0; r <= cells; ++r) {
        for (int c = 0; c <= cells; ++c) {
          const float x = -1.1f + 2.2f * c / cells + jitter(rng);
          const float y = -1.1f + 2.2f * r / cells + jitter(rng);
          const float vw = w(rng);
          m.clip.insert(m.clip.end(), {x * vw, y * vw, 0.1f * vw, vw});
        }
      }
    }
  }
  for (int copy = 0; copy < copies; ++copy) {
    const int base = copy * side * side;
    for (int r = 0; r < cells; ++r) {
      for (int c = 0; c < cells; ++c) {
        const int a = base + r * side + c, b = a + 1, d = a + side, e = d + 1;
        m.triangles.insert(m.triangles.end(), {a, b, e, a, e, d});
      }
    }
  }
  return m;
}

// Random triangles of any size and depth, a third with a vertex behind the eye.
Mesh Soup(int count, int batch, int size, uint32_t seed) {
  Mesh m;
  m.name = "soup" + std::to_string(count);
  m.batch = batch;
  m.width = m.height = size;
  m.vertex_count = 3 * count;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> coordinate(-1.3f, 1.3f), w(0.2f, 2.0f), unit(0.0f, 1.0f);
  for (int b = 0; b < batch; ++b) {
    for (int v = 0; v < 3 * count; ++v) {
      const float vw = (v % 9 == 0) ? -w(rng) : w(rng);
      m.clip.insert(m.clip.end(), {coordinate(rng) * vw, coordinate(rng) * vw,
                                   (1.8f * unit(rng) - 0.9f) * std::fabs(vw), vw});
    }
  }
  for (int v = 0; v < 3 * count; ++v) m.triangles.push_back(v);
  return m;
}

bool ReadMesh(const char* path, Mesh* m) {
  FILE* f = std::fopen(path, "rb");
  if (f == nullptr) return false;
  char magic[8];
  int64_t header[3];
  int32_t size[2];
  bool ok = std::fread(magic, 1, 8, f) == 8 && std::memcmp(magic, "F3DMESH1", 8) == 0 &&
            std::fread(header, sizeof(int64_t), 3, f) == 3 && std::fread(size, sizeof(int32_t), 2, f) == 2;
  if (ok) {
    m->name = path;
    m->batch = header[0];
    m->vertex_count = header[1];
    m->height = size[0];
    m->width = size[1];
    m->clip.resize(4 * header[0] * header[1]);
    m->triangles.resize(3 * header[2]);
    ok = std::fread(m->clip.data(), sizeof(float), m->clip.size(), f) == m->clip.size() &&
         std::fread(m->triangles.data(), sizeof(int32_t), m->triangles.size(), f) == m->triangles.size();
  }
  std::fclose(f);
  return ok && FindInvalidTriangle(m->triangles.data(), m->triangle_count(), m->vertex_count) < 0;
}

// Fixed random output gradients for barycentrics and depth.
void OutputGradients(const Mesh& m, std::vector<float>* d_bary, std::vector<float>* d_depth) {
  std::mt19937 rng(99);
  std::normal_distribution<float> normal;
  const int64_t pixels = m.batch * m.height * static_cast<int64_t>(m.width);
  d_bary->resize(3 * pixels);
  d_depth->resize(pixels);
  for (float& v : *d_bary) v = normal(rng);
  for (float& v : *d_depth) v = normal(rng);
}

// CPU time of this thread: steadier than wall time on a shared machine.
double Seconds() {
  timespec now;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return now.tv_sec + 1e-9 * now.tv_nsec;
}

// The CPU core, image by image and one band, as the TensorFlow op runs it on
// a batch of at least twice as many images as threads. Returns CPU seconds.
double RunCpu(const Mesh& m, Outputs* o) {
  const int64_t pixels = m.height * static_cast<int64_t>(m.width);
  const int64_t v = m.vertex_count;
  o->ids.assign(m.batch * pixels, 0);
  o->mask.assign(m.batch * pixels, 0.0f);
  o->barycentrics.assign(3 * m.batch * pixels, 0.0f);
  o->depth.assign(m.batch * pixels, 0.0f);
  o->d_clip.assign(4 * m.batch * v, 0.0f);
  std::vector<float> d_bary, d_depth, slow;
  OutputGradients(m, &d_bary, &d_depth);
  std::vector<ProjectedVertex> projected(m.batch * v);
  const double start = Seconds();
  for (int64_t b = 0; b < m.batch; ++b) {
    const float* clip = m.clip.data() + 4 * v * b;
    ProjectVertices(clip, v, m.width, m.height, projected.data() + v * b);
    RasterizeRows(clip, projected.data() + v * b, m.triangles.data(), m.triangle_count(), m.width,
                  m.height, 0, m.height, false, o->ids.data() + pixels * b, o->mask.data() + pixels * b,
                  o->barycentrics.data() + 3 * pixels * b, o->depth.data() + pixels * b);
  }
  for (int64_t b = 0; b < m.batch; ++b) {
    const float* clip = m.clip.data() + 4 * v * b;
    float* d_projected = o->d_clip.data() + 4 * v * b;
    float* d_slow = nullptr;
    while (!AccumulateGradientRows(clip, projected.data() + v * b, m.triangles.data(),
                                   o->ids.data() + pixels * b, o->mask.data() + pixels * b,
                                   d_bary.data() + 3 * pixels * b, d_depth.data() + pixels * b,
                                   m.width, m.height, 0, m.height, d_projected, d_slow)) {
      std::fill(d_projected, d_projected + 4 * v, 0.0f);
      slow.assign(4 * v, 0.0f);
      d_slow = slow.data();
    }
    const float* slow_bands[1] = {d_slow};
    const float* projected_bands[1] = {d_projected};
    FinishGradient(clip, projected_bands, d_slow == nullptr ? nullptr : slow_bands, 1, 0, v,
                   m.width, m.height, d_projected);
  }
  return Seconds() - start;
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

template <typename T>
T* Upload(const std::vector<T>& host) {
  T* device = nullptr;
  CUDA_OK(cudaMalloc(&device, std::max<size_t>(1, host.size()) * sizeof(T)));
  CUDA_OK(cudaMemcpy(device, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  return device;
}

template <typename T>
T* Allocate(int64_t count) {
  T* device = nullptr;
  CUDA_OK(cudaMalloc(&device, std::max<int64_t>(1, count) * sizeof(T)));
  return device;
}

template <typename T>
void Download(const T* device, int64_t count, std::vector<T>* host) {
  host->resize(count);
  CUDA_OK(cudaMemcpy(host->data(), device, count * sizeof(T), cudaMemcpyDeviceToHost));
}

// Forward and gradient on the GPU, `repeats` times; returns the median
// milliseconds per batch (CUDA events, inputs already on the device).
double RunCuda(const Mesh& m, int repeats, Outputs* o) {
  const int64_t pixels = m.batch * m.height * static_cast<int64_t>(m.width);
  const int64_t vertices = m.batch * m.vertex_count;
  std::vector<float> d_bary, d_depth;
  OutputGradients(m, &d_bary, &d_depth);
  RasterizeParams f = {};
  f.clip = Upload(m.clip);
  f.triangles = Upload(m.triangles);
  f.batch = m.batch;
  f.vertex_count = m.vertex_count;
  f.triangle_count = m.triangle_count();
  f.width = m.width;
  f.height = m.height;
  f.cull_backfaces = false;
  f.projected = Allocate<ProjectedVertex>(vertices);
  f.depth_keys = Allocate<unsigned long long>(pixels);
  f.triangle_ids = Allocate<int32_t>(pixels);
  f.mask = Allocate<float>(pixels);
  f.barycentrics = Allocate<float>(3 * pixels);
  f.depth = Allocate<float>(pixels);
  GradientParams g = {};
  g.clip = f.clip;
  g.triangles = f.triangles;
  g.projected = f.projected;
  g.triangle_ids = f.triangle_ids;
  g.mask = f.mask;
  g.d_barycentrics = Upload(d_bary);
  g.d_depth = Upload(d_depth);
  g.batch = m.batch;
  g.vertex_count = m.vertex_count;
  g.width = m.width;
  g.height = m.height;
  g.d_projected = Allocate<float>(4 * vertices);
  g.d_clip_slow = Allocate<float>(4 * vertices);
  g.d_clip = Allocate<float>(4 * vertices);
  cudaEvent_t begin, end;
  CUDA_OK(cudaEventCreate(&begin));
  CUDA_OK(cudaEventCreate(&end));
  std::vector<float> times;
  for (int r = 0; r <= repeats; ++r) {  // run 0 warms up
    CUDA_OK(cudaEventRecord(begin));
    const char* error = RasterizeCuda(f, nullptr);
    if (error == nullptr) error = RasterizeGradientCuda(g, nullptr);
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
  Download(f.triangle_ids, pixels, &o->ids);
  Download(f.mask, pixels, &o->mask);
  Download(f.barycentrics, 3 * pixels, &o->barycentrics);
  Download(f.depth, pixels, &o->depth);
  Download(g.d_clip, 4 * vertices, &o->d_clip);
  for (void* p : {(void*)f.clip, (void*)f.triangles, (void*)f.projected, (void*)f.depth_keys,
                  (void*)f.triangle_ids, (void*)f.mask, (void*)f.barycentrics, (void*)f.depth,
                  (void*)g.d_barycentrics, (void*)g.d_depth, (void*)g.d_projected,
                  (void*)g.d_clip_slow, (void*)g.d_clip}) {
    CUDA_OK(cudaFree(p));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// Prints the agreement of `gpu` with `cpu`; returns whether it is within the
// tolerances of the file comment.
bool Compare(const Mesh& m, const Outputs& cpu, const Outputs& gpu) {
  int64_t id_diff = 0, ties = 0, mask_diff = 0;
  double bary_err = 0.0, depth_err = 0.0, grad_err = 0.0, grad_max = 0.0;
  for (size_t p = 0; p < cpu.ids.size(); ++p) {
    mask_diff += cpu.mask[p] != gpu.mask[p];
    if (cpu.ids[p] != gpu.ids[p]) {
      if (cpu.depth[p] == gpu.depth[p]) {
        ++ties;
        continue;
      }
      ++id_diff;
      continue;
    }
    depth_err = std::max(depth_err, static_cast<double>(std::fabs(cpu.depth[p] - gpu.depth[p])));
    for (int k = 0; k < 3; ++k) {
      bary_err = std::max(bary_err, static_cast<double>(std::fabs(cpu.barycentrics[3 * p + k] -
                                                                  gpu.barycentrics[3 * p + k])));
    }
  }
  for (size_t i = 0; i < cpu.d_clip.size(); ++i) {
    grad_max = std::max(grad_max, static_cast<double>(std::fabs(cpu.d_clip[i])));
    grad_err = std::max(grad_err, static_cast<double>(std::fabs(cpu.d_clip[i] - gpu.d_clip[i])));
  }
  const double grad_rel = grad_max > 0.0 ? grad_err / grad_max : grad_err;
  const bool ok = id_diff == 0 && mask_diff == 0 && bary_err <= 1e-5 && depth_err <= 1e-5 && grad_rel <= 1e-5;
  std::printf("  agreement %s: ids differ %lld (+%lld exact ties), mask differs %lld, "
              "max |d barycentric| %.2e, max |d depth| %.2e, max |d gradient| / max |gradient| %.2e\n",
              ok ? "OK" : "FAILED", static_cast<long long>(id_diff), static_cast<long long>(ties),
              static_cast<long long>(mask_diff), bary_err, depth_err, grad_rel);
  return ok;
}
#endif

}  // namespace
}  // namespace face3d

int main(int argc, char** argv) {
  using namespace face3d;
  std::vector<Mesh> meshes = {Grid(60, 1, 4, 96, 1), Grid(30, 2, 4, 64, 2), Soup(400, 4, 80, 3),
                              Grid(150, 1, 2, 224, 4)};
  int repeats = 10;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--mesh") == 0 && i + 1 < argc) {
      Mesh m;
      if (!ReadMesh(argv[++i], &m)) {
        std::printf("rasterize_harness: cannot read mesh file %s (see bench/export_harness_mesh.py)\n", argv[i]);
        return 2;
      }
      meshes.push_back(m);
    } else if (std::strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) {
      repeats = std::max(1, std::atoi(argv[++i]));
    } else {
      std::printf("usage: %s [--mesh FILE] [--repeats N]\n", argv[0]);
      return 2;
    }
  }
  bool cuda = false;
#if !defined(FACE3D_HARNESS_CPU_ONLY)
  int devices = 0;
  cuda = cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0;
  if (!cuda) std::printf("no CUDA device: timing the CPU core only, nothing compared\n");
#else
  std::printf("built CPU only: timing the CPU core only, nothing compared\n");
#endif
  bool all_ok = true;
  for (const Mesh& m : meshes) {
    std::printf("%s: batch %lld, %lld vertices, %lld triangles, %dx%d\n", m.name.c_str(),
                static_cast<long long>(m.batch), static_cast<long long>(m.vertex_count),
                static_cast<long long>(m.triangle_count()), m.height, m.width);
    Outputs cpu;
    std::vector<double> times;
    for (int r = 0; r < repeats; ++r) times.push_back(RunCpu(m, &cpu));
    std::sort(times.begin(), times.end());
    float covered = 0.0f;
    for (float v : cpu.mask) covered += v;
    std::printf("  cpu: %.3f ms of CPU per image (forward + gradient, one thread, median of %d), %.0f%% covered\n",
                1e3 * times[times.size() / 2] / m.batch, repeats, 100.0 * covered / cpu.mask.size());
#if !defined(FACE3D_HARNESS_CPU_ONLY)
    if (cuda) {
      Outputs gpu;
      const double ms = RunCuda(m, repeats, &gpu);
      std::printf("  cuda: %.3f ms per image (forward + gradient, median of %d)\n", ms / m.batch, repeats);
      all_ok &= Compare(m, cpu, gpu);
    }
#endif
  }
  if (cuda) std::printf(all_ok ? "all meshes agree\n" : "DISAGREEMENT\n");
  return all_ok ? 0 : 1;
}
