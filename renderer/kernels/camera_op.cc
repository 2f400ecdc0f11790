// TensorFlow ops CropProject, CropProjectGrad, RotateVectors and RotateVectorsGrad.
//
// Shape checks live here; the arithmetic lives in camera_core.cc. Each mesh of
// the batch is one unit of work on TensorFlow's intra-op CPU thread pool. CPU
// kernels only: in a GPU session the placer puts these ops on the CPU.
#include <cstdint>
#include <functional>

#include "camera_core.h"
#include "cpu_op_util.h"
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
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

Status CheckPoints(const Tensor& points, const char* name) {
  if (points.dims() != 3 || points.dim_size(2) != 3) {
    return InvalidArgument(name, " must have shape [batch, vertices, 3], got ",
                           points.shape().DebugString());
  }
  return ::tensorflow::OkStatus();
}

Status CheckRotation(const Tensor& rotation, int64_t batch) {
  if (rotation.shape() != TensorShape({batch, 3, 3})) {
    return InvalidArgument("rotation must have shape [", batch, ", 3, 3], got ",
                           rotation.shape().DebugString());
  }
  return ::tensorflow::OkStatus();
}

Status CheckProjectInputs(const Tensor& vertices, const Tensor& rotation, const Tensor& centre,
                          const Tensor& scale, const Tensor& shift) {
  TF_RETURN_IF_ERROR(CheckPoints(vertices, "vertices"));
  const int64_t batch = vertices.dim_size(0);
  TF_RETURN_IF_ERROR(CheckRotation(rotation, batch));
  if (centre.shape() != TensorShape({3})) {
    return InvalidArgument("centre must have shape [3], got ", centre.shape().DebugString());
  }
  if (scale.shape() != TensorShape({batch})) {
    return InvalidArgument("scale must have shape [", batch, "], got ", scale.shape().DebugString());
  }
  if (shift.shape() != TensorShape({batch, 2})) {
    return InvalidArgument("shift must have shape [", batch, ", 2], got ",
                           shift.shape().DebugString());
  }
  return ::tensorflow::OkStatus();
}

// An empty gradient stands for zeros (an output nothing depends on).
Status CheckGradient(const Tensor& gradient, const Tensor& vertices, int64_t channels,
                     const char* name) {
  if (gradient.NumElements() == 0 && gradient.dims() == 1) return ::tensorflow::OkStatus();
  if (gradient.shape() != TensorShape({vertices.dim_size(0), vertices.dim_size(1), channels})) {
    return InvalidArgument(name, " must be empty or have shape [", vertices.dim_size(0), ", ",
                           vertices.dim_size(1), ", ", channels, "], got ",
                           gradient.shape().DebugString());
  }
  return ::tensorflow::OkStatus();
}

class CameraAttrs {
 public:
  explicit CameraAttrs(OpKernelConstruction* context) {
    OP_REQUIRES_OK(context, context->GetAttr("image_size", &image_size_));
    OP_REQUIRES_OK(context, context->GetAttr("depth_scale", &depth_scale_));
    OP_REQUIRES(context, image_size_ > 0,
                InvalidArgument("image_size must be positive, got ", image_size_));
    OP_REQUIRES(context, depth_scale_ > 0.0f,
                InvalidArgument("depth_scale must be positive, got ", depth_scale_));
  }

  CropProjectParams Mesh(const Tensor& vertices, const Tensor& rotation, const Tensor& centre,
                         const Tensor& scale, const Tensor& shift, int64_t b) const {
    CropProjectParams p;
    p.vertices = vertices.flat<float>().data() + 3 * vertices.dim_size(1) * b;
    p.rotation = rotation.flat<float>().data() + 9 * b;
    p.centre = centre.flat<float>().data();
    p.scale = scale.flat<float>()(b);
    p.shift_u = shift.flat<float>()(2 * b);
    p.shift_v = shift.flat<float>()(2 * b + 1);
    p.image_size = static_cast<float>(image_size_);
    p.depth_scale = depth_scale_;
    p.vertex_count = vertices.dim_size(1);
    return p;
  }

 private:
  int image_size_ = 0;
  float depth_scale_ = 0.0f;
};

void RunPerMesh(OpKernelContext* context, const Tensor& vertices, int64_t cost_per_vertex,
                const std::function<void(int64_t)>& work) {
  cpu_op::RunPerUnit(context, vertices.dim_size(0), cost_per_vertex * vertices.dim_size(1), work);
}

class CropProjectOp : public OpKernel {
 public:
  explicit CropProjectOp(OpKernelConstruction* context) : OpKernel(context), attrs_(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& vertices = context->input(0);
    const Tensor& rotation = context->input(1);
    const Tensor& centre = context->input(2);
    const Tensor& scale = context->input(3);
    const Tensor& shift = context->input(4);
    OP_REQUIRES_OK(context, CheckProjectInputs(vertices, rotation, centre, scale, shift));
    const int64_t batch = vertices.dim_size(0), count = vertices.dim_size(1);
    Tensor *points_tensor = nullptr, *clip_tensor = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, vertices.shape(), &points_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(1, TensorShape({batch, count, 4}), &clip_tensor));
    float* points = points_tensor->flat<float>().data();
    float* clip = clip_tensor->flat<float>().data();
    RunPerMesh(context, vertices, 30, [&](int64_t b) {
      CropProject(attrs_.Mesh(vertices, rotation, centre, scale, shift, b), points + 3 * count * b,
                  clip + 4 * count * b);
    });
  }

 private:
  CameraAttrs attrs_;
};

class CropProjectGradOp : public OpKernel {
 public:
  explicit CropProjectGradOp(OpKernelConstruction* context) : OpKernel(context), attrs_(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& vertices = context->input(0);
    const Tensor& rotation = context->input(1);
    const Tensor& centre = context->input(2);
    const Tensor& scale = context->input(3);
    const Tensor& shift = context->input(4);
    const Tensor& d_points = context->input(5);
    const Tensor& d_clip = context->input(6);
    OP_REQUIRES_OK(context, CheckProjectInputs(vertices, rotation, centre, scale, shift));
    OP_REQUIRES_OK(context, CheckGradient(d_points, vertices, 3, "d_points"));
    OP_REQUIRES_OK(context, CheckGradient(d_clip, vertices, 4, "d_clip"));
    const int64_t count = vertices.dim_size(1);
    Tensor *d_vertices_tensor = nullptr, *d_rotation_tensor = nullptr, *d_scale_tensor = nullptr,
           *d_shift_tensor = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, vertices.shape(), &d_vertices_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(1, rotation.shape(), &d_rotation_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(2, scale.shape(), &d_scale_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(3, shift.shape(), &d_shift_tensor));
    const float* dp = d_points.NumElements() ? d_points.flat<float>().data() : nullptr;
    const float* dc = d_clip.NumElements() ? d_clip.flat<float>().data() : nullptr;
    float* d_vertices = d_vertices_tensor->flat<float>().data();
    float* d_rotation = d_rotation_tensor->flat<float>().data();
    float* d_scale = d_scale_tensor->flat<float>().data();
    float* d_shift = d_shift_tensor->flat<float>().data();
    RunPerMesh(context, vertices, 60, [&](int64_t b) {
      CropProjectGradient(attrs_.Mesh(vertices, rotation, centre, scale, shift, b),
                          dp ? dp + 3 * count * b : nullptr, dc ? dc + 4 * count * b : nullptr,
                          d_vertices + 3 * count * b, d_rotation + 9 * b, d_scale + b,
                          d_shift + 2 * b);
    });
  }

 private:
  CameraAttrs attrs_;
};

Status CheckRotateInputs(const Tensor& vectors, const Tensor& rotation) {
  TF_RETURN_IF_ERROR(CheckPoints(vectors, "vectors"));
  return CheckRotation(rotation, vectors.dim_size(0));
}

class RotateVectorsOp : public OpKernel {
 public:
  explicit RotateVectorsOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& vectors = context->input(0);
    const Tensor& rotation = context->input(1);
    OP_REQUIRES_OK(context, CheckRotateInputs(vectors, rotation));
    Tensor* out_tensor = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, vectors.shape(), &out_tensor));
    const int64_t count = vectors.dim_size(1);
    const float* x = vectors.flat<float>().data();
    const float* r = rotation.flat<float>().data();
    float* out = out_tensor->flat<float>().data();
    RunPerMesh(context, vectors, 15, [&](int64_t b) {
      RotateVectors(x + 3 * count * b, r + 9 * b, count, out + 3 * count * b);
    });
  }
};

class RotateVectorsGradOp : public OpKernel {
 public:
  explicit RotateVectorsGradOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& vectors = context->input(0);
    const Tensor& rotation = context->input(1);
    const Tensor& d_out = context->input(2);
    OP_REQUIRES_OK(context, CheckRotateInputs(vectors, rotation));
    OP_REQUIRES(context, d_out.shape() == vectors.shape(),
                InvalidArgument("d_out must have the shape of vectors ",
                                vectors.shape().DebugString(), ", got ",
                                d_out.shape().DebugString()));
    Tensor *d_vectors_tensor = nullptr, *d_rotation_tensor = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, vectors.shape(), &d_vectors_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(1, rotation.shape(), &d_rotation_tensor));
    const int64_t count = vectors.dim_size(1);
    const float* x = vectors.flat<float>().data();
    const float* r = rotation.flat<float>().data();
    const float* g = d_out.flat<float>().data();
    float* d_vectors = d_vectors_tensor->flat<float>().data();
    float* d_rotation = d_rotation_tensor->flat<float>().data();
    RunPerMesh(context, vectors, 40, [&](int64_t b) {
      RotateVectorsGradient(x + 3 * count * b, r + 9 * b, g + 3 * count * b, count,
                            d_vectors + 3 * count * b, d_rotation + 9 * b);
    });
  }
};

Status PointsShape(InferenceContext* c, ShapeHandle* points) {
  return c->WithRank(c->input(0), 3, points);
}

}  // namespace

REGISTER_OP("CropProject")
    .Input("vertices: float32")
    .Input("rotation: float32")
    .Input("centre: float32")
    .Input("scale: float32")
    .Input("shift: float32")
    .Attr("image_size: int")
    .Attr("depth_scale: float")
    .Output("points: float32")
    .Output("clip: float32")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle vertices;
      TF_RETURN_IF_ERROR(PointsShape(c, &vertices));
      c->set_output(0, vertices);
      c->set_output(1, c->MakeShape({c->Dim(vertices, 0), c->Dim(vertices, 1), 4}));
      return ::tensorflow::OkStatus();
    })
    .Doc(R"doc(
The crop camera (model/face/camera.py): rotation, scale, shift, then clip space.

vertices: [batch, vertices, 3] model-frame points.
rotation: [batch, 3, 3] R, applied to column vectors.
centre: [3] subtracted before the rotation.
scale: [batch] pixels per unit.
shift: [batch, 2] pixels added to (u, v).
points: [batch, vertices, 3] (u, v, depth) pixels of an image_size square image.
clip: [batch, vertices, 4] (2u/W - 1, 1 - 2v/W, -depth/depth_scale, 1).
)doc");

REGISTER_OP("CropProjectGrad")
    .Input("vertices: float32")
    .Input("rotation: float32")
    .Input("centre: float32")
    .Input("scale: float32")
    .Input("shift: float32")
    .Input("d_points: float32")
    .Input("d_clip: float32")
    .Attr("image_size: int")
    .Attr("depth_scale: float")
    .Output("d_vertices: float32")
    .Output("d_rotation: float32")
    .Output("d_scale: float32")
    .Output("d_shift: float32")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));  // d_vertices: vertices'
      c->set_output(1, c->input(1));  // d_rotation: rotation's
      c->set_output(2, c->input(3));  // d_scale: scale's
      c->set_output(3, c->input(4));  // d_shift: shift's
      return ::tensorflow::OkStatus();
    })
    .Doc(R"doc(
Gradient of CropProject with respect to vertices, rotation, scale and shift (an
empty d_points or d_clip stands for zeros).
)doc");

REGISTER_OP("RotateVectors")
    .Input("vectors: float32")
    .Input("rotation: float32")
    .Output("rotated: float32")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle vectors;
      TF_RETURN_IF_ERROR(PointsShape(c, &vectors));
      c->set_output(0, vectors);
      return ::tensorflow::OkStatus();
    })
    .Doc(R"doc(
rotated[b, n] = rotation[b] vectors[b, n] (tf.matmul(vectors, rotation, transpose_b=True)).
)doc");

REGISTER_OP("RotateVectorsGrad")
    .Input("vectors: float32")
    .Input("rotation: float32")
    .Input("d_rotated: float32")
    .Output("d_vectors: float32")
    .Output("d_rotation: float32")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->input(1));
      return ::tensorflow::OkStatus();
    })
    .Doc(R"doc(
Gradient of RotateVectors with respect to vectors and rotation.
)doc");

REGISTER_KERNEL_BUILDER(Name("CropProject").Device(DEVICE_CPU), CropProjectOp);
REGISTER_KERNEL_BUILDER(Name("CropProjectGrad").Device(DEVICE_CPU), CropProjectGradOp);
REGISTER_KERNEL_BUILDER(Name("RotateVectors").Device(DEVICE_CPU), RotateVectorsOp);
REGISTER_KERNEL_BUILDER(Name("RotateVectorsGrad").Device(DEVICE_CPU), RotateVectorsGradOp);

}  // namespace face3d
