"""Vertex normals and Lambertian spherical-harmonics shading.

Normals and light live in the camera frame: x right, y up, z towards the viewer.
"""
import math

import tensorflow.compat.v1 as tf

from renderer.rasterizer import check_static_shape, load_op, triangles_int32

# Added to the band-0 coefficient of every colour channel, so that a zero light vector is a
# plain white ambient light (irradiance DEFAULT_AMBIENT * pi * Y00 = 0.709 everywhere).
DEFAULT_AMBIENT = 0.8

# Real spherical harmonics constants (bands 0..2) times the Lambertian kernel's band factors
# pi, 2 pi / 3, pi / 4 (Ramamoorthi and Hanrahan, "An Efficient Representation for Irradiance
# Environment Maps", 2001), so that irradiance = sum_k light_k * sh_basis_k(normal).
_Y00 = 0.5 / math.sqrt(math.pi)
_Y1 = math.sqrt(3.0 / (4.0 * math.pi))
_Y2_MIXED = 0.5 * math.sqrt(15.0 / math.pi)
_Y20 = 0.25 * math.sqrt(5.0 / math.pi)
_Y22 = 0.25 * math.sqrt(15.0 / math.pi)
_A0, _A1, _A2 = math.pi, 2.0 * math.pi / 3.0, math.pi / 4.0
# The factor of each basis function of `sh_basis`, in its order: what the fused shading op multiplies
# its polynomials (1, y, z, x, xy, yz, 3z^2 - 1, xz, x^2 - y^2) by.
_BAND_SCALES = (_A0 * _Y00, _A1 * _Y1, _A1 * _Y1, _A1 * _Y1, _A2 * _Y2_MIXED, _A2 * _Y2_MIXED, _A2 * _Y20,
                _A2 * _Y2_MIXED, _A2 * _Y22)


def _mesh_tensors(vertices, triangles):
    """float32 [B, V, 3] vertices and int32 [T, 3] triangles (rasterize's checks), for the normal ops."""
    vertices = tf.convert_to_tensor(vertices, tf.float32, name="vertices")
    check_static_shape(vertices, 3, 3, "vertices", "[batch, vertices, 3]")
    triangles = triangles_int32(triangles)
    check_static_shape(triangles, 2, 3, "triangles", "[triangles, 3]")
    return vertices, triangles


def vertex_normals(vertices, triangles, name=None):
    """Area-weighted unit vertex normals, by a fused C++ op with its gradient
    (renderer/kernels/normals_core.cc).

    Args:
      vertices: [B, V, 3] float32 positions.
      triangles: [T, 3] int32; each face's normal is (v1 - v0) x (v2 - v0), so a
        counter-clockwise face in a frame with x right, y up, z towards the viewer points +z.
    Returns:
      [B, V, 3] float32 unit normals: each vertex's sum of face normals s (length twice the
      area: area weighting) over sqrt(max(|s|^2, 1e-24)), as tf.math.l2_normalize; zero for a
      vertex that no non-degenerate face uses. Differentiable with respect to `vertices`.
    Raises:
      ValueError: for wrong static shapes; TypeError for triangles that are not integers
      (a float array is refused, not truncated). A vertex index outside [0, V) is an
      InvalidArgumentError when the graph runs.
    """
    with tf.name_scope(name, "vertex_normals", [vertices, triangles]):
        vertices, triangles = _mesh_tensors(vertices, triangles)
        return load_op().vertex_normals(vertices, triangles)[0]  # [1], the sums, feeds the gradient only


@tf.RegisterGradient("VertexNormals")
def _vertex_normals_gradient(op, d_normals, d_sums):
    del d_sums  # internal
    return [load_op().vertex_normals_grad(op.inputs[0], op.inputs[1], op.outputs[1], d_normals), None]


def triangle_normals(vertices, triangles, name=None):
    """Unit face normals, by a fused C++ op with its gradient (renderer/kernels/normals_core.cc).

    Args:
      vertices: [B, V, 3] float32 positions.
      triangles: [T, 3] int32; a face's normal is (v1 - v0) x (v2 - v0) (counter-clockwise
        faces in a frame with x right, y up, z towards the viewer point +z).
    Returns:
      [B, T, 3] float32: each face normal f over sqrt(max(|f|^2, 1e-24)), as
      tf.math.l2_normalize (zero for a degenerate face). Differentiable with respect to `vertices`.
    Raises:
      ValueError: for wrong static shapes; TypeError for triangles that are not integers
      (a float array is refused, not truncated). A vertex index outside [0, V) is an
      InvalidArgumentError when the graph runs.
    """
    with tf.name_scope(name, "triangle_normals", [vertices, triangles]):
        vertices, triangles = _mesh_tensors(vertices, triangles)
        return load_op().triangle_normals(vertices, triangles)


@tf.RegisterGradient("TriangleNormals")
def _triangle_normals_gradient(op, d_normals):
    return [load_op().triangle_normals_grad(op.inputs[0], op.inputs[1], d_normals), None]


def sh_basis(normals, name=None):
    """Irradiance basis of 9 real spherical harmonics (bands 0..2) at unit normals.

    Args:
      normals: [..., 3] float32 unit normals (x right, y up, z towards the viewer).
    Returns:
      [..., 9] float32, band-major order (l, m) = (0,0), (1,-1), (1,0), (1,1), (2,-2),
      (2,-1), (2,0), (2,1), (2,2), i.e. (1, y, z, x, xy, yz, 3z^2 - 1, xz, x^2 - y^2) times
      the real-SH constants and the Lambertian band factors (pi, 2pi/3, pi/4).
    """
    with tf.name_scope(name, "sh_basis", [normals]):
        normals = tf.convert_to_tensor(normals, tf.float32, name="normals")
        x, y, z = tf.unstack(normals, 3, axis=-1)
        return tf.stack([
            _A0 * _Y00 * tf.ones_like(x),
            _A1 * _Y1 * y,
            _A1 * _Y1 * z,
            _A1 * _Y1 * x,
            _A2 * _Y2_MIXED * x * y,
            _A2 * _Y2_MIXED * y * z,
            _A2 * _Y20 * (3.0 * z * z - 1.0),
            _A2 * _Y2_MIXED * x * z,
            _A2 * _Y22 * (x * x - y * y),
        ], axis=-1)


def sh_shading(normals, albedo, light, name=None):
    """Lambertian shading under spherical-harmonics lighting, by a fused C++ op with its gradient
    (renderer/kernels/shading_core.cc; the basis of `sh_basis`, its constants given from here).

    Args:
      normals: [B, V, 3] float32 unit normals in the camera frame.
      albedo: [B, V, 3] float32 RGB reflectance (broadcast to the shape of normals).
      light: [B, 27] float32, reshaped to [B, 9, 3] (9 SH bands in `sh_basis` order, RGB
        last); DEFAULT_AMBIENT is added to band 0 of every channel.
    Returns:
      [B, V, 3] float32 colours = albedo * irradiance(normal), differentiable with respect to
      normals, albedo and light.
    Raises:
      ValueError: for a light that is not [batch, 27]. Shapes that disagree when the graph
      runs are an InvalidArgumentError.
    """
    with tf.name_scope(name, "sh_shading", [normals, albedo, light]):
        normals = tf.convert_to_tensor(normals, tf.float32, name="normals")
        light = tf.convert_to_tensor(light, tf.float32, name="light")
        if light.shape.rank is not None and (light.shape.rank != 2 or light.shape[-1] not in (None, 27)):
            raise ValueError("light must have shape [batch, 27], got %s" % light.shape)
        albedo = tf.convert_to_tensor(albedo, tf.float32, name="albedo")
        if not (albedo.shape.is_fully_defined() and albedo.shape == normals.shape):
            albedo = tf.broadcast_to(albedo, tf.shape(normals))
        ambient = tf.constant([[DEFAULT_AMBIENT] * 3] + [[0.0] * 3] * 8, tf.float32)  # [9, 3]
        coefficients = tf.reshape(light, [-1, 9, 3]) + ambient
        return load_op().sh_shading(normals, albedo, coefficients, tf.constant(_BAND_SCALES, tf.float32))


@tf.RegisterGradient("ShShading")
def _sh_shading_gradient(op, d_colours):
    return list(load_op().sh_shading_grad(*op.inputs, d_colours)) + [None]
