// TensorFlow ops BilinearSample and BilinearSampleGrad.
//
// Shape checks live here; the arithmetic lives in sample_core.h / .cc. The
// forward op splits the samples of the whole batch over TensorFlow's intra-op
// CPU thread pool; the gradient op gives each thread whole images, since an
// image's samples add into its pixels: no two threads write the same image,
// and each image's sums run in sample order, so the result does not depend on
// the thread count. Positions are never an error: +-inf clamps to the border
// and a NaN coordinate gives a NaN sample (sample_core.h). CPU kernels only:
// in a GPU session the placer puts these ops on the CPU.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>

#include "cpu_op_util.h"
#include "sample_core.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace face3d {
namespace {

using ::tensorflow::DEVICE_CPU;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Status;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::errors::InvalidArgument;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

using cpu_op::RunSharded;

// Pixel coordinates up to this size are exact as floats (W - 1 and W - 2 too).
constexpr int64_t kMaxSide = int64_t{1} << 24;

Status CheckInputs(const Tensor& images, const Tensor& positions, SampleParams* p) {
  if (images.dims() != 4) {
    return InvalidArgument("images must have shape [batch, height, width, channels], got ",
                           images.shape().DebugString());
  }
  if (positions.dims() != 3 || positions.dim_size(2) != 2) {
    return InvalidArgument("positions must have shape [batch, samples, 2], got ",
                           positions.shape().DebugString());
  }
  if (positions.dim_size(0) != images.dim_size(0)) {
    return InvalidArgument("positions has batch ", positions.dim_size(0), ", images ",
                           images.dim_size(0));
  }
  const int64_t height = images.dim_size(1), width = images.dim_size(2);
  if (height < 2 || width < 2) {
    return InvalidArgument("images must be at least 2 x 2 pixels, got ", height, " x ", width);
  }
  if (height > kMaxSide || width > kMaxSide) {
    return InvalidArgument("images of ", height, " x ", width, " pixels: sides above ", kMaxSide,
                           " are not exact as float positions");
  }
  if (images.dim_size(3) > std::numeric_limits<int32_t>::max()) {
    return InvalidArgument("images have too many channels: ", images.dim_size(3));
  }
  p->images = images.flat<float>().data();
  p->positions = positions.flat<float>().data();
  p->batch = images.dim_size(0);
  p->samples = positions.dim_size(1);
  p->height = height;
  p->width = width;
  p->channels = static_cast<int>(images.dim_size(3));
  return ::tensorflow::OkStatus();
}

Status OutputShape(const SampleParams& p, TensorShape* shape) {
  return TensorShape::BuildTensorShape({p.batch, p.samples, p.channels}, shape);
}

class BilinearSampleOp : public OpKernel {
 public:
  explicit BilinearSampleOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    SampleParams p;
    OP_REQUIRES_OK(context, CheckInputs(context->input(0), context->input(1), &p));
    TensorShape output_shape;
    OP_REQUIRES_OK(context, OutputShape(p, &output_shape));
    Tensor* output_tensor = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, output_shape, &output_tensor));
    if (output_tensor->NumElements() == 0) return;
    float* output = output_tensor->flat<float>().data();
    RunSharded(context, p.batch * p.samples, 30 + 12 * int64_t{p.channels},
               [&](int64_t begin, int64_t end) { BilinearSampleForward(p, begin, end, output); });
  }
};

class BilinearSampleGradOp : public OpKernel {
 public:
  explicit BilinearSampleGradOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& images = context->input(0);
    const Tensor& positions = context->input(1);
    const Tensor& d_output = context->input(2);
    SampleParams p;
    OP_REQUIRES_OK(context, CheckInputs(images, positions, &p));
    TensorShape output_shape;
    OP_REQUIRES_OK(context, OutputShape(p, &output_shape));
    OP_REQUIRES(context, d_output.shape() == output_shape,
                InvalidArgument("d_output must have shape ", output_shape.DebugString(),
                                ", got ", d_output.shape().DebugString()));
    Tensor* d_images_tensor = nullptr;
    Tensor* d_positions_tensor = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, images.shape(), &d_images_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(1, positions.shape(), &d_positions_tensor));
    float* d_images = d_images_tensor->flat<float>().data();
    float* d_positions = d_positions_tensor->flat<float>().data();
    const float* d_out = d_output.flat<float>().data();
    const int64_t image_size = p.pixels() * p.channels;
    // One unit per image: it zeroes its image's gradient, then adds its samples in order.
    RunSharded(context, p.batch, image_size + p.samples * (40 + 24 * int64_t{p.channels}),
               [&](int64_t begin, int64_t end) {
                 for (int64_t b = begin; b < end; ++b) {
                   std::fill(d_images + b * image_size, d_images + (b + 1) * image_size, 0.0f);
                   BilinearSampleBackward(p, d_out, b * p.samples, (b + 1) * p.samples,
                                          d_images, d_positions);
                 }
               });
  }
};

Status SampleShape(InferenceContext* c) {
  ShapeHandle images, positions;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &images));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 3, &positions));
  DimensionHandle unused, batch;
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(positions, 2), 2, &unused));
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(images, 0), c->Dim(positions, 0), &batch));
  c->set_output(0, c->MakeShape({batch, c->Dim(positions, 1), c->Dim(images, 3)}));
  return ::tensorflow::OkStatus();
}

}  // namespace

REGISTER_OP("BilinearSample")
    .Input("images: float32")
    .Input("positions: float32")
    .Output("output: float32")
    .SetShapeFn(SampleShape)
    .Doc(R"doc(
Bilinear samples of images at continuous pixel positions, clamped to the image.

images: [batch, height, width, channels], height and width at least 2; pixel
  (r, c) is centred at (x, y) = (c + 0.5, r + 0.5).
positions: [batch, samples, 2] (x, y) pixels, x right, y down. +-inf clamps to
  the border; a NaN coordinate gives NaN in every channel of that sample.
output: [batch, samples, channels]; the last row and column interpolate from
  their upper / left neighbour with weight 1.
)doc");

REGISTER_OP("BilinearSampleGrad")
    .Input("images: float32")
    .Input("positions: float32")
    .Input("d_output: float32")
    .Output("d_images: float32")
    .Output("d_positions: float32")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->input(1));
      return ::tensorflow::OkStatus();
    })
    .Doc(R"doc(
Gradient of BilinearSample with respect to images and positions, given d_output
[batch, samples, channels]. The position gradient is zero where a coordinate is
clamped (outside [0.5, size - 0.5]) and NaN for a NaN sample, which adds
nothing to d_images.
)doc");

REGISTER_KERNEL_BUILDER(Name("BilinearSample").Device(DEVICE_CPU), BilinearSampleOp);
REGISTER_KERNEL_BUILDER(Name("BilinearSampleGrad").Device(DEVICE_CPU), BilinearSampleGradOp);

}  // namespace face3d
