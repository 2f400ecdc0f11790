"""The fused interpolation, vertex- and triangle-normal, SH-shading and group-norm ops: against the plain TensorFlow versions they
replaced (tests/tf_reference.py), against finite differences, and on bad input."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import renderer
from renderer import shading
from model.group_norm import group_norm
from tests.tf_reference import group_norm_tf, interpolate_tf, sh_shading_tf, triangle_normals_tf, vertex_normals_tf

tf.disable_eager_execution()


def run(build, feed=None):
    with tf.Graph().as_default(), tf.Session() as session:
        return session.run(build(), feed)


def random_mesh(rng, batch=2, rows=4, cols=5):
    """A jittered grid [batch, V, 3] with random heights and its triangles [T, 3]."""
    x, y = np.meshgrid(np.linspace(-1, 1, cols), np.linspace(-1, 1, rows))
    base = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], -1)
    vertices = base[None] + rng.uniform(-0.2, 0.2, (batch,) + base.shape)
    index = np.arange(x.size).reshape(rows, cols)
    a, b, c, d = index[:-1, :-1].ravel(), index[:-1, 1:].ravel(), index[1:, :-1].ravel(), index[1:, 1:].ravel()
    triangles = np.concatenate([np.stack([a, b, d], -1), np.stack([a, d, c], -1)]).astype(np.int32)
    return vertices.astype(np.float32), triangles


def random_pixels(rng, batch, height, width, triangle_count, background=0.3):
    """Triangle ids [B, H, W] and barycentrics [B, H, W, 3] (positive, summing to 1), with a
    fraction of background pixels (id 0, barycentrics 0) as the rasterizer leaves them."""
    ids = rng.integers(0, triangle_count, (batch, height, width)).astype(np.int32)
    bary = rng.dirichlet([1, 1, 1], (batch, height, width)).astype(np.float32)
    empty = rng.uniform(size=(batch, height, width)) < background
    ids[empty], bary[empty] = 0, 0.0
    return ids, bary


# ------------------------------------------------------------------ interpolation

def interpolation_outputs(fn, attributes, triangles, ids, bary, d_out):
    """fn's output and the gradients of sum(output * d_out) wrt attributes and barycentrics."""
    def build():
        a, b = tf.constant(attributes), tf.constant(bary)
        out = fn(a, triangles, tf.constant(ids), b)
        return [out] + tf.gradients(tf.reduce_sum(out * d_out), [a, b])
    return run(build)


def fused_interpolate(attributes, triangles, ids, bary):
    return renderer.interpolate(attributes, triangles, renderer.Rasterized(ids, None, bary, None))


@pytest.mark.parametrize("channels", [1, 3, 7])
def test_interpolation_and_its_gradients_match_the_tensorflow_version(channels):
    rng = np.random.default_rng(channels)
    vertices, triangles = random_mesh(rng)
    attributes = rng.normal(size=vertices.shape[:2] + (channels,)).astype(np.float32)
    ids, bary = random_pixels(rng, 2, 6, 5, len(triangles))
    d_out = rng.normal(size=(2, 6, 5, channels)).astype(np.float32)
    ours = interpolation_outputs(fused_interpolate, attributes, triangles, ids, bary, d_out)
    reference = interpolation_outputs(interpolate_tf, attributes, triangles, ids, bary, d_out)
    for name, a, b in zip(("output", "d_attributes", "d_barycentrics"), ours, reference):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=name)


def test_interpolation_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    vertices, triangles = random_mesh(rng, batch=1, rows=3, cols=3)
    attributes = rng.normal(size=(1, len(vertices[0]), 2))
    ids, bary = random_pixels(rng, 1, 3, 4, len(triangles))
    d_out = rng.normal(size=(1, 3, 4, 2))
    with tf.Graph().as_default(), tf.Session() as session:
        a = tf.placeholder(tf.float32, attributes.shape)
        b = tf.placeholder(tf.float32, bary.shape)
        loss = tf.reduce_sum(fused_interpolate(a, triangles, ids, b) * d_out)
        grads = tf.gradients(loss, [a, b])

        def value(a_value, b_value):
            return float(session.run(loss, {a: a_value, b: b_value}))

        analytic = session.run(grads, {a: attributes, b: bary})
        step = 1e-2  # the loss is linear in each input: central differences are exact up to rounding
        for index, (point, other) in enumerate(((attributes, bary), (bary, attributes))):
            numeric = np.zeros(point.shape)
            for i in np.ndindex(point.shape):
                plus, minus = point.copy(), point.copy()
                plus[i] += step
                minus[i] -= step
                args = [(plus, other), (minus, other)] if index == 0 else [(other, plus), (other, minus)]
                numeric[i] = (value(*args[0]) - value(*args[1])) / (2 * step)
            np.testing.assert_allclose(analytic[index], numeric, rtol=1e-3, atol=1e-3)


def test_interpolation_rejects_out_of_range_ids_and_indices():
    rng = np.random.default_rng(0)
    vertices, triangles = random_mesh(rng, batch=1)
    attributes = vertices
    ids, bary = random_pixels(rng, 1, 2, 2, len(triangles))
    bad_ids = ids.copy()
    bad_ids[0, 1, 1] = len(triangles)
    with pytest.raises(tf.errors.InvalidArgumentError, match="triangle_ids holds"):
        run(lambda: fused_interpolate(attributes, triangles, bad_ids, bary))
    bad_ids[0, 1, 1] = -1
    with pytest.raises(tf.errors.InvalidArgumentError, match="triangle_ids holds -1"):
        run(lambda: fused_interpolate(attributes, triangles, bad_ids, bary))
    bad_triangles = triangles.copy()
    bad_triangles[2, 1] = len(vertices[0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="triangle 2 has a vertex index outside"):
        run(lambda: fused_interpolate(attributes, bad_triangles, ids, bary))
    with pytest.raises(tf.errors.InvalidArgumentError, match="triangle_ids has batch 1, attributes 2"):
        _run_with_placeholders(attributes[[0, 0]], triangles, ids, bary)


def _run_with_placeholders(attributes, triangles, ids, bary):
    """Runs the op with shapes hidden from graph construction, so that the kernel's own checks run."""
    with tf.Graph().as_default(), tf.Session() as session:
        a = tf.placeholder(tf.float32, [None, None, None])
        i = tf.placeholder(tf.int32, [None, None, None])
        b = tf.placeholder(tf.float32, [None, None, None, None])
        out = renderer.load_op().interpolate_attributes(a, triangles, i, b)
        return session.run(out, {a: attributes, i: ids, b: bary})


def test_interpolation_rejects_mismatched_barycentrics_and_an_empty_mesh():
    rng = np.random.default_rng(1)
    vertices, triangles = random_mesh(rng, batch=1)
    ids, bary = random_pixels(rng, 1, 2, 2, len(triangles))
    with pytest.raises(tf.errors.InvalidArgumentError, match="barycentrics must have shape"):
        _run_with_placeholders(vertices, triangles, ids, bary[:, :1])
    with pytest.raises(tf.errors.InvalidArgumentError, match="empty mesh"):
        _run_with_placeholders(vertices[:, :0], triangles, ids, bary)


# ------------------------------------------------------------------ vertex normals

def normals_outputs(fn, vertices, triangles, d_normals):
    def build():
        v = tf.constant(vertices)
        normals = fn(v, triangles)
        return [normals, tf.gradients(tf.reduce_sum(normals * d_normals), v)[0]]
    return run(build)


def test_vertex_normals_and_their_gradient_match_the_tensorflow_version():
    rng = np.random.default_rng(5)
    vertices, triangles = random_mesh(rng, batch=3, rows=6, cols=7)
    # One vertex no face uses: normal and gradient zero in both.
    vertices = np.concatenate([vertices, rng.normal(size=(3, 1, 3)).astype(np.float32)], axis=1)
    d_normals = rng.normal(size=vertices.shape).astype(np.float32)
    ours = normals_outputs(shading.vertex_normals, vertices, triangles, d_normals)
    reference = normals_outputs(vertex_normals_tf, vertices, triangles, d_normals)
    np.testing.assert_allclose(ours[0], reference[0], rtol=1e-5, atol=1e-6, err_msg="normals")
    np.testing.assert_allclose(ours[1], reference[1], rtol=1e-4, atol=1e-5, err_msg="d_vertices")
    np.testing.assert_array_equal(ours[0][:, -1], 0.0)


def test_vertex_normals_gradient_matches_finite_differences():
    rng = np.random.default_rng(6)
    vertices, triangles = random_mesh(rng, batch=1, rows=3, cols=3)
    vertices = vertices.astype(np.float64)
    d_normals = rng.normal(size=vertices.shape)
    with tf.Graph().as_default(), tf.Session() as session:
        v = tf.placeholder(tf.float32, vertices.shape)
        loss = tf.reduce_sum(shading.vertex_normals(v, triangles) * d_normals)
        analytic = session.run(tf.gradients(loss, v)[0], {v: vertices})
        step = 1e-3
        numeric = np.zeros(vertices.shape)
        for i in np.ndindex(vertices.shape):
            plus, minus = vertices.copy(), vertices.copy()
            plus[i] += step
            minus[i] -= step
            numeric[i] = (session.run(loss, {v: plus}) - session.run(loss, {v: minus})) / (2 * step)
    np.testing.assert_allclose(analytic, numeric, rtol=2e-2, atol=2e-3)


def test_vertex_normals_reject_out_of_range_indices():
    vertices = np.zeros((1, 3, 3), np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="triangle 1 has a vertex index outside"):
        run(lambda: shading.vertex_normals(vertices, [[0, 1, 2], [0, 3, 1]]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="outside"):
        run(lambda: shading.vertex_normals(vertices, [[0, -1, 2]]))


# ------------------------------------------------------------------ triangle normals

def test_triangle_normals_and_their_gradient_match_the_tensorflow_version():
    rng = np.random.default_rng(15)
    vertices, triangles = random_mesh(rng, batch=3, rows=6, cols=7)
    # A degenerate face (all three corners one vertex): normal and gradient zero in both.
    triangles = np.concatenate([triangles, [[4, 4, 4]]]).astype(np.int32)
    d_normals = rng.normal(size=(3, len(triangles), 3)).astype(np.float32)
    ours = normals_outputs(shading.triangle_normals, vertices, triangles, d_normals)
    reference = normals_outputs(triangle_normals_tf, vertices, triangles, d_normals)
    assert ours[0].shape == (3, len(triangles), 3)
    np.testing.assert_allclose(ours[0], reference[0], rtol=1e-5, atol=1e-6, err_msg="normals")
    np.testing.assert_allclose(ours[1], reference[1], rtol=1e-4, atol=1e-5, err_msg="d_vertices")
    np.testing.assert_array_equal(ours[0][:, -1], 0.0)
    np.testing.assert_allclose(np.linalg.norm(ours[0][:, :-1], axis=-1), 1.0, rtol=1e-6)


def test_triangle_normals_gradient_matches_finite_differences():
    rng = np.random.default_rng(16)
    vertices, triangles = random_mesh(rng, batch=2, rows=3, cols=3)
    vertices = vertices.astype(np.float64)
    d_normals = rng.normal(size=(2, len(triangles), 3))
    with tf.Graph().as_default(), tf.Session() as session:
        v = tf.placeholder(tf.float32, vertices.shape)
        loss = tf.reduce_sum(shading.triangle_normals(v, triangles) * d_normals)
        analytic = session.run(tf.gradients(loss, v)[0], {v: vertices})
        step = 1e-3
        numeric = np.zeros(vertices.shape)
        for i in np.ndindex(vertices.shape):
            plus, minus = vertices.copy(), vertices.copy()
            plus[i] += step
            minus[i] -= step
            numeric[i] = (session.run(loss, {v: plus}) - session.run(loss, {v: minus})) / (2 * step)
    np.testing.assert_allclose(analytic, numeric, rtol=2e-2, atol=2e-3)


def test_triangle_normals_reject_out_of_range_indices_and_bad_gradients():
    vertices = np.zeros((1, 3, 3), np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="triangle 1 has a vertex index outside"):
        run(lambda: shading.triangle_normals(vertices, [[0, 1, 2], [0, 3, 1]]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="outside"):
        run(lambda: shading.triangle_normals(vertices, [[0, -1, 2]]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="d_normals must have shape"):
        run(lambda: renderer.rasterizer.load_op().triangle_normals_grad(
            vertices, [[0, 1, 2]], np.zeros((1, 2, 3), np.float32)))


def test_fused_ops_refuse_float_triangles_instead_of_truncating_them():
    # tf.convert_to_tensor(np.array([[0, 1, 2.5]]), tf.int32) truncates silently; the ops do not.
    vertices = np.zeros((1, 3, 3), np.float32)
    bad = np.array([[0.0, 1.0, 2.5]])
    with tf.Graph().as_default():
        with pytest.raises(TypeError, match="triangles must hold integer vertex indices, got dtype float64"):
            shading.triangle_normals(vertices, bad)
        with pytest.raises(TypeError, match="triangles must hold integer vertex indices"):
            shading.vertex_normals(vertices, bad)
        with pytest.raises(TypeError, match="triangles must hold integer vertex indices, got dtype float32"):
            shading.vertex_normals(vertices, tf.constant(bad, tf.float32))
        clip = tf.constant([[[-0.5, -0.5, 0.0, 1.0], [0.5, -0.5, 0.0, 1.0], [0.0, 0.5, 0.0, 1.0]]])
        rasterized = renderer.rasterize(clip, [[0, 1, 2]], 8)
        with pytest.raises(TypeError, match="triangles must hold integer vertex indices"):
            renderer.interpolate(tf.ones([1, 3, 2]), bad, rasterized)
    # Integer arrays of any width still go in (int64 is checked against the int32 range).
    normals = run(lambda: shading.triangle_normals(np.eye(3, dtype=np.float32)[None], np.array([[0, 1, 2]], np.int64)))
    np.testing.assert_allclose(normals, [[[1 / np.sqrt(3)] * 3]], rtol=1e-6)


# ------------------------------------------------------------------ group normalisation

def group_norm_outputs(fn, x, gamma, beta, groups, dy):
    def build():
        tensors = [tf.constant(v) for v in (x, gamma, beta)]
        y = fn(*tensors, groups)
        return [y] + tf.gradients(tf.reduce_sum(y * dy), tensors)
    return run(build)


@pytest.mark.parametrize("shape, groups", [((3, 5, 4, 16), 8), ((2, 7, 9, 6), 3), ((1, 2, 2, 8), 1)])
def test_group_norm_and_its_gradients_match_the_tensorflow_version(shape, groups):
    rng = np.random.default_rng(shape[-1])
    # An offset mean, as after a convolution, so that the variance is not of centred values.
    x = (rng.normal(size=shape) * rng.uniform(0.5, 3.0, shape[-1]) + 2.0).astype(np.float32)
    gamma, beta = rng.normal(size=(2, shape[-1])).astype(np.float32)
    dy = rng.normal(size=shape).astype(np.float32)
    ours = group_norm_outputs(group_norm, x, gamma, beta, groups, dy)
    reference = group_norm_outputs(group_norm_tf, x, gamma, beta, groups, dy)
    for name, a, b in zip(("y", "dx", "d_gamma", "d_beta"), ours, reference):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4, err_msg=name)


def test_group_norm_gradients_match_finite_differences():
    rng = np.random.default_rng(9)
    shape = (2, 3, 2, 4)
    values = [rng.normal(size=shape) + 1.0, rng.normal(size=4), rng.normal(size=4)]
    dy = rng.normal(size=shape)
    with tf.Graph().as_default(), tf.Session() as session:
        placeholders = [tf.placeholder(tf.float32, v.shape) for v in values]
        loss = tf.reduce_sum(group_norm(*placeholders, 2) * dy)
        analytic = session.run(tf.gradients(loss, placeholders), dict(zip(placeholders, values)))
        step = 1e-2
        for index, value in enumerate(values):
            numeric = np.zeros(value.shape)
            for i in np.ndindex(value.shape):
                shifted = []
                for sign in (1, -1):
                    point = [v.copy() for v in values]
                    point[index][i] += sign * step
                    shifted.append(session.run(loss, dict(zip(placeholders, point))))
                numeric[i] = (shifted[0] - shifted[1]) / (2 * step)
            np.testing.assert_allclose(analytic[index], numeric, rtol=1e-2, atol=1e-2)


def test_group_norm_rejects_channels_the_groups_do_not_divide():
    with pytest.raises(ValueError, match="6 channels do not split into 4 groups"):
        run(lambda: group_norm(tf.zeros([1, 2, 2, 6]), tf.ones([6]), tf.zeros([6]), 4))
    with tf.Graph().as_default(), tf.Session() as session:
        x = tf.placeholder(tf.float32, [None, None, None, None])
        y = group_norm(x, tf.ones([6]), tf.zeros([6]), 4)
        with pytest.raises(tf.errors.InvalidArgumentError, match="multiple of groups"):
            session.run(y, {x: np.zeros((1, 2, 2, 6))})
        y = group_norm(x, tf.ones([4]), tf.zeros([4]), 2)
        with pytest.raises(tf.errors.InvalidArgumentError, match="gamma and beta must have shape"):
            session.run(y, {x: np.zeros((1, 2, 2, 6))})


# ------------------------------------------------------------------ SH shading

def shading_outputs(fn, normals, albedo, light, d_colours):
    def build():
        tensors = [tf.constant(v) for v in (normals, albedo, light)]
        colours = fn(*tensors)
        return [colours] + tf.gradients(tf.reduce_sum(colours * d_colours), tensors)
    return run(build)


def random_shading_inputs(rng, batch=2, vertices=50):
    normals = rng.normal(size=(batch, vertices, 3))
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    return (normals.astype(np.float32), rng.uniform(size=(batch, vertices, 3)).astype(np.float32),
            rng.normal(0, 0.3, (batch, 27)).astype(np.float32))


def test_sh_shading_and_its_gradients_match_the_tensorflow_version():
    rng = np.random.default_rng(11)
    normals, albedo, light = random_shading_inputs(rng)
    d_colours = rng.normal(size=normals.shape).astype(np.float32)
    ours = shading_outputs(shading.sh_shading, normals, albedo, light, d_colours)
    reference = shading_outputs(sh_shading_tf, normals, albedo, light, d_colours)
    for name, a, b in zip(("colours", "d_normals", "d_albedo", "d_light"), ours, reference):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=name)


def test_sh_shading_gradients_match_finite_differences():
    rng = np.random.default_rng(12)
    values = [v.astype(np.float64) for v in random_shading_inputs(rng, batch=1, vertices=3)]
    d_colours = rng.normal(size=values[0].shape)
    with tf.Graph().as_default(), tf.Session() as session:
        placeholders = [tf.placeholder(tf.float32, v.shape) for v in values]
        loss = tf.reduce_sum(shading.sh_shading(*placeholders) * d_colours)
        analytic = session.run(tf.gradients(loss, placeholders), dict(zip(placeholders, values)))
        step = 1e-2
        for index, value in enumerate(values):
            numeric = np.zeros(value.shape)
            for i in np.ndindex(value.shape):
                shifted = []
                for sign in (1, -1):
                    point = [v.copy() for v in values]
                    point[index][i] += sign * step
                    shifted.append(session.run(loss, dict(zip(placeholders, point))))
                numeric[i] = (shifted[0] - shifted[1]) / (2 * step)
            np.testing.assert_allclose(analytic[index], numeric, rtol=1e-2, atol=1e-2)


def test_sh_shading_rejects_a_light_of_another_batch():
    with tf.Graph().as_default(), tf.Session() as session:
        light = tf.placeholder(tf.float32, [None, 27])
        colours = shading.sh_shading(tf.zeros([2, 4, 3]), tf.zeros([2, 4, 3]), light)
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"coefficients must have shape \[2, 9, 3\]"):
            session.run(colours, {light: np.zeros((3, 27))})


def test_group_norm_of_empty_images_is_empty_with_zero_parameter_gradients():
    def build():
        x, gamma, beta = tf.zeros([2, 0, 3, 8]), tf.ones([8]), tf.zeros([8])
        y = group_norm(x, gamma, beta, 4)
        return [tf.shape(y)] + tf.gradients(tf.reduce_sum(y), [gamma, beta])
    shape, d_gamma, d_beta = run(build)
    np.testing.assert_array_equal(shape, [2, 0, 3, 8])
    np.testing.assert_array_equal(d_gamma, 0.0)
    np.testing.assert_array_equal(d_beta, 0.0)
