// TensorFlow ops RasterizeClipTriangles and RasterizeClipTrianglesGrad.
//
// Shape and input checks live here; the arithmetic lives in rasterize_core.cc
// (CPU) and rasterize_cuda.cu (GPU kernels, compiled in with GOOGLE_CUDA=1
// where build.py finds nvcc and a CUDA build of TensorFlow).
// Work is split over (batch element, row band) pairs on TensorFlow's intra-op
// CPU thread pool. Bands are only used when the batch alone cannot keep every
// thread busy, because each band walks all triangles of its image.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include "cpu_op_util.h"
#include "rasterize_core.h"
#if GOOGLE_CUDA
#include "gpu_op_util.h"
#include "rasterize_cuda.h"
#endif
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace face3d {
namespace {

using ::tensorflow::DEVICE_CPU;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::errors::InvalidArgument;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

// Rough cost in cycles of rasterizing one image, for the work sharder: it only
// needs to know that a unit is expensive enough to deserve its own thread.
constexpr int64_t kCostPerBand = 1 << 22;

// One work unit of RunSharded: rows [row_begin, row_end) of image `image`.
struct BandUnit {
  int64_t image;
  int band;
  int row_begin;
  int row_end;
};

struct Bands {
  int count;
  int rows_per_band;

  // Work units are numbered image-major: unit = image * count + band.
  BandUnit Unit(int64_t unit, int height) const {
    const int band = static_cast<int>(unit % count);
    const int row_begin = band * rows_per_band;
    return {unit / count, band, row_begin, std::min(height, row_begin + rows_per_band)};
  }
};

// Splits each image into enough row bands that batch * bands covers every
// thread twice (for balance: faces leave the top and bottom rows empty).
Bands ChooseBands(OpKernelContext* context, int64_t batch, int height) {
  const int threads =
      context->device()->tensorflow_cpu_worker_threads()->num_threads;
  int count = 1;
  if (batch < 2 * threads) {
    count = static_cast<int>((2 * threads + batch - 1) / batch);
  }
  count = std::max(1, std::min(count, height));
  const int rows_per_band = (height + count - 1) / count;
  count = (height + rows_per_band - 1) / rows_per_band;
  return {count, rows_per_band};
}

ProjectedVertex* AsProjected(Tensor* storage) {
  return reinterpret_cast<ProjectedVertex*>(storage->flat<int8_t>().data());
}

using cpu_op::RunSharded;

constexpr int64_t kProjectedBytes = sizeof(ProjectedVertex);

// Projects every image's vertices into `storage` [batch, vertices *
// kProjectedBytes] int8 (an output of the forward op, so that the gradient op
// does not project again).
ProjectedVertex* ProjectAll(OpKernelContext* context, const Tensor& clip,
                            int width, int height, Tensor* storage) {
  const int64_t batch = clip.dim_size(0), vertex_count = clip.dim_size(1);
  ProjectedVertex* projected = AsProjected(storage);
  const float* clip_data = clip.flat<float>().data();
  RunSharded(context, batch, 20 * vertex_count, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      ProjectVertices(clip_data + 4 * vertex_count * b, vertex_count, width,
                      height, projected + vertex_count * b);
    }
  });
  return projected;
}

// Checks that a tensor of `dims` elements of `element_bytes` each has a shape
// TensorShape accepts and a byte count that fits int64, before anything is
// allocated: TensorShape's constructor aborts the process on overflow.
::tensorflow::Status CheckShapeSize(const char* name, std::initializer_list<int64_t> dims,
                                    int64_t element_bytes) {
  int64_t bytes = element_bytes;
  for (const int64_t d : dims) {
    if (d < 0 || __builtin_mul_overflow(bytes, d, &bytes)) {
      std::string text;
      for (const int64_t e : dims) text += (text.empty() ? "" : ", ") + std::to_string(e);
      return InvalidArgument(name, " of shape [", text, "] (", element_bytes,
                             "-byte elements) is too large");
    }
  }
  return ::tensorflow::OkStatus();
}

// Checks the sizes of the images and projected vertices both ops produce or
// read, for `batch` images of height x width and `vertex_count` vertices.
::tensorflow::Status CheckImageSizes(int64_t batch, int64_t height, int64_t width,
                                     int64_t vertex_count) {
  if (height > std::numeric_limits<int32_t>::max() || width > std::numeric_limits<int32_t>::max()) {
    return InvalidArgument("image size ", height, "x", width, " exceeds 2^31 - 1");
  }
  TF_RETURN_IF_ERROR(CheckShapeSize("barycentrics", {batch, height, width, 3}, 4));
  return CheckShapeSize("projected vertices", {batch, vertex_count, kProjectedBytes}, 1);
}

// Checks the shapes of the inputs shared by both ops.
::tensorflow::Status CheckMeshShapes(const Tensor& clip, const Tensor& triangles,
                               int image_height, int image_width) {
  if (clip.dims() != 3 || clip.dim_size(2) != 4) {
    return InvalidArgument("clip_vertices must have shape [batch, vertices, 4], got ",
                           clip.shape().DebugString());
  }
  if (triangles.dims() != 2 || triangles.dim_size(1) != 3) {
    return InvalidArgument("triangles must have shape [triangles, 3], got ",
                           triangles.shape().DebugString());
  }
  if (clip.dim_size(1) == 0 || triangles.dim_size(0) == 0) {
    return InvalidArgument("empty mesh: ", clip.dim_size(1), " vertices, ",
                           triangles.dim_size(0), " triangles");
  }
  if (image_height <= 0 || image_width <= 0) {
    return InvalidArgument("image size must be positive, got ", image_height,
                           "x", image_width);
  }
  if (clip.dim_size(1) > std::numeric_limits<int32_t>::max() ||
      triangles.dim_size(0) > std::numeric_limits<int32_t>::max()) {
    return InvalidArgument("mesh too large for int32 indices");
  }
  return ::tensorflow::OkStatus();
}

::tensorflow::Status InvalidTriangleError(int64_t triangle, int64_t vertex_count) {
  return InvalidArgument("triangle ", triangle, " has a vertex index outside [0, ",
                         vertex_count, ")");
}

// CheckMeshShapes, then the indices (in host memory).
::tensorflow::Status CheckMesh(const Tensor& clip, const Tensor& triangles,
                               int image_height, int image_width) {
  TF_RETURN_IF_ERROR(CheckMeshShapes(clip, triangles, image_height, image_width));
  const int64_t bad = FindInvalidTriangle(triangles.flat<int32_t>().data(),
                                          triangles.dim_size(0),
                                          clip.dim_size(1));
  return bad >= 0 ? InvalidTriangleError(bad, clip.dim_size(1)) : ::tensorflow::OkStatus();
}

bool HasShape(const Tensor& t, std::initializer_list<int64_t> dims) {
  if (t.dims() != static_cast<int>(dims.size())) return false;
  int axis = 0;
  for (const int64_t d : dims) {
    if (t.dim_size(axis++) != d) return false;
  }
  return true;
}

// Shapes of the gradient op's inputs (all but the triangle ids' values),
// checked before anything is allocated; sets the image size.
::tensorflow::Status CheckGradientShapes(OpKernelContext* context, int* height, int* width) {
  const Tensor& clip = context->input(0);
  const Tensor& triangles = context->input(1);
  const Tensor& projected = context->input(2);
  const Tensor& ids = context->input(3);
  const Tensor& mask = context->input(4);
  const Tensor& d_bary = context->input(5);
  const Tensor& d_depth = context->input(6);
  if (ids.dims() != 3) {
    return InvalidArgument("triangle_ids must have shape [batch, height, width], got ",
                           ids.shape().DebugString());
  }
  if (clip.dims() != 3) {
    return InvalidArgument("clip_vertices must have shape [batch, vertices, 4], got ",
                           clip.shape().DebugString());
  }
  const int64_t batch = clip.dim_size(0), vertex_count = clip.dim_size(1);
  // Sizes first, then shapes compared dimension by dimension: a TensorShape
  // built from these dimensions could overflow (and abort) before the size
  // checks.
  TF_RETURN_IF_ERROR(CheckImageSizes(batch, ids.dim_size(1), ids.dim_size(2), vertex_count));
  *height = static_cast<int>(ids.dim_size(1));
  *width = static_cast<int>(ids.dim_size(2));
  TF_RETURN_IF_ERROR(CheckMeshShapes(clip, triangles, *height, *width));
  if (!HasShape(ids, {batch, *height, *width}) || !HasShape(mask, {batch, *height, *width})) {
    return InvalidArgument("triangle_ids and mask must have shape [", batch, ", ", *height, ", ",
                           *width, "], got ", ids.shape().DebugString(), " and ",
                           mask.shape().DebugString());
  }
  if (projected.dtype() != ::tensorflow::DT_INT8 ||
      !HasShape(projected, {batch, vertex_count * kProjectedBytes})) {
    return InvalidArgument("projected must be the forward op's output 4");
  }
  // An empty gradient stands for zeros (an output nothing depends on).
  if (d_depth.NumElements() > 0 && !HasShape(d_depth, {batch, *height, *width})) {
    return InvalidArgument("d_depth must be empty or have shape [", batch, ", ", *height, ", ",
                           *width, "], got ", d_depth.shape().DebugString());
  }
  if (d_bary.NumElements() > 0 && !HasShape(d_bary, {batch, *height, *width, 3})) {
    return InvalidArgument("d_barycentrics must be empty or have shape [", batch, ", ", *height,
                           ", ", *width, ", 3], got ", d_bary.shape().DebugString());
  }
  return ::tensorflow::OkStatus();
}

class RasterizeClipTrianglesOp : public OpKernel {
 public:
  explicit RasterizeClipTrianglesOp(OpKernelConstruction* context)
      : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("image_height", &image_height_));
    OP_REQUIRES_OK(context, context->GetAttr("image_width", &image_width_));
    OP_REQUIRES_OK(context,
                   context->GetAttr("cull_backfaces", &cull_backfaces_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& clip = context->input(0);
    const Tensor& triangles = context->input(1);
    OP_REQUIRES_OK(context,
                   CheckMesh(clip, triangles, image_height_, image_width_));
    const int64_t batch = clip.dim_size(0);
    const int64_t vertex_count = clip.dim_size(1);
    const int64_t triangle_count = triangles.dim_size(0);
    const int height = image_height_, width = image_width_;
    OP_REQUIRES_OK(context, CheckImageSizes(batch, height, width, vertex_count));

    Tensor* ids_tensor = nullptr;
    Tensor* mask_tensor = nullptr;
    Tensor* bary_tensor = nullptr;
    Tensor* depth_tensor = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(
                                0, TensorShape({batch, height, width}),
                                &ids_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(
                                1, TensorShape({batch, height, width}),
                                &mask_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(
                                2, TensorShape({batch, height, width, 3}),
                                &bary_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(
                                3, TensorShape({batch, height, width}),
                                &depth_tensor));
    Tensor* projected_tensor = nullptr;
    OP_REQUIRES_OK(context,
                   context->allocate_output(
                       4, TensorShape({batch, vertex_count * kProjectedBytes}),
                       &projected_tensor));
    if (batch == 0) return;
    ProjectedVertex* projected = ProjectAll(context, clip, width, height,
                                            projected_tensor);

    const float* clip_data = clip.flat<float>().data();
    const int32_t* tri_data = triangles.flat<int32_t>().data();
    int32_t* ids = ids_tensor->flat<int32_t>().data();
    float* mask = mask_tensor->flat<float>().data();
    float* bary = bary_tensor->flat<float>().data();
    float* depth = depth_tensor->flat<float>().data();
    const int64_t pixels = static_cast<int64_t>(height) * width;

    const Bands bands = ChooseBands(context, batch, height);
    RunSharded(
        context, batch * bands.count, kCostPerBand,
        [&](int64_t begin, int64_t end) {
          for (int64_t unit = begin; unit < end; ++unit) {
            const BandUnit work = bands.Unit(unit, height);
            const int64_t b = work.image;
            RasterizeRows(clip_data + 4 * vertex_count * b,
                          projected + vertex_count * b, tri_data,
                          triangle_count, width, height, work.row_begin, work.row_end,
                          cull_backfaces_, ids + pixels * b, mask + pixels * b,
                          bary + 3 * pixels * b, depth + pixels * b);
          }
        });
  }

 private:
  int image_height_;
  int image_width_;
  bool cull_backfaces_;
};

class RasterizeClipTrianglesGradOp : public OpKernel {
 public:
  explicit RasterizeClipTrianglesGradOp(OpKernelConstruction* context)
      : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& clip = context->input(0);
    const Tensor& triangles = context->input(1);
    Tensor projected_tensor = context->input(2);
    const Tensor& ids_tensor = context->input(3);
    const Tensor& mask_tensor = context->input(4);
    const Tensor& d_bary_tensor = context->input(5);
    const Tensor& d_depth_tensor = context->input(6);
    int height, width;
    OP_REQUIRES_OK(context, CheckGradientShapes(context, &height, &width));
    OP_REQUIRES_OK(context, CheckMesh(clip, triangles, height, width));
    const int64_t batch = clip.dim_size(0);
    const int64_t vertex_count = clip.dim_size(1);
    const int64_t triangle_count = triangles.dim_size(0);
    const bool has_d_depth = d_depth_tensor.NumElements() > 0;
    const bool has_d_bary = d_bary_tensor.NumElements() > 0;
    const int32_t* ids = ids_tensor.flat<int32_t>().data();
    const int64_t pixels = static_cast<int64_t>(height) * width;
    // A branch-free pass (it vectorises) first; the culprit is looked up only
    // when there is one.
    bool any_bad = false;
    for (int64_t i = 0; i < batch * pixels; ++i) {
      any_bad |= static_cast<uint32_t>(ids[i]) >= static_cast<uint64_t>(triangle_count);
    }
    int64_t bad = -1;
    for (int64_t i = 0; any_bad && i < batch * pixels && bad < 0; ++i) {
      if (ids[i] < 0 || ids[i] >= triangle_count) bad = i;
    }
    OP_REQUIRES(context, bad < 0,
                InvalidArgument("triangle_ids holds ", bad < 0 ? 0 : ids[bad],
                                ", outside [0, ", triangle_count, ")"));

    Tensor* d_clip_tensor = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, clip.shape(),
                                                     &d_clip_tensor));
    if (batch == 0) return;
    float* d_clip = d_clip_tensor->flat<float>().data();
    const ProjectedVertex* projected = AsProjected(&projected_tensor);

    // Bands of one image scatter into the same vertices, so each band
    // accumulates into buffers of its own: band 0 into the output itself,
    // the others into a temporary; FinishGradient sums them. Slow-path
    // pixels (vertices behind the eye) are rare: their buffers are made only
    // for the units that meet one.
    const Bands bands = ChooseBands(context, batch, height);
    const int64_t image_floats = 4 * vertex_count;
    Tensor extra_tensor;
    OP_REQUIRES_OK(context, context->allocate_temp(
                                ::tensorflow::DT_FLOAT,
                                TensorShape({batch * (bands.count - 1) * image_floats}),
                                &extra_tensor));
    float* extra = extra_tensor.flat<float>().data();
    std::vector<std::vector<float>> slow(batch * bands.count);
    auto projected_buffer = [&](int64_t b, int band) {
      return band == 0 ? d_clip + image_floats * b
                       : extra + image_floats * (b * (bands.count - 1) + band - 1);
    };

    const float* clip_data = clip.flat<float>().data();
    const int32_t* tri_data = triangles.flat<int32_t>().data();
    const float* mask = mask_tensor.flat<float>().data();
    const float* d_bary = has_d_bary ? d_bary_tensor.flat<float>().data() : nullptr;
    const float* d_depth = has_d_depth ? d_depth_tensor.flat<float>().data() : nullptr;
    RunSharded(
        context, batch * bands.count, kCostPerBand,
        [&](int64_t begin, int64_t end) {
          for (int64_t unit = begin; unit < end; ++unit) {
            const BandUnit work = bands.Unit(unit, height);
            const int64_t b = work.image;
            float* d_projected = projected_buffer(b, work.band);
            float* d_slow = nullptr;
            while (true) {
              std::fill(d_projected, d_projected + image_floats, 0.0f);
              if (AccumulateGradientRows(
                      clip_data + 4 * vertex_count * b, projected + vertex_count * b,
                      tri_data, ids + pixels * b, mask + pixels * b,
                      d_bary ? d_bary + 3 * pixels * b : nullptr,
                      d_depth ? d_depth + pixels * b : nullptr, width, height,
                      work.row_begin, work.row_end, d_projected, d_slow)) {
                break;
              }
              slow[unit].assign(image_floats, 0.0f);
              d_slow = slow[unit].data();
            }
            if (bands.count == 1) {
              // Chained through the projection while the sums are still in
              // cache (d_clip of this image is d_projected itself).
              FinishGradient(clip_data + 4 * vertex_count * b, &d_projected,
                             d_slow == nullptr ? nullptr : &d_slow, 1, 0,
                             vertex_count, width, height, d_projected);
            }
          }
        });
    if (bands.count == 1) return;
    RunSharded(context, batch * vertex_count, 10 * bands.count,
               [&](int64_t begin, int64_t end) {
                 std::vector<const float*> projected_bands(bands.count);
                 std::vector<const float*> slow_bands(bands.count);
                 while (begin < end) {
                   const int64_t b = begin / vertex_count;
                   const int64_t v_begin = begin % vertex_count;
                   const int64_t v_end = std::min(vertex_count, v_begin + end - begin);
                   bool any_slow = false;
                   for (int band = 0; band < bands.count; ++band) {
                     const std::vector<float>& unit_slow = slow[b * bands.count + band];
                     projected_bands[band] = projected_buffer(b, band);
                     slow_bands[band] = unit_slow.empty() ? nullptr : unit_slow.data();
                     any_slow |= !unit_slow.empty();
                   }
                   FinishGradient(clip_data + 4 * vertex_count * b,
                                  projected_bands.data(),
                                  any_slow ? slow_bands.data() : nullptr,
                                  bands.count, v_begin, v_end, width, height,
                                  d_clip + image_floats * b);
                   begin += v_end - v_begin;
                 }
               });
  }
};

#if GOOGLE_CUDA
using ::tensorflow::DEVICE_GPU;

using gpu_op::FirstOutOfRange;
using gpu_op::Stream;

class RasterizeClipTrianglesGpuOp : public OpKernel {
 public:
  explicit RasterizeClipTrianglesGpuOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("image_height", &image_height_));
    OP_REQUIRES_OK(context, context->GetAttr("image_width", &image_width_));
    OP_REQUIRES_OK(context, context->GetAttr("cull_backfaces", &cull_backfaces_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& clip = context->input(0);
    const Tensor& triangles = context->input(1);
    OP_REQUIRES_OK(context, CheckMeshShapes(clip, triangles, image_height_, image_width_));
    const int64_t batch = clip.dim_size(0), vertex_count = clip.dim_size(1);
    const int height = image_height_, width = image_width_;
    OP_REQUIRES_OK(context, CheckImageSizes(batch, height, width, vertex_count));
    int64_t bad = -1;
    OP_REQUIRES_OK(context, FirstOutOfRange(context, triangles.flat<int32_t>().data(),
                                                 triangles.NumElements(), vertex_count, &bad));
    OP_REQUIRES(context, bad < 0, InvalidTriangleError(bad / 3, vertex_count));
    Tensor* outputs[5];
    const TensorShape image({batch, height, width});
    OP_REQUIRES_OK(context, context->allocate_output(0, image, &outputs[0]));
    OP_REQUIRES_OK(context, context->allocate_output(1, image, &outputs[1]));
    OP_REQUIRES_OK(context, context->allocate_output(2, TensorShape({batch, height, width, 3}), &outputs[2]));
    OP_REQUIRES_OK(context, context->allocate_output(3, image, &outputs[3]));
    OP_REQUIRES_OK(context, context->allocate_output(
                                4, TensorShape({batch, vertex_count * kProjectedBytes}), &outputs[4]));
    Tensor keys;
    OP_REQUIRES_OK(context, context->allocate_temp(::tensorflow::DT_UINT64, image, &keys));
    RasterizeParams params;
    params.clip = clip.flat<float>().data();
    params.triangles = triangles.flat<int32_t>().data();
    params.batch = batch;
    params.vertex_count = vertex_count;
    params.triangle_count = triangles.dim_size(0);
    params.width = width;
    params.height = height;
    params.cull_backfaces = cull_backfaces_;
    params.projected = AsProjected(outputs[4]);
    params.depth_keys = reinterpret_cast<unsigned long long*>(keys.flat<uint64_t>().data());
    params.triangle_ids = outputs[0]->flat<int32_t>().data();
    params.mask = outputs[1]->flat<float>().data();
    params.barycentrics = outputs[2]->flat<float>().data();
    params.depth = outputs[3]->flat<float>().data();
    const char* error = RasterizeCuda(params, Stream(context));
    OP_REQUIRES(context, error == nullptr, ::tensorflow::errors::Internal("RasterizeCuda: ", error));
  }

 private:
  int image_height_;
  int image_width_;
  bool cull_backfaces_;
};

class RasterizeClipTrianglesGradGpuOp : public OpKernel {
 public:
  explicit RasterizeClipTrianglesGradGpuOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& clip = context->input(0);
    const Tensor& triangles = context->input(1);
    Tensor projected = context->input(2);
    const Tensor& ids = context->input(3);
    const Tensor& d_bary = context->input(5);
    const Tensor& d_depth = context->input(6);
    int height, width;
    OP_REQUIRES_OK(context, CheckGradientShapes(context, &height, &width));
    const int64_t batch = clip.dim_size(0), vertex_count = clip.dim_size(1);
    const int64_t triangle_count = triangles.dim_size(0);
    int64_t bad = -1;
    OP_REQUIRES_OK(context, FirstOutOfRange(context, triangles.flat<int32_t>().data(),
                                                 triangles.NumElements(), vertex_count, &bad));
    OP_REQUIRES(context, bad < 0, InvalidTriangleError(bad / 3, vertex_count));
    OP_REQUIRES_OK(context, FirstOutOfRange(context, ids.flat<int32_t>().data(),
                                                 ids.NumElements(), triangle_count, &bad));
    OP_REQUIRES(context, bad < 0,
                InvalidArgument("triangle_ids holds a value outside [0, ", triangle_count,
                                ") at flat index ", bad));
    Tensor* d_clip = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, clip.shape(), &d_clip));
    Tensor sums;
    OP_REQUIRES_OK(context, context->allocate_temp(::tensorflow::DT_FLOAT,
                                                   TensorShape({2, batch, vertex_count, 4}), &sums));
    GradientParams params;
    params.clip = clip.flat<float>().data();
    params.triangles = triangles.flat<int32_t>().data();
    params.projected = AsProjected(&projected);
    params.triangle_ids = ids.flat<int32_t>().data();
    params.mask = context->input(4).flat<float>().data();
    params.d_barycentrics = d_bary.NumElements() > 0 ? d_bary.flat<float>().data() : nullptr;
    params.d_depth = d_depth.NumElements() > 0 ? d_depth.flat<float>().data() : nullptr;
    params.batch = batch;
    params.vertex_count = vertex_count;
    params.width = width;
    params.height = height;
    params.d_projected = sums.flat<float>().data();
    params.d_clip_slow = params.d_projected + 4 * batch * vertex_count;
    params.d_clip = d_clip->flat<float>().data();
    const char* error = RasterizeGradientCuda(params, Stream(context));
    OP_REQUIRES(context, error == nullptr,
                ::tensorflow::errors::Internal("RasterizeGradientCuda: ", error));
  }
};
#endif  // GOOGLE_CUDA

}  // namespace

REGISTER_OP("RasterizeClipTriangles")
    .Input("clip_vertices: float32")
    .Input("triangles: int32")
    .Attr("image_height: int")
    .Attr("image_width: int")
    .Attr("cull_backfaces: bool = false")
    .Output("triangle_ids: int32")
    .Output("mask: float32")
    .Output("barycentrics: float32")
    .Output("depth: float32")
    .Output("projected: int8")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle clip, triangles;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &clip));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &triangles));
      DimensionHandle unused;
      TF_RETURN_IF_ERROR(c->WithValue(c->Dim(clip, 2), 4, &unused));
      TF_RETURN_IF_ERROR(c->WithValue(c->Dim(triangles, 1), 3, &unused));
      int height, width;
      TF_RETURN_IF_ERROR(c->GetAttr("image_height", &height));
      TF_RETURN_IF_ERROR(c->GetAttr("image_width", &width));
      if (height <= 0 || width <= 0) {
        return InvalidArgument("image size must be positive, got ", height,
                               "x", width);
      }
      const DimensionHandle batch = c->Dim(clip, 0);
      const ShapeHandle image = c->MakeShape({batch, height, width});
      c->set_output(0, image);
      c->set_output(1, image);
      c->set_output(2, c->MakeShape({batch, height, width, 3}));
      c->set_output(3, image);
      c->set_output(4, c->MakeShape({batch, c->UnknownDim()}));
      return ::tensorflow::OkStatus();
    })
    .Doc(R"doc(
Rasterizes a batch of clip-space meshes sharing one triangle list.

clip_vertices: [batch, vertices, 4] clip-space x, y, z, w (NDC = xyz / w,
  x right, y up, smaller z closer).
triangles: [triangles, 3] vertex indices; counter-clockwise in NDC is front.
triangle_ids: [batch, height, width] id of the triangle seen at each pixel,
  0 where nothing is (use mask). Row 0 is the top of the image (NDC y = +1).
mask: [batch, height, width] 1 where a triangle covers the pixel centre, else 0.
barycentrics: [batch, height, width, 3] perspective-correct barycentric
  coordinates of the pixel centre in its triangle, 0 where uncovered.
depth: [batch, height, width] NDC z, 1 where uncovered.
projected: the vertices in pixel space, for RasterizeClipTrianglesGrad only.
)doc");

REGISTER_OP("RasterizeClipTrianglesGrad")
    .Input("clip_vertices: float32")
    .Input("triangles: int32")
    .Input("projected: int8")
    .Input("triangle_ids: int32")
    .Input("mask: float32")
    .Input("d_barycentrics: float32")
    .Input("d_depth: float32")
    .Output("d_clip_vertices: float32")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      return ::tensorflow::OkStatus();
    })
    .Doc(R"doc(
Gradient of RasterizeClipTriangles' barycentrics and depth with respect to the
clip-space vertices, with each pixel's triangle held fixed. d_barycentrics
[batch, height, width, 3] and d_depth [batch, height, width] may each be an
empty tensor, meaning zeros.
)doc");

REGISTER_KERNEL_BUILDER(Name("RasterizeClipTriangles").Device(DEVICE_CPU),
                        RasterizeClipTrianglesOp);
REGISTER_KERNEL_BUILDER(Name("RasterizeClipTrianglesGrad").Device(DEVICE_CPU),
                        RasterizeClipTrianglesGradOp);
#if GOOGLE_CUDA
REGISTER_KERNEL_BUILDER(Name("RasterizeClipTriangles").Device(DEVICE_GPU),
                        RasterizeClipTrianglesGpuOp);
REGISTER_KERNEL_BUILDER(Name("RasterizeClipTrianglesGrad").Device(DEVICE_GPU),
                        RasterizeClipTrianglesGradGpuOp);
#endif

}  // namespace face3d
