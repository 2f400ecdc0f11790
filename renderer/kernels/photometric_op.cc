// TensorFlow ops PhotometricLoss and PhotometricLossGrad.
//
// Shape checks live here; the arithmetic lives in photometric_core.cc. The
// forward op splits the chunks of kPhotometricChunk pixels of the whole batch
// over TensorFlow's intra-op CPU thread pool (each chunk's sums into a scratch
// of its own), then adds each image's chunks in order; the gradient op splits
// the rows of the whole batch, writing its gradients over the buffers of
// renders and mask where no other op holds them (a pixel's values are read
// before its gradient is written). With GOOGLE_CUDA the GPU kernels
// (photometric_cuda.cu) make the same checks (all on shapes and attributes).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cpu_op_util.h"
#include "photometric_core.h"
#if GOOGLE_CUDA
#include "gpu_op_util.h"
#include "photometric_cuda.h"
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

// The sizes the inputs imply.
struct PhotometricInputs {
  int64_t batch, height, width, channels;
  int64_t pixels() const { return height * width; }
};

// images [B, H, W, C], renders of the same shape, mask [B, H, W, 1]. Shapes
// only (no element is read: on a GPU they are device memory).
::tensorflow::Status CheckPhotometricShapes(const Tensor& images, const Tensor& renders,
                                            const Tensor& mask, PhotometricInputs* in) {
  if (images.dims() != 4) {
    return InvalidArgument("images must have shape [batch, height, width, channels], got ",
                           images.shape().DebugString());
  }
  if (renders.shape() != images.shape()) {
    return InvalidArgument("renders must have the shape of images ", images.shape().DebugString(),
                           ", got ", renders.shape().DebugString());
  }
  in->batch = images.dim_size(0);
  in->height = images.dim_size(1);
  in->width = images.dim_size(2);
  in->channels = images.dim_size(3);
  // Compared dimension by dimension: building the expected shape could overflow.
  if (mask.dims() != 4 || mask.dim_size(0) != in->batch || mask.dim_size(1) != in->height ||
      mask.dim_size(2) != in->width || mask.dim_size(3) != 1) {
    return InvalidArgument("mask must have shape [", in->batch, ", ", in->height, ", ", in->width,
                           ", 1], got ", mask.shape().DebugString());
  }
  return ::tensorflow::OkStatus();
}

// per_image, mask_total and d_per_image of the gradient op: [batch] each.
::tensorflow::Status CheckPerImageShape(const Tensor& tensor, const char* name,
                                        const PhotometricInputs& in) {
  if (tensor.dims() != 1 || tensor.dim_size(0) != in.batch) {
    return InvalidArgument(name, " must have shape [", in.batch, "], got ",
                           tensor.shape().DebugString());
  }
  return ::tensorflow::OkStatus();
}

::tensorflow::Status CheckPhotometricGradientInputs(const Tensor& per_image,
                                                    const Tensor& mask_total,
                                                    const Tensor& d_per_image,
                                                    const PhotometricInputs& in) {
  TF_RETURN_IF_ERROR(CheckPerImageShape(per_image, "per_image", in));
  TF_RETURN_IF_ERROR(CheckPerImageShape(mask_total, "mask_total", in));
  return CheckPerImageShape(d_per_image, "d_per_image", in);
}

::tensorflow::Status GetPhotometricEpsilon(OpKernelConstruction* context, float* epsilon) {
  TF_RETURN_IF_ERROR(context->GetAttr("epsilon", epsilon));
  if (!(*epsilon > 0.0f) || !std::isfinite(*epsilon)) {
    return InvalidArgument("epsilon must be positive and finite, got ", *epsilon);
  }
  return ::tensorflow::OkStatus();
}

PhotometricParams PhotometricImageParams(const PhotometricInputs& in, const Tensor& images,
                                         const Tensor& renders, const Tensor& mask, float epsilon,
                                         int64_t b) {
  const int64_t values = in.pixels() * in.channels;
  return {images.flat<float>().data() + values * b, renders.flat<float>().data() + values * b,
          mask.flat<float>().data() + in.pixels() * b, in.pixels(), in.channels, epsilon};
}

class PhotometricLossOp : public OpKernel {
 public:
  explicit PhotometricLossOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, GetPhotometricEpsilon(context, &epsilon_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& images = context->input(0);
    const Tensor& renders = context->input(1);
    const Tensor& mask = context->input(2);
    PhotometricInputs in;
    OP_REQUIRES_OK(context, CheckPhotometricShapes(images, renders, mask, &in));
    Tensor *per_image_tensor = nullptr, *mask_total_tensor = nullptr;
    const TensorShape per_image_shape({in.batch});
    OP_REQUIRES_OK(context, context->allocate_output(0, per_image_shape, &per_image_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(1, per_image_shape, &mask_total_tensor));
    float* per_image = per_image_tensor->flat<float>().data();
    float* mask_total = mask_total_tensor->flat<float>().data();
    if (in.batch == 0) return;
    if (in.pixels() == 0) {
      // No pixel: nothing on the mask, so every loss is 0.
      std::fill(per_image, per_image + in.batch, 0.0f);
      std::fill(mask_total, mask_total + in.batch, 0.0f);
      return;
    }
    const int64_t chunks = PhotometricChunks(in.pixels());
    TensorShape scratch_shape;
    OP_REQUIRES_OK(context, TensorShape::BuildTensorShape({in.batch, chunks, 2}, &scratch_shape));
    Tensor scratch;
    OP_REQUIRES_OK(context,
                   context->allocate_temp(::tensorflow::DT_DOUBLE, scratch_shape, &scratch));
    double* sums = scratch.flat<double>().data();
    // Units are chunks of the whole batch; a shard takes each image's run of
    // its chunks in one call.
    RunSharded(context, in.batch * chunks, kPhotometricChunk * (6 * in.channels + 30),
               [&](int64_t begin, int64_t end) {
                 for (int64_t unit = begin; unit < end;) {
                   const int64_t b = unit / chunks;
                   const int64_t last = std::min(end, (b + 1) * chunks);
                   PhotometricChunkSums(
                       PhotometricImageParams(in, images, renders, mask, epsilon_, b),
                       unit - b * chunks, last - b * chunks, sums + 2 * chunks * b);
                   unit = last;
                 }
               });
    for (int64_t b = 0; b < in.batch; ++b) {
      ImageLossFromChunks(in.pixels(), sums + 2 * chunks * b, per_image + b, mask_total + b);
    }
  }

 private:
  float epsilon_;
};

class PhotometricLossGradOp : public OpKernel {
 public:
  explicit PhotometricLossGradOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, GetPhotometricEpsilon(context, &epsilon_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& images = context->input(0);
    const Tensor& renders = context->input(1);
    const Tensor& mask = context->input(2);
    const Tensor& per_image_tensor = context->input(3);
    const Tensor& mask_total_tensor = context->input(4);
    const Tensor& d_per_image_tensor = context->input(5);
    PhotometricInputs in;
    OP_REQUIRES_OK(context, CheckPhotometricShapes(images, renders, mask, &in));
    OP_REQUIRES_OK(context, CheckPhotometricGradientInputs(per_image_tensor, mask_total_tensor,
                                                           d_per_image_tensor, in));
    // The outputs take the buffers of renders (or images) and mask where no other op holds
    // them (TensorFlow checks): each pixel's values are read before its gradient is written.
    Tensor *d_renders_tensor = nullptr, *d_mask_tensor = nullptr;
    OP_REQUIRES_OK(context, context->forward_input_or_allocate_output({1, 0}, 0, renders.shape(),
                                                                      &d_renders_tensor));
    OP_REQUIRES_OK(context,
                   context->forward_input_or_allocate_output({2}, 1, mask.shape(), &d_mask_tensor));
    if (in.batch * in.pixels() == 0) return;  // both outputs are empty
    const float* per_image = per_image_tensor.flat<float>().data();
    const float* mask_total = mask_total_tensor.flat<float>().data();
    const float* d_per_image = d_per_image_tensor.flat<float>().data();
    float* d_renders = d_renders_tensor->flat<float>().data();
    float* d_mask = d_mask_tensor->flat<float>().data();
    const int64_t pixels = in.pixels();
    // Units are rows of the whole batch; a row never spans two images.
    RunSharded(context, in.batch * in.height, in.width * (8 * in.channels + 40),
               [&](int64_t begin, int64_t end) {
                 for (int64_t row = begin; row < end; ++row) {
                   const int64_t b = row / in.height;
                   const int64_t first = (row % in.height) * in.width;
                   PhotometricGradient(
                       PhotometricImageParams(in, images, renders, mask, epsilon_, b), first,
                       first + in.width, per_image[b], mask_total[b], d_per_image[b],
                       d_renders + in.channels * pixels * b, d_mask + pixels * b);
                 }
               });
  }

 private:
  float epsilon_;
};

#if GOOGLE_CUDA
using ::tensorflow::DEVICE_GPU;

PhotometricCudaParams PhotometricBatchParams(const PhotometricInputs& in, const Tensor& images,
                                             const Tensor& renders, const Tensor& mask,
                                             float epsilon) {
  PhotometricCudaParams p;
  p.images = images.flat<float>().data();
  p.renders = renders.flat<float>().data();
  p.mask = mask.flat<float>().data();
  p.batch = in.batch;
  p.pixel_count = in.pixels();
  p.channels = in.channels;
  p.epsilon = epsilon;
  return p;
}

class PhotometricLossGpuOp : public OpKernel {
 public:
  explicit PhotometricLossGpuOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, GetPhotometricEpsilon(context, &epsilon_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& images = context->input(0);
    const Tensor& renders = context->input(1);
    const Tensor& mask = context->input(2);
    PhotometricInputs in;
    OP_REQUIRES_OK(context, CheckPhotometricShapes(images, renders, mask, &in));
    Tensor *per_image = nullptr, *mask_total = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, TensorShape({in.batch}), &per_image));
    OP_REQUIRES_OK(context, context->allocate_output(1, TensorShape({in.batch}), &mask_total));
    const PhotometricCudaParams params =
        PhotometricBatchParams(in, images, renders, mask, epsilon_);
    TensorShape scratch_shape;
    OP_REQUIRES_OK(context, TensorShape::BuildTensorShape(
                                {std::max<int64_t>(1, PhotometricCudaScratchBytes(params))},
                                &scratch_shape));
    Tensor scratch;
    OP_REQUIRES_OK(context,
                   context->allocate_temp(::tensorflow::DT_UINT8, scratch_shape, &scratch));
    OP_REQUIRES_OK(context, gpu_op::LaunchStatus(
                                "PhotometricLossCuda",
                                PhotometricLossCuda(params, per_image->flat<float>().data(),
                                                    mask_total->flat<float>().data(),
                                                    scratch.flat<uint8_t>().data(),
                                                    gpu_op::Stream(context))));
  }

 private:
  float epsilon_;
};

class PhotometricLossGradGpuOp : public OpKernel {
 public:
  explicit PhotometricLossGradGpuOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, GetPhotometricEpsilon(context, &epsilon_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& images = context->input(0);
    const Tensor& renders = context->input(1);
    const Tensor& mask = context->input(2);
    const Tensor& per_image = context->input(3);
    const Tensor& mask_total = context->input(4);
    const Tensor& d_per_image = context->input(5);
    PhotometricInputs in;
    OP_REQUIRES_OK(context, CheckPhotometricShapes(images, renders, mask, &in));
    OP_REQUIRES_OK(context, CheckPhotometricGradientInputs(per_image, mask_total, d_per_image, in));
    Tensor *d_renders = nullptr, *d_mask = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, renders.shape(), &d_renders));
    OP_REQUIRES_OK(context, context->allocate_output(1, mask.shape(), &d_mask));
    OP_REQUIRES_OK(context, gpu_op::LaunchStatus(
                                "PhotometricGradientCuda",
                                PhotometricGradientCuda(
                                    PhotometricBatchParams(in, images, renders, mask, epsilon_),
                                    per_image.flat<float>().data(),
                                    mask_total.flat<float>().data(),
                                    d_per_image.flat<float>().data(),
                                    d_renders->flat<float>().data(), d_mask->flat<float>().data(),
                                    gpu_op::Stream(context))));
  }

 private:
  float epsilon_;
};
#endif  // GOOGLE_CUDA

}  // namespace

REGISTER_OP("PhotometricLoss")
    .Input("images: float32")
    .Input("renders: float32")
    .Input("mask: float32")
    .Attr("epsilon: float = 1e-8")
    .Output("per_image: float32")
    .Output("mask_total: float32")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle images, renders, mask;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &images));
      TF_RETURN_IF_ERROR(c->Merge(images, c->input(1), &renders));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 4, &mask));
      DimensionHandle unused;
      TF_RETURN_IF_ERROR(c->WithValue(c->Dim(mask, 3), 1, &unused));
      ShapeHandle mask_image, images_image;
      TF_RETURN_IF_ERROR(c->Subshape(mask, 0, 3, &mask_image));
      TF_RETURN_IF_ERROR(c->Subshape(renders, 0, 3, &images_image));
      TF_RETURN_IF_ERROR(c->Merge(images_image, mask_image, &images_image));
      c->set_output(0, c->Vector(c->Dim(images_image, 0)));
      c->set_output(1, c->Vector(c->Dim(images_image, 0)));
      return ::tensorflow::OkStatus();
    })
    .Doc(R"doc(
The masked mean colour distance of each image:
per_image = sum_p M_p sqrt(sum_c (I_pc - R_pc)^2 + epsilon) / max(sum_p M_p, 1).

images: [batch, height, width, channels] I.
renders: [batch, height, width, channels] R.
mask: [batch, height, width, 1] M (soft values allowed).
per_image: [batch] the loss of each image (0 for an empty mask).
mask_total: [batch] sum_p M_p, for PhotometricLossGrad.
)doc");

REGISTER_OP("PhotometricLossGrad")
    .Input("images: float32")
    .Input("renders: float32")
    .Input("mask: float32")
    .Input("per_image: float32")
    .Input("mask_total: float32")
    .Input("d_per_image: float32")
    .Attr("epsilon: float = 1e-8")
    .Output("d_renders: float32")
    .Output("d_mask: float32")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      c->set_output(1, c->input(2));
      return ::tensorflow::OkStatus();
    })
    .Doc(R"doc(
Gradient of PhotometricLoss's per_image with respect to renders and mask, given
d_per_image (the gradient with respect to images is -d_renders).
)doc");

REGISTER_KERNEL_BUILDER(Name("PhotometricLoss").Device(DEVICE_CPU), PhotometricLossOp);
REGISTER_KERNEL_BUILDER(Name("PhotometricLossGrad").Device(DEVICE_CPU), PhotometricLossGradOp);
#if GOOGLE_CUDA
REGISTER_KERNEL_BUILDER(Name("PhotometricLoss").Device(DEVICE_GPU), PhotometricLossGpuOp);
REGISTER_KERNEL_BUILDER(Name("PhotometricLossGrad").Device(DEVICE_GPU), PhotometricLossGradGpuOp);
#endif

}  // namespace face3d
