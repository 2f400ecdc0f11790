// TensorFlow ops FusedGroupNorm and FusedGroupNormGrad (NHWC).
//
// Shape checks live here; the arithmetic lives in group_norm_core.cc. Each
// image of the batch is one unit of work on TensorFlow's intra-op CPU thread
// pool; the gradient's per-image d_gamma and d_beta are summed at the end.
// With GOOGLE_CUDA the GPU kernels (group_norm_cuda.cu) make the same checks
// (all on shapes and attributes).
#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "cpu_op_util.h"
#include "group_norm_core.h"
#if GOOGLE_CUDA
#include "gpu_op_util.h"
#include "group_norm_cuda.h"
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

::tensorflow::Status CheckInputs(const Tensor& x, const Tensor& gamma, int groups,
                                 GroupNormParams* params) {
  if (x.dims() != 4) {
    return InvalidArgument("x must have shape [batch, height, width, channels], got ",
                           x.shape().DebugString());
  }
  const int64_t channels = x.dim_size(3);
  if (channels == 0 || channels % groups != 0 || channels > (1 << 30)) {
    return InvalidArgument("channels (", channels, ") must be a positive multiple of groups (",
                           groups, ")");
  }
  if (gamma.shape() != TensorShape({channels})) {
    return InvalidArgument("gamma and beta must have shape [", channels, "], got ",
                           gamma.shape().DebugString());
  }
  params->pixel_count = x.dim_size(1) * x.dim_size(2);
  params->channels = static_cast<int>(channels);
  params->groups = groups;
  return ::tensorflow::OkStatus();
}

void RunPerImage(OpKernelContext* context, const Tensor& x,
                 const std::function<void(int64_t)>& work) {
  const int64_t cost = 10 * x.NumElements() / (x.dim_size(0) > 0 ? x.dim_size(0) : 1);
  cpu_op::RunPerUnit(context, x.dim_size(0), cost, work);
}

class FusedGroupNormOp : public OpKernel {
 public:
  explicit FusedGroupNormOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("groups", &groups_));
    OP_REQUIRES_OK(context, context->GetAttr("epsilon", &epsilon_));
    OP_REQUIRES(context, groups_ > 0 && epsilon_ > 0.0f,
                InvalidArgument("groups and epsilon must be positive"));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& x = context->input(0);
    const Tensor& gamma = context->input(1);
    const Tensor& beta = context->input(2);
    GroupNormParams params;
    OP_REQUIRES_OK(context, CheckInputs(x, gamma, groups_, &params));
    OP_REQUIRES(context, beta.shape() == gamma.shape(),
                InvalidArgument("beta must have the shape of gamma ", gamma.shape().DebugString(),
                                ", got ", beta.shape().DebugString()));
    params.epsilon = epsilon_;
    const int64_t batch = x.dim_size(0);
    TensorShape stats_shape;
    OP_REQUIRES_OK(context, TensorShape::BuildTensorShape({batch, groups_}, &stats_shape));
    Tensor *y_tensor = nullptr, *mean_tensor = nullptr, *rstd_tensor = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, x.shape(), &y_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(1, stats_shape, &mean_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(2, stats_shape, &rstd_tensor));
    if (params.pixel_count == 0) {
      // No value to normalise: statistics of an empty group are those of zeros.
      mean_tensor->flat<float>().setZero();
      rstd_tensor->flat<float>().setConstant(1.0f / std::sqrt(epsilon_));
      return;
    }
    const int64_t image = params.pixel_count * params.channels;
    const float* xs = x.flat<float>().data();
    float* y = y_tensor->flat<float>().data();
    float* mean = mean_tensor->flat<float>().data();
    float* rstd = rstd_tensor->flat<float>().data();
    RunPerImage(context, x, [&](int64_t b) {
      GroupNormForward(params, xs + image * b, gamma.flat<float>().data(),
                       beta.flat<float>().data(), y + image * b, mean + groups_ * b,
                       rstd + groups_ * b);
    });
  }

 private:
  int groups_;
  float epsilon_;
};

class FusedGroupNormGradOp : public OpKernel {
 public:
  explicit FusedGroupNormGradOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("groups", &groups_));
    OP_REQUIRES(context, groups_ > 0, InvalidArgument("groups must be positive"));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& x = context->input(0);
    const Tensor& gamma = context->input(1);
    const Tensor& mean_tensor = context->input(2);
    const Tensor& rstd_tensor = context->input(3);
    const Tensor& dy_tensor = context->input(4);
    GroupNormParams params;
    OP_REQUIRES_OK(context, CheckInputs(x, gamma, groups_, &params));
    const int64_t batch = x.dim_size(0);
    OP_REQUIRES(context,
                mean_tensor.dims() == 2 && mean_tensor.dim_size(0) == batch &&
                    mean_tensor.dim_size(1) == groups_ && rstd_tensor.shape() == mean_tensor.shape(),
                InvalidArgument("mean and rstd must have shape [", batch, ", ", groups_, "]"));
    OP_REQUIRES(context, dy_tensor.shape() == x.shape(),
                InvalidArgument("dy must have the shape of x ", x.shape().DebugString(), ", got ",
                                dy_tensor.shape().DebugString()));
    Tensor *dx_tensor = nullptr, *d_gamma_tensor = nullptr, *d_beta_tensor = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, x.shape(), &dx_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(1, gamma.shape(), &d_gamma_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(2, gamma.shape(), &d_beta_tensor));
    const int channels = params.channels;
    if (params.pixel_count == 0 || batch == 0) {
      // No value: nothing to differentiate (dx is empty).
      d_gamma_tensor->flat<float>().setZero();
      d_beta_tensor->flat<float>().setZero();
      return;
    }
    // Per-image parts, summed below; batch * channels <= the elements of x.
    std::vector<double> parts(2 * channels * batch, 0.0);
    const int64_t image = params.pixel_count * channels;
    const float* xs = x.flat<float>().data();
    const float* dy = dy_tensor.flat<float>().data();
    float* dx = dx_tensor->flat<float>().data();
    RunPerImage(context, x, [&](int64_t b) {
      GroupNormBackward(params, xs + image * b, gamma.flat<float>().data(),
                        mean_tensor.flat<float>().data() + groups_ * b,
                        rstd_tensor.flat<float>().data() + groups_ * b, dy + image * b,
                        dx + image * b, parts.data() + 2 * channels * b,
                        parts.data() + 2 * channels * b + channels);
    });
    float* d_gamma = d_gamma_tensor->flat<float>().data();
    float* d_beta = d_beta_tensor->flat<float>().data();
    for (int c = 0; c < channels; ++c) {
      double g = 0.0, s = 0.0;
      for (int64_t b = 0; b < batch; ++b) {
        g += parts[2 * channels * b + c];
        s += parts[2 * channels * b + channels + c];
      }
      d_gamma[c] = static_cast<float>(g);
      d_beta[c] = static_cast<float>(s);
    }
  }

 private:
  int groups_;
};

#if GOOGLE_CUDA
using ::tensorflow::DEVICE_GPU;

GroupNormCudaParams BatchParams(const Tensor& x, const GroupNormParams& image) {
  GroupNormCudaParams p;
  p.batch = x.dim_size(0);
  p.pixel_count = image.pixel_count;
  p.channels = image.channels;
  p.groups = image.groups;
  p.epsilon = image.epsilon;
  return p;
}

::tensorflow::Status AllocateScratch(OpKernelContext* context, const GroupNormCudaParams& params,
                                     Tensor* scratch) {
  TensorShape shape;
  TF_RETURN_IF_ERROR(TensorShape::BuildTensorShape(
      {std::max<int64_t>(1, GroupNormCudaScratchBytes(params))}, &shape));
  return context->allocate_temp(::tensorflow::DT_UINT8, shape, scratch);
}

class FusedGroupNormGpuOp : public OpKernel {
 public:
  explicit FusedGroupNormGpuOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("groups", &groups_));
    OP_REQUIRES_OK(context, context->GetAttr("epsilon", &epsilon_));
    OP_REQUIRES(context, groups_ > 0 && epsilon_ > 0.0f,
                InvalidArgument("groups and epsilon must be positive"));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& x = context->input(0);
    const Tensor& gamma = context->input(1);
    const Tensor& beta = context->input(2);
    GroupNormParams image;
    OP_REQUIRES_OK(context, CheckInputs(x, gamma, groups_, &image));
    OP_REQUIRES(context, beta.shape() == gamma.shape(),
                InvalidArgument("beta must have the shape of gamma ", gamma.shape().DebugString(),
                                ", got ", beta.shape().DebugString()));
    image.epsilon = epsilon_;
    TensorShape stats_shape;
    OP_REQUIRES_OK(context, TensorShape::BuildTensorShape({x.dim_size(0), groups_}, &stats_shape));
    Tensor *y = nullptr, *mean = nullptr, *rstd = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, x.shape(), &y));
    OP_REQUIRES_OK(context, context->allocate_output(1, stats_shape, &mean));
    OP_REQUIRES_OK(context, context->allocate_output(2, stats_shape, &rstd));
    const GroupNormCudaParams params = BatchParams(x, image);
    Tensor scratch;
    OP_REQUIRES_OK(context, AllocateScratch(context, params, &scratch));
    OP_REQUIRES_OK(context, gpu_op::LaunchStatus(
                                "GroupNormForwardCuda",
                                GroupNormForwardCuda(
                                    params, x.flat<float>().data(), gamma.flat<float>().data(),
                                    beta.flat<float>().data(), y->flat<float>().data(),
                                    mean->flat<float>().data(), rstd->flat<float>().data(),
                                    scratch.flat<uint8_t>().data(), gpu_op::Stream(context))));
  }

 private:
  int groups_;
  float epsilon_;
};

class FusedGroupNormGradGpuOp : public OpKernel {
 public:
  explicit FusedGroupNormGradGpuOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("groups", &groups_));
    OP_REQUIRES(context, groups_ > 0, InvalidArgument("groups must be positive"));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& x = context->input(0);
    const Tensor& gamma = context->input(1);
    const Tensor& mean = context->input(2);
    const Tensor& rstd = context->input(3);
    const Tensor& dy = context->input(4);
    GroupNormParams image;
    OP_REQUIRES_OK(context, CheckInputs(x, gamma, groups_, &image));
    image.epsilon = 0.0f;  // unused by the gradient
    const int64_t batch = x.dim_size(0);
    OP_REQUIRES(context,
                mean.dims() == 2 && mean.dim_size(0) == batch && mean.dim_size(1) == groups_ &&
                    rstd.shape() == mean.shape(),
                InvalidArgument("mean and rstd must have shape [", batch, ", ", groups_, "]"));
    OP_REQUIRES(context, dy.shape() == x.shape(),
                InvalidArgument("dy must have the shape of x ", x.shape().DebugString(), ", got ",
                                dy.shape().DebugString()));
    Tensor *dx = nullptr, *d_gamma = nullptr, *d_beta = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, x.shape(), &dx));
    OP_REQUIRES_OK(context, context->allocate_output(1, gamma.shape(), &d_gamma));
    OP_REQUIRES_OK(context, context->allocate_output(2, gamma.shape(), &d_beta));
    const GroupNormCudaParams params = BatchParams(x, image);
    Tensor scratch;
    OP_REQUIRES_OK(context, AllocateScratch(context, params, &scratch));
    OP_REQUIRES_OK(context, gpu_op::LaunchStatus(
                                "GroupNormBackwardCuda",
                                GroupNormBackwardCuda(
                                    params, x.flat<float>().data(), gamma.flat<float>().data(),
                                    mean.flat<float>().data(), rstd.flat<float>().data(),
                                    dy.flat<float>().data(), dx->flat<float>().data(),
                                    d_gamma->flat<float>().data(), d_beta->flat<float>().data(),
                                    scratch.flat<uint8_t>().data(), gpu_op::Stream(context))));
  }

 private:
  int groups_;
};
#endif  // GOOGLE_CUDA

}  // namespace

REGISTER_OP("FusedGroupNorm")
    .Input("x: float32")
    .Input("gamma: float32")
    .Input("beta: float32")
    .Attr("groups: int")
    .Attr("epsilon: float = 1e-5")
    .Output("y: float32")
    .Output("mean: float32")
    .Output("rstd: float32")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle x;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &x));
      int groups;
      TF_RETURN_IF_ERROR(c->GetAttr("groups", &groups));
      c->set_output(0, x);
      c->set_output(1, c->MakeShape({c->Dim(x, 0), groups}));
      c->set_output(2, c->MakeShape({c->Dim(x, 0), groups}));
      return ::tensorflow::OkStatus();
    })
    .Doc(R"doc(
Group normalisation of NHWC activations: per image and group of channels/groups
consecutive channels, y = (x - mean) / sqrt(variance + epsilon) * gamma + beta.

x: [batch, height, width, channels], channels a multiple of groups.
gamma, beta: [channels].
mean, rstd: [batch, groups], the statistics, for FusedGroupNormGrad.
)doc");

REGISTER_OP("FusedGroupNormGrad")
    .Input("x: float32")
    .Input("gamma: float32")
    .Input("mean: float32")
    .Input("rstd: float32")
    .Input("dy: float32")
    .Attr("groups: int")
    .Output("dx: float32")
    .Output("d_gamma: float32")
    .Output("d_beta: float32")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->input(1));
      c->set_output(2, c->input(1));
      return ::tensorflow::OkStatus();
    })
    .Doc(R"doc(
Gradient of FusedGroupNorm's y with respect to x, gamma and beta, given dy.
)doc");

REGISTER_KERNEL_BUILDER(Name("FusedGroupNorm").Device(DEVICE_CPU), FusedGroupNormOp);
REGISTER_KERNEL_BUILDER(Name("FusedGroupNormGrad").Device(DEVICE_CPU), FusedGroupNormGradOp);
#if GOOGLE_CUDA
REGISTER_KERNEL_BUILDER(Name("FusedGroupNorm").Device(DEVICE_GPU), FusedGroupNormGpuOp);
REGISTER_KERNEL_BUILDER(Name("FusedGroupNormGrad").Device(DEVICE_GPU), FusedGroupNormGradGpuOp);
#endif

}  // namespace face3d
