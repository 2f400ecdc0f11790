"""Gradients of the rasterizer's barycentrics and depth, checked by finite differences."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import renderer

tf.disable_eager_execution()

IMAGE_SIZE = (12, 14)


def jittered_grid(rows, cols, rng, w_range):
    """A jittered grid mesh over NDC [-0.9, 0.9]^2 as clip-space vertices [1, V, 4].

    w_range: (low, high) of random w per vertex (x, y, z scaled by it, so the NDC mesh is
    the same); (1, 1) is orthographic.
    """
    x, y = np.meshgrid(np.linspace(-0.9, 0.9, cols + 1), np.linspace(-0.9, 0.9, rows + 1))
    xy = np.stack([x.ravel(), y.ravel()], -1) + rng.uniform(-0.05, 0.05, (x.size, 2))
    z = rng.uniform(-0.5, 0.5, (x.size, 1))
    w = rng.uniform(*w_range, (x.size, 1))
    clip = np.concatenate([xy * w, z * w, w], -1)
    index = np.arange(x.size).reshape(rows + 1, cols + 1)
    a, b, c, d = index[:-1, :-1].ravel(), index[:-1, 1:].ravel(), index[1:, :-1].ravel(), index[1:, 1:].ravel()
    triangles = np.concatenate([np.stack([a, b, d], -1), np.stack([a, d, c], -1)]).astype(np.int32)
    return clip[None].astype(np.float32), triangles


class Rasterizer:
    """One graph evaluating the outputs and the gradient of a weighted sum of them."""

    def __init__(self, triangles, vertex_count):
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.clip = tf.placeholder(tf.float32, [1, vertex_count, 4])
            self.bary_weights = tf.placeholder(tf.float32, [1] + list(IMAGE_SIZE) + [3])
            self.depth_weights = tf.placeholder(tf.float32, [1] + list(IMAGE_SIZE))
            self.out = renderer.rasterize(self.clip, triangles, IMAGE_SIZE)
            loss = (tf.reduce_sum(self.out.barycentrics * self.bary_weights)
                    + tf.reduce_sum(self.out.depth * self.depth_weights))
            self.gradient = tf.gradients(loss, self.clip)[0]
            self.session = tf.Session()

    def forward(self, clip):
        return self.session.run(self.out, {self.clip: clip})

    def loss_gradient(self, clip, bary_weights, depth_weights):
        return self.session.run(self.gradient, {self.clip: clip, self.bary_weights: bary_weights,
                                                self.depth_weights: depth_weights})


def finite_difference_check(w_range, seed, behind_eye=None):
    """Analytic and central-difference gradients of a random weighted sum of the outputs.

    behind_eye: optional vertex index whose clip coordinates are negated (w < 0), so that its
    triangles cross the eye plane and take the kernel's slow path.
    """
    rng = np.random.default_rng(seed)
    clip, triangles = jittered_grid(3, 3, rng, w_range)
    if behind_eye is not None:
        clip[0, behind_eye] *= -1.0
    rasterizer = Rasterizer(triangles, clip.shape[1])
    base = rasterizer.forward(clip)
    delta = 1e-3
    perturbed = []
    for index in np.ndindex(clip.shape):
        for sign in (1.0, -1.0):
            moved = clip.astype(np.float64)
            moved[index] += sign * delta
            perturbed.append((index, sign, rasterizer.forward(moved.astype(np.float32))))
    # Compare only pixels that show the same triangle under every perturbation: coverage
    # changes are steps, not derivatives.
    stable = base.mask == 1
    for _, _, out in perturbed:
        stable &= (out.mask == 1) & (out.triangle_ids == base.triangle_ids)
    assert stable.sum() > 0.5 * np.prod(IMAGE_SIZE)
    bary_weights = rng.normal(size=base.barycentrics.shape) * stable[..., None]
    depth_weights = rng.normal(size=base.depth.shape) * stable

    def loss(out):
        return np.sum(out.barycentrics * bary_weights) + np.sum(out.depth * depth_weights)

    numeric = np.zeros(clip.shape)
    for index, sign, out in perturbed:
        numeric[index] += sign * loss(out) / (2 * delta)
    analytic = rasterizer.loss_gradient(clip, bary_weights, depth_weights)
    return analytic, numeric


@pytest.mark.parametrize("seed", [0, 1])
def test_orthographic_gradient_matches_finite_differences(seed):
    analytic, numeric = finite_difference_check((1.0, 1.0), seed)
    assert np.abs(numeric).max() > 1.0
    np.testing.assert_allclose(analytic, numeric, rtol=2e-2, atol=2e-2 * np.abs(numeric).max())


@pytest.mark.parametrize("seed", [0, 1])
def test_perspective_gradient_matches_finite_differences(seed):
    analytic, numeric = finite_difference_check((0.5, 2.0), seed)
    assert np.abs(numeric[..., 3]).max() > 0.5  # w matters when it varies
    np.testing.assert_allclose(analytic, numeric, rtol=2e-2, atol=2e-2 * np.abs(numeric).max())


def test_gradient_of_triangles_crossing_the_eye_plane_matches_finite_differences():
    analytic, numeric = finite_difference_check((0.5, 2.0), 2, behind_eye=5)
    assert np.abs(numeric[0, 5]).max() > 0.1  # the vertex behind the eye moves pixels
    np.testing.assert_allclose(analytic, numeric, rtol=2e-2, atol=2e-2 * np.abs(numeric).max())


def test_barycentrics_do_not_depend_on_clip_z():
    rng = np.random.default_rng(3)
    clip, triangles = jittered_grid(2, 2, rng, (0.5, 2.0))
    rasterizer = Rasterizer(triangles, clip.shape[1])
    gradient = rasterizer.loss_gradient(clip, rng.normal(size=(1,) + IMAGE_SIZE + (3,)), np.zeros((1,) + IMAGE_SIZE))
    assert np.all(gradient[..., 2] == 0) and np.abs(gradient).max() > 0


def test_interpolation_gradient_with_respect_to_attributes_is_the_barycentric_scatter():
    rng = np.random.default_rng(4)
    clip, triangles = jittered_grid(2, 2, rng, (1.0, 1.0))
    weights = rng.normal(size=(1,) + IMAGE_SIZE + (2,)).astype(np.float32)
    with tf.Graph().as_default(), tf.Session() as session:
        attributes = tf.constant(rng.normal(size=(1, clip.shape[1], 2)), tf.float32)
        rasterized = renderer.rasterize(clip, triangles, IMAGE_SIZE)
        image = renderer.interpolate(attributes, triangles, rasterized)
        gradient = tf.gradients(tf.reduce_sum(image * weights), attributes)[0]
        out, gradient = session.run([rasterized, gradient])
    expected = np.zeros((clip.shape[1], 2))
    covered = out.mask[0] == 1
    corner_ids = triangles[out.triangle_ids[0][covered]]  # [P, 3]
    np.add.at(expected, corner_ids, out.barycentrics[0][covered][..., None] * weights[0][covered][:, None, :])
    np.testing.assert_allclose(gradient[0], expected, rtol=1e-5, atol=1e-5)


def test_interpolation_is_differentiable_with_respect_to_vertices():
    """A rendered linear attribute's gradient w.r.t. the vertices matches finite differences."""
    rng = np.random.default_rng(5)
    clip, triangles = jittered_grid(2, 2, rng, (0.5, 2.0))
    colours = rng.uniform(size=(1, clip.shape[1], 3)).astype(np.float32)
    with tf.Graph().as_default(), tf.Session() as session:
        clip_t = tf.placeholder(tf.float32, clip.shape)
        rendered = renderer.render(clip_t, triangles, colours, IMAGE_SIZE)
        weights = tf.constant(rng.normal(size=(1,) + IMAGE_SIZE + (3,)), tf.float32) * rendered["mask"]
        loss = tf.reduce_sum(rendered["image"] * tf.stop_gradient(weights))
        gradient = tf.gradients(loss, clip_t)[0]
        analytic, mask = session.run([gradient, rendered["mask"]], {clip_t: clip})
        index = (0, 4, 0)  # the centre vertex's x: every pixel near it moves
        values = []
        for sign in (1.0, -1.0):
            moved = clip.copy()
            moved[index] += sign * 1e-3
            moved_loss, moved_mask = session.run([loss, rendered["mask"]], {clip_t: moved})
            assert np.array_equal(moved_mask, mask)
            values.append(moved_loss)
    numeric = (values[0] - values[1]) / 2e-3
    assert abs(numeric) > 0.1
    np.testing.assert_allclose(analytic[index], numeric, rtol=3e-2)


def test_gradients_of_barycentrics_alone_and_depth_alone_add_up_to_the_joint_gradient():
    """The kernel's paths for a missing output gradient agree with its path for both."""
    rng = np.random.default_rng(6)
    clip, triangles = jittered_grid(3, 3, rng, (0.5, 2.0))
    bary_weights = rng.normal(size=(1,) + IMAGE_SIZE + (3,)).astype(np.float32)
    depth_weights = rng.normal(size=(1,) + IMAGE_SIZE).astype(np.float32)
    with tf.Graph().as_default(), tf.Session() as session:
        out = renderer.rasterize(clip, triangles, IMAGE_SIZE)
        clip_t = out.barycentrics.op.inputs[0]
        bary_loss = tf.reduce_sum(out.barycentrics * bary_weights)
        depth_loss = tf.reduce_sum(out.depth * depth_weights)
        bary_only, depth_only, joint = session.run(
            [tf.gradients(bary_loss, clip_t)[0], tf.gradients(depth_loss, clip_t)[0],
             tf.gradients(bary_loss + depth_loss, clip_t)[0]])
    assert np.abs(bary_only).max() > 0.1 and np.abs(depth_only).max() > 0.1
    np.testing.assert_allclose(bary_only + depth_only, joint, rtol=1e-5, atol=1e-5 * np.abs(joint).max())
