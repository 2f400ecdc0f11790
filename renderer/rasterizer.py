"""The renderer ops: loading, the rasterizer, its gradient, and attribute interpolation.

Conventions (see renderer/README.md):
- clip-space vertices [B, V, 4] (x, y, z, w), OpenGL style: NDC = xyz / w with x right,
  y up, and smaller NDC z closer to the camera; pixels whose NDC z is outside [-1, 1]
  are not drawn.
- images [B, H, W, ...] with row 0 at the top (NDC y = +1); pixel (r, c) is sampled
  at its centre, NDC (2 (c + 0.5) / W - 1, 1 - 2 (r + 0.5) / H).
- triangles [T, 3] int32 shared by the batch; front faces are counter-clockwise in NDC.
"""
import collections
import numbers
import os

import numpy as np
import tensorflow.compat.v1 as tf

LIBRARY_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels", "rasterize_op.so")

Rasterized = collections.namedtuple("Rasterized", ["triangle_ids", "mask", "barycentrics", "depth"])
Rasterized.__doc__ = """Output of `rasterize`, one entry per pixel.

triangle_ids: [B, H, W] int32 id of the visible triangle, 0 where nothing is (see mask).
mask: [B, H, W] float32, 1 where a triangle covers the pixel centre, 0 on background.
barycentrics: [B, H, W, 3] float32 perspective-correct barycentric coordinates of the pixel
  centre with respect to the visible triangle's vertices (in the order of `triangles`),
  0 on background; differentiable with respect to the clip-space vertices.
depth: [B, H, W] float32 NDC z of the visible surface, 1 (far plane) on background;
  differentiable with respect to the clip-space vertices.
"""

_op_module = None


def load_op():
    """Loads (once) and returns the compiled op module at renderer/kernels/rasterize_op.so
    (the rasterizer, attribute interpolation and vertex normals, with their gradient ops)."""
    global _op_module
    if _op_module is None:
        if not os.path.exists(LIBRARY_PATH):
            raise RuntimeError("rasterizer kernel %s is not built: run ./install.sh or "
                               "python renderer/kernels/build.py" % LIBRARY_PATH)
        _op_module = tf.load_op_library(LIBRARY_PATH)
    return _op_module


_INT32_MAX = 2 ** 31 - 1


def _is_integer(value):
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def image_size_hw(image_size):
    """Returns (height, width) as ints from an int (square) or an (H, W) pair of ints.

    Raises ValueError for anything else (strings, floats, other lengths) and for sizes
    outside [1, 2^31 - 1].
    """
    if _is_integer(image_size):
        pair = (image_size, image_size)
    elif isinstance(image_size, (tuple, list, np.ndarray)) and len(image_size) == 2:
        pair = tuple(image_size)
    else:
        pair = None
    if pair is None or not all(_is_integer(s) for s in pair):
        raise ValueError("image_size must be an int or a (height, width) pair of ints, got %r" % (image_size,))
    height, width = int(pair[0]), int(pair[1])
    if not (0 < height <= _INT32_MAX and 0 < width <= _INT32_MAX):
        raise ValueError("image_size must be positive and at most 2^31 - 1, got %dx%d (height x width)" % (height, width))
    return height, width


def triangles_int32(triangles):
    """triangles as an int32 tensor; refuses non-integer indices and values outside int32.

    A static array is checked now (TypeError / ValueError); an int64 tensor gets a run-time
    check (InvalidArgumentError) before the cast, so that 2 + 2^32 cannot wrap to 2.
    """
    if isinstance(triangles, (tf.Tensor, tf.Variable)):
        dtype = triangles.dtype.base_dtype
        if dtype == tf.int32:
            return tf.identity(triangles, name="triangles")
        if dtype in (tf.int8, tf.int16, tf.uint8, tf.uint16):
            return tf.cast(triangles, tf.int32, name="triangles")
        if dtype == tf.int64:
            in_range = tf.reduce_all((triangles >= -_INT32_MAX - 1) & (triangles <= _INT32_MAX))
            check = tf.debugging.Assert(in_range, ["triangles holds an index outside int32"])
            with tf.control_dependencies([check]):
                return tf.cast(triangles, tf.int32, name="triangles")
        raise TypeError("triangles must hold integer vertex indices, got dtype %s" % dtype.name)
    array = np.asarray(triangles)
    if array.size and not (array.dtype.kind in "iu"):
        raise TypeError("triangles must hold integer vertex indices, got dtype %s" % array.dtype)
    if array.size and (array.min() < -_INT32_MAX - 1 or array.max() > _INT32_MAX):
        bad = array.max() if array.max() > _INT32_MAX else array.min()
        raise ValueError("triangles holds index %d, outside int32" % bad)
    return tf.constant(array.astype(np.int32), tf.int32, name="triangles")


def check_static_shape(tensor, rank, last_dim, name, dims_text):
    shape = tensor.shape
    if shape.rank is None:
        return
    if shape.rank != rank or (last_dim is not None and shape[-1] not in (None, last_dim)):
        raise ValueError("%s must have shape %s, got %s" % (name, dims_text, shape))


def rasterize(clip_vertices, triangles, image_size, cull_backfaces=False, name=None):
    """Rasterizes clip-space meshes: which triangle each pixel sees, and where in it.

    Args:
      clip_vertices: [B, V, 4] float32 clip-space x, y, z, w (see module docstring).
      triangles: [T, 3] integer vertex indices shared by the batch; counter-clockwise in NDC
        (x right, y up) is front-facing. Indices outside [0, V) raise InvalidArgumentError
        when the graph runs; non-integer indices are a TypeError, indices outside int32 a
        ValueError (static) or InvalidArgumentError (int64 tensor).
      image_size: (H, W) ints in pixels, or an int for a square image; images whose
        outputs would not fit in memory's address range are an InvalidArgumentError.
      cull_backfaces: drop clockwise (back-facing) triangles when True.
    Returns:
      A `Rasterized` tuple. Triangles with a non-finite vertex are dropped. On equal depth
      the triangle with the larger id wins.
    Raises:
      ValueError: for an image size that is not one or two ints in [1, 2^31 - 1], wrong
        ranks or static empty meshes.
    """
    height, width = image_size_hw(image_size)
    with tf.name_scope(name, "rasterize", [clip_vertices, triangles]):
        clip_vertices = tf.convert_to_tensor(clip_vertices, tf.float32, name="clip_vertices")
        triangles = triangles_int32(triangles)
        check_static_shape(clip_vertices, 3, 4, "clip_vertices", "[batch, vertices, 4]")
        check_static_shape(triangles, 2, 3, "triangles", "[triangles, 3]")
        if clip_vertices.shape[1] == 0 or triangles.shape[0] == 0:
            raise ValueError("empty mesh: clip_vertices %s, triangles %s" % (clip_vertices.shape, triangles.shape))
        outputs = load_op().rasterize_clip_triangles(
            clip_vertices, triangles, image_height=height, image_width=width, cull_backfaces=bool(cull_backfaces))
        return Rasterized(*outputs[:4])  # outputs[4] (projected vertices) feeds the gradient only


@tf.RegisterGradient("RasterizeClipTriangles")
def _rasterize_gradient(op, d_triangle_ids, d_mask, d_barycentrics, d_depth, d_projected):
    """Gradient through barycentrics and depth; triangle ids and coverage are held fixed."""
    del d_triangle_ids, d_mask, d_projected  # piecewise constant, or internal
    triangle_ids, mask, _, _, projected = op.outputs
    # An empty tensor tells the kernel that an output received no gradient.
    if d_barycentrics is None:
        d_barycentrics = tf.zeros([0], tf.float32)
    if d_depth is None:
        d_depth = tf.zeros([0], tf.float32)
    d_clip = load_op().rasterize_clip_triangles_grad(
        op.inputs[0], op.inputs[1], projected, triangle_ids, mask, d_barycentrics, d_depth)
    return [d_clip, None]


def interpolate(attributes, triangles, rasterized, name=None):
    """Interpolates per-vertex attributes at every pixel with the rasterized barycentrics.

    A fused C++ op (renderer/kernels/interpolate_core.cc): each pixel reads its triangle's three
    attribute rows and weights them, with no [B, H, W, 3, C] intermediate; its gradient op gives
    the gradients with respect to the attributes and the barycentrics.

    Args:
      attributes: [B, V, C] float32 per-vertex values (colours, normals, UVs, ...).
      triangles: [T, 3] int32, the same triangles given to `rasterize`.
      rasterized: the `Rasterized` output of `rasterize`.
    Returns:
      [B, H, W, C] float32, zero on background; differentiable with respect to
      `attributes` and, through the barycentrics, the clip-space vertices.
    Raises:
      ValueError: for wrong static ranks; TypeError for triangles that are not integers (as
      `rasterize`). A vertex index outside [0, V) or a triangle id outside [0, T) is an
      InvalidArgumentError when the graph runs.
    """
    with tf.name_scope(name, "interpolate", [attributes, triangles]):
        attributes = tf.convert_to_tensor(attributes, tf.float32, name="attributes")
        check_static_shape(attributes, 3, None, "attributes", "[batch, vertices, channels]")
        triangles = triangles_int32(triangles)
        check_static_shape(triangles, 2, 3, "triangles", "[triangles, 3]")
        return load_op().interpolate_attributes(attributes, triangles, rasterized.triangle_ids,
                                                rasterized.barycentrics)


@tf.RegisterGradient("InterpolateAttributes")
def _interpolate_gradient(op, d_output):
    d_attributes, d_barycentrics = load_op().interpolate_attributes_grad(*op.inputs, d_output)
    return [d_attributes, None, None, d_barycentrics]
