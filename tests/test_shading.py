"""renderer.shading: vertex normals and spherical-harmonics lighting."""
import math

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from renderer import shading

tf.disable_eager_execution()


def run(build):
    with tf.Graph().as_default(), tf.Session() as session:
        return session.run(build())


def uv_sphere(rows=12, cols=16):
    """Vertices [V, 3] of a unit sphere and CCW-outward triangles (seen from outside)."""
    theta = np.linspace(0.15, np.pi - 0.15, rows)
    phi = np.linspace(0, 2 * np.pi, cols, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    vertices = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    index = np.arange(rows * cols).reshape(rows, cols)
    a, b = index[:-1], np.roll(index[:-1], -1, axis=1)
    c, d = index[1:], np.roll(index[1:], -1, axis=1)
    triangles = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])
    return vertices.astype(np.float32), triangles.astype(np.int32)


def test_counter_clockwise_face_seen_from_plus_z_has_normal_plus_z():
    vertices = np.array([[[0, 0, 0], [1, 0, 0], [0, 1, 0]]], np.float32)
    normals = run(lambda: shading.vertex_normals(vertices, [[0, 1, 2]]))
    np.testing.assert_allclose(normals[0], np.tile([0, 0, 1], (3, 1)), atol=1e-6)


def test_vertex_normals_are_area_weighted():
    # Vertex 0 is shared by a large face with normal +z and a small one with normal +x.
    vertices = np.array([[[0, 0, 0], [4, 0, 0], [0, 4, 0], [0, 0, 1], [0, -1, 0]]], np.float32)
    triangles = [[0, 1, 2], [0, 3, 4]]  # areas 8 and 0.5; normals +z and +x
    normals = run(lambda: shading.vertex_normals(vertices, triangles))
    expected = np.array([1.0, 0.0, 16.0]) / math.hypot(1.0, 16.0)
    np.testing.assert_allclose(normals[0, 0], expected, atol=1e-6)


def test_sphere_vertex_normals_point_outwards_along_the_radius():
    vertices, triangles = uv_sphere()
    normals = run(lambda: shading.vertex_normals(np.stack([vertices, 2 * vertices]), triangles))
    np.testing.assert_allclose(np.linalg.norm(normals, axis=-1), 1.0, atol=1e-5)
    cosine = np.sum(normals * vertices, axis=-1)
    assert cosine.min() > 0.97


def test_sh_basis_obeys_the_addition_theorem():
    """sum_m Y_lm(n) Y_lm(d) = (2l + 1) / (4 pi) P_l(n . d) checks every basis function's constant and sign."""
    rng = np.random.default_rng(2)
    n = rng.normal(size=(200, 3))
    d = rng.normal(size=(200, 3))
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    basis_n, basis_d = run(lambda: (shading.sh_basis(n.astype(np.float32)), shading.sh_basis(d.astype(np.float32))))
    lambert = np.array([np.pi] + [2 * np.pi / 3] * 3 + [np.pi / 4] * 5)
    y_n, y_d = basis_n / lambert, basis_d / lambert
    cosine = np.sum(n * d, axis=-1)
    legendre = [np.ones_like(cosine), cosine, 0.5 * (3 * cosine ** 2 - 1)]
    for band, columns in enumerate([slice(0, 1), slice(1, 4), slice(4, 9)]):
        expected = (2 * band + 1) / (4 * np.pi) * legendre[band]
        np.testing.assert_allclose(np.sum(y_n[:, columns] * y_d[:, columns], axis=-1), expected, atol=1e-5)


def test_zero_light_is_a_uniform_white_ambient_light():
    vertices, triangles = uv_sphere()
    albedo = np.random.default_rng(3).uniform(size=(1, len(vertices), 3)).astype(np.float32)

    def build():
        normals = shading.vertex_normals(vertices[None], triangles)
        return shading.sh_shading(normals, albedo, tf.zeros([1, 27]))
    colours = run(build)
    ambient = shading.DEFAULT_AMBIENT * math.pi * 0.5 / math.sqrt(math.pi)
    np.testing.assert_allclose(colours, albedo * ambient, rtol=1e-5)


def test_a_distant_light_is_brightest_on_normals_facing_it():
    """Light coefficients = the SH of a delta light in direction d: irradiance peaks at n = d."""
    direction = np.array([0.3, -0.5, 0.81])
    direction /= np.linalg.norm(direction)
    lambert = np.array([np.pi] + [2 * np.pi / 3] * 3 + [np.pi / 4] * 5)
    normals = np.random.default_rng(4).normal(size=(1, 500, 3))
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    normals[0, 0] = direction

    def build():
        delta = shading.sh_basis(direction.astype(np.float32)) / lambert.astype(np.float32)  # [9]
        light = tf.reshape(tf.tile(delta[:, None], [1, 3]), [1, 27])
        light -= tf.constant([[shading.DEFAULT_AMBIENT] * 3 + [0.0] * 24])
        return shading.sh_shading(normals.astype(np.float32), np.ones((1, 500, 3), np.float32), light)
    colours = run(build)
    assert np.argmax(colours[0, :, 0]) == 0
    # Irradiance of a unit delta light seen head-on in the 9-term approximation: 0.25 + 0.5 + 0.3125.
    np.testing.assert_allclose(colours[0, 0], 1.0625, rtol=1e-5)


def test_sh_shading_rejects_a_wrong_light_size():
    with pytest.raises(ValueError, match=r"light must have shape \[batch, 27\]"):
        shading.sh_shading(tf.zeros([1, 3, 3]), tf.zeros([1, 3, 3]), tf.zeros([1, 9]))
