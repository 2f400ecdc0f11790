// TensorFlow ops ShShading and ShShadingGrad.
//
// Shape checks live here; the arithmetic lives in shading_core.cc. Each mesh
// of the batch is one unit of work on TensorFlow's intra-op CPU thread pool.
// With GOOGLE_CUDA the GPU kernels (shading_cuda.cu) make the same checks (all
// on shapes) and read band_scales from device memory like the other inputs.
#include <cstdint>
#include <functional>

#include "cpu_op_util.h"
#include "shading_core.h"
#if GOOGLE_CUDA
#include "gpu_op_util.h"
#include "shading_cuda.h"
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
using ::tensorflow::shape_inference::InferenceContext;

::tensorflow::Status CheckInputs(const Tensor& normals, const Tensor& albedo,
                                 const Tensor& coefficients, const Tensor& scales) {
  if (normals.dims() != 3 || normals.dim_size(2) != 3) {
    return InvalidArgument("normals must have shape [batch, vertices, 3], got ",
                           normals.shape().DebugString());
  }
  if (albedo.shape() != normals.shape()) {
    return InvalidArgument("albedo must have the shape of normals ", normals.shape().DebugString(),
                           ", got ", albedo.shape().DebugString());
  }
  if (coefficients.dims() != 3 || coefficients.dim_size(0) != normals.dim_size(0) ||
      coefficients.dim_size(1) != kShBands || coefficients.dim_size(2) != 3) {
    return InvalidArgument("coefficients must have shape [", normals.dim_size(0), ", 9, 3], got ",
                           coefficients.shape().DebugString());
  }
  if (scales.shape() != TensorShape({kShBands})) {
    return InvalidArgument("band_scales must have shape [9], got ", scales.shape().DebugString());
  }
  return ::tensorflow::OkStatus();
}

ShadingParams MeshParams(const Tensor& normals, const Tensor& albedo,
                         const Tensor& coefficients, const Tensor& scales, int64_t b) {
  const int64_t floats = 3 * normals.dim_size(1);
  return {normals.flat<float>().data() + floats * b, albedo.flat<float>().data() + floats * b,
          coefficients.flat<float>().data() + 3 * kShBands * b, scales.flat<float>().data(),
          normals.dim_size(1)};
}

void RunPerMesh(OpKernelContext* context, const Tensor& normals,
                const std::function<void(int64_t)>& work) {
  cpu_op::RunPerUnit(context, normals.dim_size(0), 100 * normals.dim_size(1), work);
}

class ShShadingOp : public OpKernel {
 public:
  explicit ShShadingOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& normals = context->input(0);
    const Tensor& albedo = context->input(1);
    const Tensor& coefficients = context->input(2);
    const Tensor& scales = context->input(3);
    OP_REQUIRES_OK(context, CheckInputs(normals, albedo, coefficients, scales));
    Tensor* colours_tensor = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, normals.shape(), &colours_tensor));
    float* colours = colours_tensor->flat<float>().data();
    const int64_t floats = 3 * normals.dim_size(1);
    RunPerMesh(context, normals, [&](int64_t b) {
      ShadeVertices(MeshParams(normals, albedo, coefficients, scales, b), colours + floats * b);
    });
  }
};

class ShShadingGradOp : public OpKernel {
 public:
  explicit ShShadingGradOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& normals = context->input(0);
    const Tensor& albedo = context->input(1);
    const Tensor& coefficients = context->input(2);
    const Tensor& scales = context->input(3);
    const Tensor& d_colours = context->input(4);
    OP_REQUIRES_OK(context, CheckInputs(normals, albedo, coefficients, scales));
    OP_REQUIRES(context, d_colours.shape() == normals.shape(),
                InvalidArgument("d_colours must have the shape of normals ",
                                normals.shape().DebugString(), ", got ",
                                d_colours.shape().DebugString()));
    Tensor *d_normals_tensor = nullptr, *d_albedo_tensor = nullptr, *d_coefficients_tensor = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, normals.shape(), &d_normals_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(1, albedo.shape(), &d_albedo_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(2, coefficients.shape(), &d_coefficients_tensor));
    const int64_t floats = 3 * normals.dim_size(1);
    const float* d_c = d_colours.flat<float>().data();
    float* d_normals = d_normals_tensor->flat<float>().data();
    float* d_albedo = d_albedo_tensor->flat<float>().data();
    float* d_coefficients = d_coefficients_tensor->flat<float>().data();
    RunPerMesh(context, normals, [&](int64_t b) {
      ShadeVerticesGradient(MeshParams(normals, albedo, coefficients, scales, b), d_c + floats * b,
                            d_normals + floats * b, d_albedo + floats * b,
                            d_coefficients + 3 * kShBands * b);
    });
  }
};

#if GOOGLE_CUDA
using ::tensorflow::DEVICE_GPU;

ShadingCudaParams BatchParams(const Tensor& normals, const Tensor& albedo,
                              const Tensor& coefficients, const Tensor& scales) {
  ShadingCudaParams p;
  p.normals = normals.flat<float>().data();
  p.albedo = albedo.flat<float>().data();
  p.coefficients = coefficients.flat<float>().data();
  p.band_scales = scales.flat<float>().data();
  p.batch = normals.dim_size(0);
  p.vertex_count = normals.dim_size(1);
  return p;
}

class ShShadingGpuOp : public OpKernel {
 public:
  explicit ShShadingGpuOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& normals = context->input(0);
    const Tensor& albedo = context->input(1);
    const Tensor& coefficients = context->input(2);
    const Tensor& scales = context->input(3);
    OP_REQUIRES_OK(context, CheckInputs(normals, albedo, coefficients, scales));
    Tensor* colours = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, normals.shape(), &colours));
    OP_REQUIRES_OK(context, gpu_op::LaunchStatus(
                                "ShadeVerticesCuda",
                                ShadeVerticesCuda(BatchParams(normals, albedo, coefficients, scales),
                                                  colours->flat<float>().data(),
                                                  gpu_op::Stream(context))));
  }
};

class ShShadingGradGpuOp : public OpKernel {
 public:
  explicit ShShadingGradGpuOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& normals = context->input(0);
    const Tensor& albedo = context->input(1);
    const Tensor& coefficients = context->input(2);
    const Tensor& scales = context->input(3);
    const Tensor& d_colours = context->input(4);
    OP_REQUIRES_OK(context, CheckInputs(normals, albedo, coefficients, scales));
    OP_REQUIRES(context, d_colours.shape() == normals.shape(),
                InvalidArgument("d_colours must have the shape of normals ",
                                normals.shape().DebugString(), ", got ",
                                d_colours.shape().DebugString()));
    Tensor *d_normals = nullptr, *d_albedo = nullptr, *d_coefficients = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, normals.shape(), &d_normals));
    OP_REQUIRES_OK(context, context->allocate_output(1, albedo.shape(), &d_albedo));
    OP_REQUIRES_OK(context, context->allocate_output(2, coefficients.shape(), &d_coefficients));
    OP_REQUIRES_OK(context, gpu_op::LaunchStatus(
                                "ShadeVerticesGradientCuda",
                                ShadeVerticesGradientCuda(
                                    BatchParams(normals, albedo, coefficients, scales),
                                    d_colours.flat<float>().data(), d_normals->flat<float>().data(),
                                    d_albedo->flat<float>().data(),
                                    d_coefficients->flat<float>().data(), gpu_op::Stream(context))));
  }
};
#endif  // GOOGLE_CUDA

}  // namespace

REGISTER_OP("ShShading")
    .Input("normals: float32")
    .Input("albedo: float32")
    .Input("coefficients: float32")
    .Input("band_scales: float32")
    .Output("colours: float32")
    .SetShapeFn([](InferenceContext* c) {
      ::tensorflow::shape_inference::ShapeHandle normals;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &normals));
      c->set_output(0, normals);
      return ::tensorflow::OkStatus();
    })
    .Doc(R"doc(
Lambertian shading under spherical-harmonics light, per vertex.

normals: [batch, vertices, 3] unit normals.
albedo: [batch, vertices, 3] RGB reflectance.
coefficients: [batch, 9, 3] light per SH band and colour (ambient included).
band_scales: [9] the basis constants (renderer/shading.py).
colours: [batch, vertices, 3] albedo times irradiance.
)doc");

REGISTER_OP("ShShadingGrad")
    .Input("normals: float32")
    .Input("albedo: float32")
    .Input("coefficients: float32")
    .Input("band_scales: float32")
    .Input("d_colours: float32")
    .Output("d_normals: float32")
    .Output("d_albedo: float32")
    .Output("d_coefficients: float32")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->input(1));
      c->set_output(2, c->input(2));
      return ::tensorflow::OkStatus();
    })
    .Doc(R"doc(
Gradient of ShShading with respect to normals, albedo and coefficients.
)doc");

REGISTER_KERNEL_BUILDER(Name("ShShading").Device(DEVICE_CPU), ShShadingOp);
REGISTER_KERNEL_BUILDER(Name("ShShadingGrad").Device(DEVICE_CPU), ShShadingGradOp);
#if GOOGLE_CUDA
REGISTER_KERNEL_BUILDER(Name("ShShading").Device(DEVICE_GPU), ShShadingGpuOp);
REGISTER_KERNEL_BUILDER(Name("ShShadingGrad").Device(DEVICE_GPU), ShShadingGradGpuOp);
#endif

}  // namespace face3d
