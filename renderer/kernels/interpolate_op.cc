// TensorFlow ops InterpolateAttributes and InterpolateAttributesGrad.
//
// Shape and index checks live here; the arithmetic lives in
// interpolate_core.cc. The forward op splits the pixels of the whole batch
// over TensorFlow's intra-op CPU thread pool; the gradient op gives each
// thread whole images, since an image's pixels add into its vertices. With
// GOOGLE_CUDA the GPU kernels (interpolate_cuda.cu) make the same checks, the
// index scans on the device.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>

#include "cpu_op_util.h"
#include "interpolate_core.h"
#include "rasterize_core.h"
#if GOOGLE_CUDA
#include "gpu_op_util.h"
#include "interpolate_cuda.h"
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

using cpu_op::RunSharded;

// The inputs shared by both ops, checked, and the image size they imply.
struct Inputs {
  int64_t batch, vertex_count, channels, triangle_count, height, width;
  int64_t pixels() const { return height * width; }
};

// Shapes only (no element is read: on a GPU they are device memory).
::tensorflow::Status CheckShapes(const Tensor& attributes,
                                 const Tensor& triangles,
                                 const Tensor& triangle_ids,
                                 const Tensor& barycentrics, Inputs* in) {
  if (attributes.dims() != 3) {
    return InvalidArgument("attributes must have shape [batch, vertices, channels], got ",
                           attributes.shape().DebugString());
  }
  if (triangles.dims() != 2 || triangles.dim_size(1) != 3) {
    return InvalidArgument("triangles must have shape [triangles, 3], got ",
                           triangles.shape().DebugString());
  }
  if (triangle_ids.dims() != 3) {
    return InvalidArgument("triangle_ids must have shape [batch, height, width], got ",
                           triangle_ids.shape().DebugString());
  }
  in->batch = attributes.dim_size(0);
  in->vertex_count = attributes.dim_size(1);
  in->channels = attributes.dim_size(2);
  in->triangle_count = triangles.dim_size(0);
  in->height = triangle_ids.dim_size(1);
  in->width = triangle_ids.dim_size(2);
  if (triangle_ids.dim_size(0) != in->batch) {
    return InvalidArgument("triangle_ids has batch ", triangle_ids.dim_size(0),
                           ", attributes ", in->batch);
  }
  // Compared dimension by dimension: building the expected shape could overflow.
  if (barycentrics.dims() != 4 || barycentrics.dim_size(0) != in->batch ||
      barycentrics.dim_size(1) != in->height || barycentrics.dim_size(2) != in->width ||
      barycentrics.dim_size(3) != 3) {
    return InvalidArgument("barycentrics must have shape [", in->batch, ", ",
                           in->height, ", ", in->width, ", 3], got ",
                           barycentrics.shape().DebugString());
  }
  if (in->channels > std::numeric_limits<int32_t>::max() ||
      in->vertex_count > std::numeric_limits<int32_t>::max() ||
      in->triangle_count > std::numeric_limits<int32_t>::max()) {
    return InvalidArgument("attributes or triangles too large for int32 indices");
  }
  const int64_t pixel_count = in->batch * in->pixels();
  if (pixel_count > 0 && (in->vertex_count == 0 || in->triangle_count == 0)) {
    return InvalidArgument("empty mesh: ", in->vertex_count, " vertices, ",
                           in->triangle_count, " triangles");
  }
  return ::tensorflow::OkStatus();
}

::tensorflow::Status TriangleError(int64_t bad_triangle, const Inputs& in) {
  return InvalidArgument("triangle ", bad_triangle, " has a vertex index outside [0, ",
                         in.vertex_count, ")");
}

::tensorflow::Status TriangleIdError(int32_t value, const Inputs& in) {
  return InvalidArgument("triangle_ids holds ", value, ", outside [0, ", in.triangle_count, ")");
}

// Shapes and indices, on the host.
::tensorflow::Status CheckInputs(const Tensor& attributes,
                                 const Tensor& triangles,
                                 const Tensor& triangle_ids,
                                 const Tensor& barycentrics, Inputs* in) {
  TF_RETURN_IF_ERROR(CheckShapes(attributes, triangles, triangle_ids, barycentrics, in));
  const int64_t pixel_count = in->batch * in->pixels();
  const int64_t bad_triangle = FindInvalidTriangle(
      triangles.flat<int32_t>().data(), in->triangle_count, in->vertex_count);
  if (bad_triangle >= 0) return TriangleError(bad_triangle, *in);
  const int32_t* ids = triangle_ids.flat<int32_t>().data();
  const int64_t bad_pixel = FindInvalidTriangleId(ids, pixel_count, in->triangle_count);
  if (bad_pixel >= 0) return TriangleIdError(ids[bad_pixel], *in);
  return ::tensorflow::OkStatus();
}

InterpolateParams ImageParams(const Inputs& in, const Tensor& attributes,
                              const Tensor& triangles, const Tensor& triangle_ids,
                              const Tensor& barycentrics, int64_t b) {
  return {attributes.flat<float>().data() + b * in.vertex_count * in.channels,
          triangles.flat<int32_t>().data(),
          triangle_ids.flat<int32_t>().data() + b * in.pixels(),
          barycentrics.flat<float>().data() + 3 * b * in.pixels(),
          in.vertex_count,
          in.pixels(),
          static_cast<int>(in.channels)};
}

class InterpolateAttributesOp : public OpKernel {
 public:
  explicit InterpolateAttributesOp(OpKernelConstruction* context)
      : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& attributes = context->input(0);
    const Tensor& triangles = context->input(1);
    const Tensor& triangle_ids = context->input(2);
    const Tensor& barycentrics = context->input(3);
    Inputs in;
    OP_REQUIRES_OK(context, CheckInputs(attributes, triangles, triangle_ids,
                                        barycentrics, &in));
    TensorShape output_shape;
    OP_REQUIRES_OK(context, TensorShape::BuildTensorShape(
                                {in.batch, in.height, in.width, in.channels},
                                &output_shape));
    Tensor* output_tensor = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, output_shape, &output_tensor));
    if (output_tensor->NumElements() == 0) return;
    float* output = output_tensor->flat<float>().data();
    const int64_t pixels = in.pixels();
    // Units are rows of the whole batch; a row never spans two images.
    RunSharded(context, in.batch * in.height, 8 * in.width * (in.channels + 3),
               [&](int64_t begin, int64_t end) {
                 for (int64_t row = begin; row < end; ++row) {
                   const int64_t b = row / in.height;
                   const int64_t first = (row % in.height) * in.width;
                   InterpolatePixels(ImageParams(in, attributes, triangles,
                                                 triangle_ids, barycentrics, b),
                                     first, first + in.width,
                                     output + in.channels * pixels * b);
                 }
               });
  }
};

class InterpolateAttributesGradOp : public OpKernel {
 public:
  explicit InterpolateAttributesGradOp(OpKernelConstruction* context)
      : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& attributes = context->input(0);
    const Tensor& triangles = context->input(1);
    const Tensor& triangle_ids = context->input(2);
    const Tensor& barycentrics = context->input(3);
    const Tensor& d_output = context->input(4);
    Inputs in;
    OP_REQUIRES_OK(context, CheckInputs(attributes, triangles, triangle_ids,
                                        barycentrics, &in));
    TensorShape output_shape;
    OP_REQUIRES_OK(context, TensorShape::BuildTensorShape(
                                {in.batch, in.height, in.width, in.channels},
                                &output_shape));
    OP_REQUIRES(context, d_output.shape() == output_shape,
                InvalidArgument("d_output must have shape ", output_shape.DebugString(),
                                ", got ", d_output.shape().DebugString()));
    Tensor* d_attributes_tensor = nullptr;
    Tensor* d_barycentrics_tensor = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, attributes.shape(),
                                                     &d_attributes_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(1, barycentrics.shape(),
                                                     &d_barycentrics_tensor));
    float* d_attributes = d_attributes_tensor->flat<float>().data();
    float* d_barycentrics = d_barycentrics_tensor->flat<float>().data();
    if (in.pixels() * in.channels == 0) {
      // No pixel adds anything (d_barycentrics is empty too, or has no channel
      // to sum over).
      std::fill(d_attributes, d_attributes + attributes.NumElements(), 0.0f);
      std::fill(d_barycentrics, d_barycentrics + barycentrics.NumElements(), 0.0f);
      return;
    }
    const float* d_out = d_output.flat<float>().data();
    const int64_t pixels = in.pixels();
    // Each image's scratch (InterpolateGradientScratchFloats: the same for
    // every image of the batch).
    const int64_t scratch_floats = InterpolateGradientScratchFloats(
        ImageParams(in, attributes, triangles, triangle_ids, barycentrics, 0));
    TensorShape scratch_shape;
    OP_REQUIRES_OK(context, TensorShape::BuildTensorShape({in.batch, scratch_floats},
                                                          &scratch_shape));
    Tensor scratch_tensor;
    OP_REQUIRES_OK(context, context->allocate_temp(::tensorflow::DT_FLOAT, scratch_shape,
                                                   &scratch_tensor));
    float* scratch = scratch_tensor.flat<float>().data();
    RunSharded(context, in.batch, 16 * pixels * (in.channels + 3),
               [&](int64_t begin, int64_t end) {
                 for (int64_t b = begin; b < end; ++b) {
                   InterpolateGradient(
                       ImageParams(in, attributes, triangles, triangle_ids,
                                   barycentrics, b),
                       d_out + in.channels * pixels * b,
                       d_barycentrics + 3 * pixels * b,
                       d_attributes + in.vertex_count * in.channels * b,
                       scratch + scratch_floats * b);
                 }
               });
  }
};

#if GOOGLE_CUDA
using ::tensorflow::DEVICE_GPU;

// Shapes on the host, indices on the device (the messages of the CPU kernel).
::tensorflow::Status CheckInputsOnGpu(OpKernelContext* context, const Tensor& attributes,
                                      const Tensor& triangles, const Tensor& triangle_ids,
                                      const Tensor& barycentrics, Inputs* in) {
  TF_RETURN_IF_ERROR(CheckShapes(attributes, triangles, triangle_ids, barycentrics, in));
  int64_t bad = -1;
  TF_RETURN_IF_ERROR(gpu_op::FirstOutOfRange(context, triangles.flat<int32_t>().data(),
                                             triangles.NumElements(), in->vertex_count, &bad));
  if (bad >= 0) return TriangleError(bad / 3, *in);
  const int32_t* ids = triangle_ids.flat<int32_t>().data();
  TF_RETURN_IF_ERROR(gpu_op::FirstOutOfRange(context, ids, in->batch * in->pixels(),
                                             in->triangle_count, &bad));
  if (bad >= 0) {
    int32_t value = 0;
    TF_RETURN_IF_ERROR(gpu_op::LaunchStatus(
        "ReadInt32Cuda", ReadInt32Cuda(ids + bad, gpu_op::Stream(context), &value)));
    return TriangleIdError(value, *in);
  }
  return ::tensorflow::OkStatus();
}

InterpolateCudaParams BatchParams(const Inputs& in, const Tensor& attributes,
                                  const Tensor& triangles, const Tensor& triangle_ids,
                                  const Tensor& barycentrics) {
  InterpolateCudaParams p;
  p.attributes = attributes.flat<float>().data();
  p.triangles = triangles.flat<int32_t>().data();
  p.triangle_ids = triangle_ids.flat<int32_t>().data();
  p.barycentrics = barycentrics.flat<float>().data();
  p.batch = in.batch;
  p.vertex_count = in.vertex_count;
  p.pixel_count = in.pixels();
  p.channels = static_cast<int>(in.channels);
  return p;
}

class InterpolateAttributesGpuOp : public OpKernel {
 public:
  explicit InterpolateAttributesGpuOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& attributes = context->input(0);
    const Tensor& triangles = context->input(1);
    const Tensor& triangle_ids = context->input(2);
    const Tensor& barycentrics = context->input(3);
    Inputs in;
    OP_REQUIRES_OK(context, CheckInputsOnGpu(context, attributes, triangles, triangle_ids,
                                             barycentrics, &in));
    TensorShape output_shape;
    OP_REQUIRES_OK(context, TensorShape::BuildTensorShape(
                                {in.batch, in.height, in.width, in.channels}, &output_shape));
    Tensor* output = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, output_shape, &output));
    if (output->NumElements() == 0) return;
    OP_REQUIRES_OK(context, gpu_op::LaunchStatus(
                                "InterpolateCuda",
                                InterpolateCuda(BatchParams(in, attributes, triangles,
                                                            triangle_ids, barycentrics),
                                                output->flat<float>().data(),
                                                gpu_op::Stream(context))));
  }
};

class InterpolateAttributesGradGpuOp : public OpKernel {
 public:
  explicit InterpolateAttributesGradGpuOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& attributes = context->input(0);
    const Tensor& triangles = context->input(1);
    const Tensor& triangle_ids = context->input(2);
    const Tensor& barycentrics = context->input(3);
    const Tensor& d_output = context->input(4);
    Inputs in;
    OP_REQUIRES_OK(context, CheckInputsOnGpu(context, attributes, triangles, triangle_ids,
                                             barycentrics, &in));
    TensorShape output_shape;
    OP_REQUIRES_OK(context, TensorShape::BuildTensorShape(
                                {in.batch, in.height, in.width, in.channels}, &output_shape));
    OP_REQUIRES(context, d_output.shape() == output_shape,
                InvalidArgument("d_output must have shape ", output_shape.DebugString(),
                                ", got ", d_output.shape().DebugString()));
    Tensor* d_attributes = nullptr;
    Tensor* d_barycentrics = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, attributes.shape(), &d_attributes));
    OP_REQUIRES_OK(context, context->allocate_output(1, barycentrics.shape(), &d_barycentrics));
    OP_REQUIRES_OK(context, gpu_op::LaunchStatus(
                                "InterpolateGradientCuda",
                                InterpolateGradientCuda(
                                    BatchParams(in, attributes, triangles, triangle_ids,
                                                barycentrics),
                                    d_output.flat<float>().data(),
                                    d_barycentrics->flat<float>().data(),
                                    d_attributes->flat<float>().data(), gpu_op::Stream(context))));
  }
};
#endif  // GOOGLE_CUDA

::tensorflow::Status InterpolateShape(InferenceContext* c) {
  ShapeHandle attributes, triangles, ids, barycentrics;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &attributes));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &triangles));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 3, &ids));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 4, &barycentrics));
  DimensionHandle unused;
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(triangles, 1), 3, &unused));
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(barycentrics, 3), 3, &unused));
  DimensionHandle batch;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(attributes, 0), c->Dim(ids, 0), &batch));
  c->set_output(0, c->MakeShape({batch, c->Dim(ids, 1), c->Dim(ids, 2),
                                 c->Dim(attributes, 2)}));
  return ::tensorflow::OkStatus();
}

}  // namespace

REGISTER_OP("InterpolateAttributes")
    .Input("attributes: float32")
    .Input("triangles: int32")
    .Input("triangle_ids: int32")
    .Input("barycentrics: float32")
    .Output("output: float32")
    .SetShapeFn(InterpolateShape)
    .Doc(R"doc(
Interpolates per-vertex attributes at every pixel of rasterized images.

attributes: [batch, vertices, channels] per-vertex values.
triangles: [triangles, 3] vertex indices, shared by the batch.
triangle_ids: [batch, height, width] triangle of each pixel (rasterizer output).
barycentrics: [batch, height, width, 3] (rasterizer output; 0 on background).
output: [batch, height, width, channels], sum over k of barycentrics[k] times
  the attributes of vertex triangles[triangle_id][k].
)doc");

REGISTER_OP("InterpolateAttributesGrad")
    .Input("attributes: float32")
    .Input("triangles: int32")
    .Input("triangle_ids: int32")
    .Input("barycentrics: float32")
    .Input("d_output: float32")
    .Output("d_attributes: float32")
    .Output("d_barycentrics: float32")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->input(3));
      return ::tensorflow::OkStatus();
    })
    .Doc(R"doc(
Gradient of InterpolateAttributes with respect to attributes and barycentrics,
given d_output [batch, height, width, channels].
)doc");

REGISTER_KERNEL_BUILDER(Name("InterpolateAttributes").Device(DEVICE_CPU),
                        InterpolateAttributesOp);
REGISTER_KERNEL_BUILDER(Name("InterpolateAttributesGrad").Device(DEVICE_CPU),
                        InterpolateAttributesGradOp);
#if GOOGLE_CUDA
REGISTER_KERNEL_BUILDER(Name("InterpolateAttributes").Device(DEVICE_GPU),
                        InterpolateAttributesGpuOp);
REGISTER_KERNEL_BUILDER(Name("InterpolateAttributesGrad").Device(DEVICE_GPU),
                        InterpolateAttributesGradGpuOp);
#endif

}  // namespace face3d
