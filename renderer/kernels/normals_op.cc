// TensorFlow ops VertexNormals, TriangleNormals and their gradient ops.
//
// Shape and index checks live here; the arithmetic lives in normals_core.cc.
// Each mesh of the batch is one unit of work on TensorFlow's intra-op CPU
// thread pool (a mesh's triangles add into its own vertices). With GOOGLE_CUDA
// the GPU kernels (normals_cuda.cu) make the same checks, the index scan on
// the device.
#include <cstdint>
#include <functional>
#include <limits>

#include "cpu_op_util.h"
#include "normals_core.h"
#include "rasterize_core.h"
#if GOOGLE_CUDA
#include "gpu_op_util.h"
#include "normals_cuda.h"
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

// Shapes only (no element is read: on a GPU they are device memory).
::tensorflow::Status CheckMeshShapes(const Tensor& vertices, const Tensor& triangles) {
  if (vertices.dims() != 3 || vertices.dim_size(2) != 3) {
    return InvalidArgument("vertices must have shape [batch, vertices, 3], got ",
                           vertices.shape().DebugString());
  }
  if (triangles.dims() != 2 || triangles.dim_size(1) != 3) {
    return InvalidArgument("triangles must have shape [triangles, 3], got ",
                           triangles.shape().DebugString());
  }
  if (vertices.dim_size(1) > std::numeric_limits<int32_t>::max() ||
      triangles.dim_size(0) > std::numeric_limits<int32_t>::max()) {
    return InvalidArgument("mesh too large for int32 indices");
  }
  return ::tensorflow::OkStatus();
}

::tensorflow::Status TriangleError(int64_t bad, const Tensor& vertices) {
  return InvalidArgument("triangle ", bad, " has a vertex index outside [0, ",
                         vertices.dim_size(1), ")");
}

// Shapes and indices, on the host.
::tensorflow::Status CheckMesh(const Tensor& vertices, const Tensor& triangles) {
  TF_RETURN_IF_ERROR(CheckMeshShapes(vertices, triangles));
  const int64_t bad = FindInvalidTriangle(triangles.flat<int32_t>().data(),
                                          triangles.dim_size(0), vertices.dim_size(1));
  if (bad >= 0) return TriangleError(bad, vertices);
  return ::tensorflow::OkStatus();
}

// sums and d_normals of VertexNormalsGrad: the shape of the vertices.
::tensorflow::Status CheckVertexGradient(const Tensor& sums, const Tensor& d_normals,
                                         const Tensor& vertices) {
  if (sums.shape() != vertices.shape()) {
    return InvalidArgument("sums must have the shape of vertices ", vertices.shape().DebugString(),
                           ", got ", sums.shape().DebugString());
  }
  if (d_normals.shape() != vertices.shape()) {
    return InvalidArgument("d_normals must have the shape of vertices ",
                           vertices.shape().DebugString(), ", got ",
                           d_normals.shape().DebugString());
  }
  return ::tensorflow::OkStatus();
}

// d_normals of TriangleNormalsGrad: [batch, triangles, 3].
::tensorflow::Status CheckTriangleGradient(const Tensor& d_normals, const Tensor& vertices,
                                           const Tensor& triangles) {
  if (d_normals.dims() == 3 && d_normals.dim_size(0) == vertices.dim_size(0) &&
      d_normals.dim_size(1) == triangles.dim_size(0) && d_normals.dim_size(2) == 3) {
    return ::tensorflow::OkStatus();
  }
  return InvalidArgument("d_normals must have shape [batch, triangles, 3] = [",
                         vertices.dim_size(0), ", ", triangles.dim_size(0), ", 3], got ",
                         d_normals.shape().DebugString());
}

NormalsParams MeshParams(const Tensor& vertices, const Tensor& triangles, int64_t b) {
  const int64_t vertex_count = vertices.dim_size(1);
  return {vertices.flat<float>().data() + 3 * vertex_count * b,
          triangles.flat<int32_t>().data(), vertex_count, triangles.dim_size(0)};
}

void RunPerMesh(OpKernelContext* context, const Tensor& vertices,
                const Tensor& triangles, const std::function<void(int64_t)>& work) {
  const int64_t cost = 40 * (vertices.dim_size(1) + triangles.dim_size(0));
  cpu_op::RunPerUnit(context, vertices.dim_size(0), cost, work);
}

class VertexNormalsOp : public OpKernel {
 public:
  explicit VertexNormalsOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& vertices = context->input(0);
    const Tensor& triangles = context->input(1);
    OP_REQUIRES_OK(context, CheckMesh(vertices, triangles));
    Tensor *normals_tensor = nullptr, *sums_tensor = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, vertices.shape(), &normals_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(1, vertices.shape(), &sums_tensor));
    const int64_t floats = 3 * vertices.dim_size(1);
    const int64_t scratch_floats = kVertexNormalsScratchPerVertex * vertices.dim_size(1);
    TensorShape scratch_shape;
    OP_REQUIRES_OK(context, TensorShape::BuildTensorShape({vertices.dim_size(0), scratch_floats},
                                                          &scratch_shape));
    Tensor scratch_tensor;
    OP_REQUIRES_OK(context, context->allocate_temp(::tensorflow::DT_FLOAT, scratch_shape,
                                                   &scratch_tensor));
    float* normals = normals_tensor->flat<float>().data();
    float* sums = sums_tensor->flat<float>().data();
    float* scratch = scratch_tensor.flat<float>().data();
    RunPerMesh(context, vertices, triangles, [&](int64_t b) {
      ComputeVertexNormals(MeshParams(vertices, triangles, b), scratch + scratch_floats * b,
                           normals + floats * b, sums + floats * b);
    });
  }
};

class VertexNormalsGradOp : public OpKernel {
 public:
  explicit VertexNormalsGradOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& vertices = context->input(0);
    const Tensor& triangles = context->input(1);
    const Tensor& sums = context->input(2);
    const Tensor& d_normals = context->input(3);
    OP_REQUIRES_OK(context, CheckMesh(vertices, triangles));
    OP_REQUIRES_OK(context, CheckVertexGradient(sums, d_normals, vertices));
    Tensor* d_vertices_tensor = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, vertices.shape(), &d_vertices_tensor));
    const int64_t floats = 3 * vertices.dim_size(1);
    const int64_t scratch_floats =
        kVertexNormalsGradientScratchPerVertex * vertices.dim_size(1);
    TensorShape scratch_shape;
    OP_REQUIRES_OK(context, TensorShape::BuildTensorShape({vertices.dim_size(0), scratch_floats},
                                                          &scratch_shape));
    Tensor scratch_tensor;
    OP_REQUIRES_OK(context, context->allocate_temp(::tensorflow::DT_FLOAT, scratch_shape,
                                                   &scratch_tensor));
    float* d_vertices = d_vertices_tensor->flat<float>().data();
    float* scratch = scratch_tensor.flat<float>().data();
    const float* s = sums.flat<float>().data();
    const float* d_n = d_normals.flat<float>().data();
    RunPerMesh(context, vertices, triangles, [&](int64_t b) {
      VertexNormalsGradient(MeshParams(vertices, triangles, b), s + floats * b, d_n + floats * b,
                            scratch + scratch_floats * b, d_vertices + floats * b);
    });
  }
};

class TriangleNormalsOp : public OpKernel {
 public:
  explicit TriangleNormalsOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& vertices = context->input(0);
    const Tensor& triangles = context->input(1);
    OP_REQUIRES_OK(context, CheckMesh(vertices, triangles));
    TensorShape shape;
    OP_REQUIRES_OK(context, TensorShape::BuildTensorShape(
                                {vertices.dim_size(0), triangles.dim_size(0), 3}, &shape));
    Tensor* normals_tensor = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, shape, &normals_tensor));
    float* normals = normals_tensor->flat<float>().data();
    const int64_t floats = 3 * triangles.dim_size(0);
    RunPerMesh(context, vertices, triangles, [&](int64_t b) {
      ComputeTriangleNormals(MeshParams(vertices, triangles, b), normals + floats * b);
    });
  }
};

class TriangleNormalsGradOp : public OpKernel {
 public:
  explicit TriangleNormalsGradOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& vertices = context->input(0);
    const Tensor& triangles = context->input(1);
    const Tensor& d_normals = context->input(2);
    OP_REQUIRES_OK(context, CheckMesh(vertices, triangles));
    OP_REQUIRES_OK(context, CheckTriangleGradient(d_normals, vertices, triangles));
    Tensor* d_vertices_tensor = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, vertices.shape(), &d_vertices_tensor));
    float* d_vertices = d_vertices_tensor->flat<float>().data();
    const float* d_n = d_normals.flat<float>().data();
    const int64_t vertex_floats = 3 * vertices.dim_size(1);
    const int64_t triangle_floats = 3 * triangles.dim_size(0);
    RunPerMesh(context, vertices, triangles, [&](int64_t b) {
      TriangleNormalsGradient(MeshParams(vertices, triangles, b), d_n + triangle_floats * b,
                              d_vertices + vertex_floats * b);
    });
  }
};

#if GOOGLE_CUDA
using ::tensorflow::DEVICE_GPU;

// Shapes on the host, indices on the device (the CPU kernel's message).
::tensorflow::Status CheckMeshOnGpu(OpKernelContext* context, const Tensor& vertices,
                                    const Tensor& triangles) {
  TF_RETURN_IF_ERROR(CheckMeshShapes(vertices, triangles));
  int64_t bad = -1;
  TF_RETURN_IF_ERROR(gpu_op::FirstOutOfRange(context, triangles.flat<int32_t>().data(),
                                             triangles.NumElements(), vertices.dim_size(1), &bad));
  if (bad >= 0) return TriangleError(bad / 3, vertices);
  return ::tensorflow::OkStatus();
}

NormalsCudaParams BatchParams(const Tensor& vertices, const Tensor& triangles) {
  NormalsCudaParams p;
  p.vertices = vertices.flat<float>().data();
  p.triangles = triangles.flat<int32_t>().data();
  p.batch = vertices.dim_size(0);
  p.vertex_count = vertices.dim_size(1);
  p.triangle_count = triangles.dim_size(0);
  return p;
}

class VertexNormalsGpuOp : public OpKernel {
 public:
  explicit VertexNormalsGpuOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& vertices = context->input(0);
    const Tensor& triangles = context->input(1);
    OP_REQUIRES_OK(context, CheckMeshOnGpu(context, vertices, triangles));
    Tensor *normals = nullptr, *sums = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, vertices.shape(), &normals));
    OP_REQUIRES_OK(context, context->allocate_output(1, vertices.shape(), &sums));
    OP_REQUIRES_OK(context, gpu_op::LaunchStatus(
                                "VertexNormalsCuda",
                                VertexNormalsCuda(BatchParams(vertices, triangles),
                                                  sums->flat<float>().data(),
                                                  normals->flat<float>().data(),
                                                  gpu_op::Stream(context))));
  }
};

class VertexNormalsGradGpuOp : public OpKernel {
 public:
  explicit VertexNormalsGradGpuOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    // The CUDA kernels recompute the sums (input 2) on the device.
    const Tensor& vertices = context->input(0);
    const Tensor& triangles = context->input(1);
    const Tensor& sums = context->input(2);
    const Tensor& d_normals = context->input(3);
    OP_REQUIRES_OK(context, CheckMeshOnGpu(context, vertices, triangles));
    OP_REQUIRES_OK(context, CheckVertexGradient(sums, d_normals, vertices));
    Tensor* d_vertices = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, vertices.shape(), &d_vertices));
    TensorShape scratch_shape;
    OP_REQUIRES_OK(context, TensorShape::BuildTensorShape(
                                {2, vertices.dim_size(0), 3 * vertices.dim_size(1)},
                                &scratch_shape));
    Tensor scratch;
    OP_REQUIRES_OK(context,
                   context->allocate_temp(::tensorflow::DT_FLOAT, scratch_shape, &scratch));
    OP_REQUIRES_OK(context, gpu_op::LaunchStatus(
                                "VertexNormalsGradientCuda",
                                VertexNormalsGradientCuda(
                                    BatchParams(vertices, triangles),
                                    d_normals.flat<float>().data(), scratch.flat<float>().data(),
                                    d_vertices->flat<float>().data(), gpu_op::Stream(context))));
  }
};

class TriangleNormalsGpuOp : public OpKernel {
 public:
  explicit TriangleNormalsGpuOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& vertices = context->input(0);
    const Tensor& triangles = context->input(1);
    OP_REQUIRES_OK(context, CheckMeshOnGpu(context, vertices, triangles));
    TensorShape shape;
    OP_REQUIRES_OK(context, TensorShape::BuildTensorShape(
                                {vertices.dim_size(0), triangles.dim_size(0), 3}, &shape));
    Tensor* normals = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, shape, &normals));
    OP_REQUIRES_OK(context, gpu_op::LaunchStatus(
                                "TriangleNormalsCuda",
                                TriangleNormalsCuda(BatchParams(vertices, triangles),
                                                    normals->flat<float>().data(),
                                                    gpu_op::Stream(context))));
  }
};

class TriangleNormalsGradGpuOp : public OpKernel {
 public:
  explicit TriangleNormalsGradGpuOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& vertices = context->input(0);
    const Tensor& triangles = context->input(1);
    const Tensor& d_normals = context->input(2);
    OP_REQUIRES_OK(context, CheckMeshOnGpu(context, vertices, triangles));
    OP_REQUIRES_OK(context, CheckTriangleGradient(d_normals, vertices, triangles));
    Tensor* d_vertices = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, vertices.shape(), &d_vertices));
    OP_REQUIRES_OK(context, gpu_op::LaunchStatus(
                                "TriangleNormalsGradientCuda",
                                TriangleNormalsGradientCuda(
                                    BatchParams(vertices, triangles), d_normals.flat<float>().data(),
                                    d_vertices->flat<float>().data(), gpu_op::Stream(context))));
  }
};
#endif  // GOOGLE_CUDA

}  // namespace

REGISTER_OP("TriangleNormals")
    .Input("vertices: float32")
    .Input("triangles: int32")
    .Output("normals: float32")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle vertices, triangles;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &vertices));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &triangles));
      DimensionHandle unused;
      TF_RETURN_IF_ERROR(c->WithValue(c->Dim(vertices, 2), 3, &unused));
      TF_RETURN_IF_ERROR(c->WithValue(c->Dim(triangles, 1), 3, &unused));
      c->set_output(0, c->MakeShape({c->Dim(vertices, 0), c->Dim(triangles, 0), 3}));
      return ::tensorflow::OkStatus();
    })
    .Doc(R"doc(
Unit face normals of a batch of meshes sharing one triangle list.

vertices: [batch, vertices, 3] positions.
triangles: [triangles, 3] vertex indices.
normals: [batch, triangles, 3], (v1 - v0) x (v2 - v0) scaled to unit length (as
  tf.math.l2_normalize with epsilon 1e-24: 0 for a degenerate face).
)doc");

REGISTER_OP("TriangleNormalsGrad")
    .Input("vertices: float32")
    .Input("triangles: int32")
    .Input("d_normals: float32")
    .Output("d_vertices: float32")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      return ::tensorflow::OkStatus();
    })
    .Doc(R"doc(
Gradient of TriangleNormals with respect to the vertices, given d_normals
[batch, triangles, 3].
)doc");

REGISTER_OP("VertexNormals")
    .Input("vertices: float32")
    .Input("triangles: int32")
    .Output("normals: float32")
    .Output("sums: float32")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle vertices, triangles;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &vertices));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &triangles));
      DimensionHandle unused;
      TF_RETURN_IF_ERROR(c->WithValue(c->Dim(vertices, 2), 3, &unused));
      TF_RETURN_IF_ERROR(c->WithValue(c->Dim(triangles, 1), 3, &unused));
      c->set_output(0, vertices);
      c->set_output(1, vertices);
      return ::tensorflow::OkStatus();
    })
    .Doc(R"doc(
Area-weighted unit vertex normals of a batch of meshes sharing one triangle list.

vertices: [batch, vertices, 3] positions.
triangles: [triangles, 3] vertex indices; a face's normal is (v1 - v0) x (v2 - v0).
normals: [batch, vertices, 3], the sum of a vertex's face normals scaled to unit
  length (as tf.math.l2_normalize with epsilon 1e-24: 0 for an unused vertex).
sums: [batch, vertices, 3], the unnormalised sums, for the gradient op.
)doc");

REGISTER_OP("VertexNormalsGrad")
    .Input("vertices: float32")
    .Input("triangles: int32")
    .Input("sums: float32")
    .Input("d_normals: float32")
    .Output("d_vertices: float32")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      return ::tensorflow::OkStatus();
    })
    .Doc(R"doc(
Gradient of VertexNormals with respect to the vertices, given its sums output
(the CPU kernel does not recompute them) and d_normals [batch, vertices, 3].
)doc");

REGISTER_KERNEL_BUILDER(Name("VertexNormals").Device(DEVICE_CPU), VertexNormalsOp);
REGISTER_KERNEL_BUILDER(Name("VertexNormalsGrad").Device(DEVICE_CPU), VertexNormalsGradOp);
REGISTER_KERNEL_BUILDER(Name("TriangleNormals").Device(DEVICE_CPU), TriangleNormalsOp);
REGISTER_KERNEL_BUILDER(Name("TriangleNormalsGrad").Device(DEVICE_CPU), TriangleNormalsGradOp);
#if GOOGLE_CUDA
REGISTER_KERNEL_BUILDER(Name("VertexNormals").Device(DEVICE_GPU), VertexNormalsGpuOp);
REGISTER_KERNEL_BUILDER(Name("VertexNormalsGrad").Device(DEVICE_GPU), VertexNormalsGradGpuOp);
REGISTER_KERNEL_BUILDER(Name("TriangleNormals").Device(DEVICE_GPU), TriangleNormalsGpuOp);
REGISTER_KERNEL_BUILDER(Name("TriangleNormalsGrad").Device(DEVICE_GPU), TriangleNormalsGradGpuOp);
#endif

}  // namespace face3d
