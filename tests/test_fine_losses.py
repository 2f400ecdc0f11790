"""The fine-stage losses as formulas: zero (or minimal) at their minimisers, hand-computed values."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from model import losses
from tests.tf_reference import laplacian_smoothness_loss_tf, triangle_smoothness_loss_tf, uv_smoothness_loss_tf

tf.disable_eager_execution()


def evaluate(tensor_fn, *arrays):
    with tf.Graph().as_default(), tf.Session() as session:
        tensors = [tf.constant(np.asarray(a, dtype=np.float32)) for a in arrays]
        return session.run(tensor_fn(*tensors))


def grid_triangles(n):
    """Two triangles per quad of an n x n vertex grid (vertex r n + c)."""
    index = np.arange(n * n).reshape(n, n)
    a, b, c, d = index[:-1, :-1], index[1:, :-1], index[1:, 1:], index[:-1, 1:]
    return np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])


def test_fine_photometric_loss_is_zero_when_the_render_matches_the_photo():
    rng = np.random.default_rng(0)
    images = rng.random((2, 5, 5, 3))
    mask = np.ones((2, 5, 5, 1))
    assert evaluate(losses.fine_photometric_loss, images, images, mask, mask) < 1e-3


def test_render_is_clipped_to_the_photos_range_before_the_comparison():
    # A photo clipped by its 8 bits (0 in the shadow, 1 in a highlight) and the unclipped SH
    # render of the same face: both photometric losses are zero, and pass no gradient there.
    photo = np.array([0.0, 0.0, 1.0, 0.5]).reshape(1, 1, 4, 1) * np.ones((1, 1, 1, 3))
    render = np.array([-0.3, -0.01, 1.2, 0.5]).reshape(1, 1, 4, 1) * np.ones((1, 1, 1, 3))
    mask = np.ones((1, 1, 4, 1))

    def both(images, renders, m):
        return (losses.fine_photometric_loss(images, renders, m, m),
                losses.gain_normalised_photometric_loss(images, renders, m, m, 1.0),
                tf.gradients(losses.fine_photometric_loss(images, renders, m, m), renders)[0])
    plain, gained, gradient = evaluate(both, photo, render, mask)
    assert plain < 1e-3 and gained < 1e-3
    np.testing.assert_array_equal(gradient[0, 0, :3], 0.0)
    # Inside the range the render counts as it is: a render of 0.6 against 0.5 on one pixel of four.
    render[0, 0, 3] = 0.6
    assert evaluate(both, photo, render, mask)[0] == pytest.approx(255 * 0.1 * np.sqrt(3) / 4, rel=1e-3)


def test_fine_photometric_loss_hand_computed_on_a_255_scale():
    images = np.zeros((2, 2, 2, 3))
    renders = np.zeros_like(images)
    renders[..., 0], renders[..., 1] = 0.3, 0.4           # distance 0.5 -> 127.5
    coverage = np.ones((2, 2, 2, 1))
    coverage[0, 0, 0] = 0.0                               # photo shows through: distance 0
    skin = np.ones((2, 2, 2, 1))
    skin[1, 1] = 0.0                                      # image 1: two skin pixels, both 127.5
    value = evaluate(losses.fine_photometric_loss, images, renders, coverage, skin)
    # image 0: (0 + 3 x 127.5) / 4; image 1: 127.5; mean of the two.
    assert value == pytest.approx(0.5 * (3 * 127.5 / 4 + 127.5), rel=1e-4)


def test_displacement_magnitude_loss_caps_each_square_and_means_over_the_mask():
    values = np.array([[[1.0], [2.0], [5.0], [9.0]]])      # squares 1, 4, 25 -> 10, 81 (off mask)
    mask = np.array([[[1.0], [1.0], [1.0], [0.0]]])
    assert evaluate(losses.displacement_magnitude_loss, values, mask) == pytest.approx((1 + 4 + 10) / 3.0)
    assert evaluate(losses.displacement_magnitude_loss, 0 * values, mask) == 0.0


def test_displacement_magnitude_loss_sums_channels_of_normal_differences():
    values = np.array([[[0.6, 0.8, 0.0], [0.0, 0.0, 0.0]]])
    mask = np.array([[[1.0], [1.0]]])
    assert evaluate(losses.displacement_magnitude_loss, values, mask) == pytest.approx(0.5)


def test_neighbour_pairs_of_one_quad():
    pairs = losses.neighbour_pairs(np.array([[0, 1, 2], [0, 2, 3]]), 4)
    expected = {(0, 1), (0, 2), (0, 3), (1, 0), (1, 2), (2, 0), (2, 1), (2, 3), (3, 0), (3, 2)}
    assert set(map(tuple, pairs.tolist())) == expected and len(pairs) == len(expected)


def test_adjacent_triangle_pairs_of_a_grid_are_its_inner_edges():
    triangles = grid_triangles(4)
    pairs = losses.adjacent_triangle_pairs(triangles)
    # 3 x 3 quads: 9 diagonals + 2 x 3 x 2 inner grid edges.
    assert len(pairs) == 9 + 12
    for f, g in pairs:
        assert f < g and len(set(triangles[f]) & set(triangles[g])) == 2


def test_laplacian_smoothness_is_zero_on_a_plane_and_hand_computed_on_a_bump():
    n = 5
    triangles = grid_triangles(n)
    pairs = losses.neighbour_pairs(triangles, n * n)
    flat = np.zeros((1, n * n, 3), np.float32)
    assert evaluate(lambda x: losses.laplacian_smoothness_loss(x, pairs, 0.0), flat) == 0.0
    bump = flat.copy()
    centre = 2 * n + 2
    bump[0, centre, 2] = 2.0
    # The centre: mean neighbour 0, error 4; each of its 6 neighbours: mean neighbour 2 / k_v.
    counts = np.bincount(pairs[:, 0])
    neighbours = pairs[pairs[:, 0] == centre, 1]
    expected = (4.0 - 0.5) + sum(max((2.0 / counts[v]) ** 2 - 0.5, 0.0) for v in neighbours)
    value = evaluate(lambda x: losses.laplacian_smoothness_loss(x, pairs, 0.5), bump)
    assert value == pytest.approx(expected / (n * n * 3), rel=1e-5)


def test_laplacian_dead_zone_leaves_small_deviations_free():
    triangles = grid_triangles(4)
    pairs = losses.neighbour_pairs(triangles, 16)
    rng = np.random.default_rng(1)
    x = 0.1 * rng.standard_normal((2, 16, 3))
    assert evaluate(lambda a: losses.laplacian_smoothness_loss(a, pairs, 1.0), x) == 0.0
    assert evaluate(lambda a: losses.laplacian_smoothness_loss(a, pairs, 0.0), x) > 0.0


def test_triangle_smoothness_hand_computed():
    normals = np.array([[[0.0, 0.0, 1.0], [0.0, 0.6, 0.8], [0.0, 0.0, 1.0]]])
    pairs = np.array([[0, 1], [0, 2]], np.int32)
    # pair (0, 1): squares 0, 0.36, 0.04; pair (0, 2): zeros. Dead zone 0.01.
    expected = (0.35 + 0.03) / 6.0
    value = evaluate(lambda n: losses.triangle_smoothness_loss(n, pairs, 0.01), normals)
    assert value == pytest.approx(expected, rel=1e-5)


def _loss_and_gradient(loss_fn, values, pairs, dead_zone):
    with tf.Graph().as_default(), tf.Session() as session:
        x = tf.constant(values)
        loss = loss_fn(x, pairs, dead_zone)
        return session.run([loss, tf.gradients(loss, x)[0]])


@pytest.mark.parametrize("dead_zone", [0.0, 0.05])
def test_smoothness_losses_and_gradients_match_the_gather_formulation(dead_zone):
    """The sparse-matmul Laplacian and triangle-pair terms against the gather / segment-sum ones
    they replaced (tests/tf_reference.py), on a jittered grid with a vertex of no triangle."""
    n = 6
    triangles = grid_triangles(n)
    rng = np.random.default_rng(3)
    values = rng.normal(scale=0.3, size=(3, n * n + 1, 3)).astype(np.float32)
    pairs = losses.neighbour_pairs(triangles, n * n + 1)
    ours = _loss_and_gradient(losses.laplacian_smoothness_loss, values, pairs, dead_zone)
    reference = _loss_and_gradient(laplacian_smoothness_loss_tf, values, pairs, dead_zone)
    assert ours[0] > 0.0
    np.testing.assert_allclose(ours[0], reference[0], rtol=1e-5)
    np.testing.assert_allclose(ours[1], reference[1], rtol=1e-4, atol=1e-7)
    triangle_values = rng.normal(scale=0.3, size=(3, len(triangles), 3)).astype(np.float32)
    triangle_pairs = losses.adjacent_triangle_pairs(triangles)
    ours = _loss_and_gradient(losses.triangle_smoothness_loss, triangle_values, triangle_pairs, dead_zone)
    reference = _loss_and_gradient(triangle_smoothness_loss_tf, triangle_values, triangle_pairs, dead_zone)
    assert ours[0] > 0.0
    np.testing.assert_allclose(ours[0], reference[0], rtol=1e-5)
    np.testing.assert_allclose(ours[1], reference[1], rtol=1e-4, atol=1e-7)


def test_uv_smoothness_is_zero_for_a_constant_map_and_counts_diagonals():
    assert evaluate(losses.uv_smoothness_loss, np.full((1, 4, 4, 1), 3.0)) == 0.0
    ramp = np.tile(np.arange(3.0)[None, :], (3, 1)).reshape(1, 3, 3, 1)   # d = column
    # rows: 1 everywhere; columns: 0; diagonals: (+1)^2 and (-1)^2.
    assert evaluate(losses.uv_smoothness_loss, ramp) == pytest.approx(3.0)


def test_symmetry_loss_is_zero_for_a_symmetric_map_and_hand_computed_otherwise():
    size = 4
    rows, cols = np.mgrid[0:size, 0:size]
    mirror = rows * size + (size - 1 - cols)
    symmetric = np.abs(cols - 1.5).astype(np.float32).reshape(1, size, size, 1)
    visibility = np.zeros((1, size, size, 1), np.float32)
    visibility[..., :2, :] = 1.0                        # left half seen, right half hidden
    mask = np.ones((size, size), np.float32)

    def loss(d, v):
        return losses.symmetry_loss(d, v, mirror, mask)
    assert evaluate(loss, symmetric, visibility) == 0.0
    skewed = symmetric + (cols == 3).reshape(1, size, size, 1)
    # Hidden texels: columns 2, 3 (8 texels); column 3 differs from column 0 by 1.
    assert evaluate(loss, skewed, visibility) == pytest.approx(4.0 / 8.0)


# ---- band-limiting (not in the paper): blur, high-pass, gain-normalised photometric loss


def test_gaussian_kernel_is_normalised_and_symmetric():
    taps = losses.gaussian_kernel(1.5)
    assert len(taps) == 2 * 5 + 1 and taps.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(taps, taps[::-1])
    with pytest.raises(ValueError):
        losses.gaussian_kernel(0.0)


def test_highpass_of_a_constant_is_zero_up_to_the_borders_and_keeps_a_fine_pattern():
    constant = np.full((1, 16, 16, 2), 0.7)
    np.testing.assert_allclose(evaluate(lambda x: losses.highpass(x, 2.0), constant), 0.0, atol=1e-6)
    # A linear ramp is kept out away from the borders (the blur of a ramp is the ramp).
    ramp = np.tile(np.arange(32.0)[None, :, None, None], [1, 1, 1, 1]).repeat(32, axis=1).reshape(1, 32, 32, 1)
    inner = evaluate(lambda x: losses.highpass(x, 2.0), ramp)[0, 8:-8, 8:-8]
    np.testing.assert_allclose(inner, 0.0, atol=1e-4)
    # A one-texel checkerboard is almost entirely high frequency.
    checker = (np.indices((16, 16)).sum(0) % 2).astype(float)[None, :, :, None] - 0.5
    passed = evaluate(lambda x: losses.highpass(x, 2.0), checker)[0, 6:-6, 6:-6]
    np.testing.assert_allclose(passed, checker[0, 6:-6, 6:-6], atol=1e-3)


def test_masked_blur_does_not_leak_values_from_outside_the_mask():
    images = np.zeros((1, 12, 12, 1))
    images[:, :, 6:] = 100.0                      # outside the mask
    mask = np.zeros((1, 12, 12, 1))
    mask[:, :, :6] = 1.0
    blurred = evaluate(lambda x, m: losses.gaussian_blur(x, 2.0, m), images, mask)
    np.testing.assert_allclose(blurred[0, :, :6], 0.0, atol=1e-5)


def _face_like(shape, seed):
    rng = np.random.default_rng(seed)
    smooth = np.linspace(0.3, 0.7, shape[2])[None, None, :, None] * np.ones(shape)
    return np.clip(smooth + 0.05 * rng.standard_normal(shape), 0.0, 1.0)


def test_gain_normalised_loss_is_zero_at_the_photo_and_invariant_to_a_gain():
    images = _face_like((2, 24, 24, 3), 0)
    cover = np.ones((2, 24, 24, 1))
    skin = np.ones((2, 24, 24, 1))
    loss = lambda i, r, a, s: losses.gain_normalised_photometric_loss(i, r, a, s, 3.0)
    assert evaluate(loss, images, images, cover, skin) < 1e-2
    # A constant per-channel gain (the coarse albedo or light's colour being off) costs nothing.
    assert evaluate(loss, images, images * np.array([0.6, 0.8, 1.1]), cover, skin) < 0.3
    # A smooth gain (a lighting gradient across the face) costs little next to the paper's loss,
    smooth_gain = np.linspace(0.7, 1.2, 24)[None, :, None, None] * np.ones((2, 24, 24, 3))
    gained = evaluate(loss, images, images * smooth_gain, cover, skin)
    paper = evaluate(losses.fine_photometric_loss, images, images * smooth_gain, cover, skin)
    assert gained < 0.1 * paper
    # while fine detail the photo does not have (a pattern of the pixel scale) is penalised.
    checker = (np.indices((24, 24)).sum(0) % 2)[None, :, :, None] * 0.1
    assert evaluate(loss, images, np.clip(images + checker, 0, 1), cover, skin) > 5.0


def test_gain_normalised_loss_is_its_docstring_formula_with_partial_masks():
    # The loss blurs the mask and the photo in one pass; the formula blurs each on its own.
    rng = np.random.default_rng(3)
    images = rng.uniform(size=(2, 20, 20, 3)).astype(np.float32)
    renders = rng.uniform(-0.1, 1.1, size=(2, 20, 20, 3)).astype(np.float32)
    cover = (rng.uniform(size=(2, 20, 20, 1)) > 0.3).astype(np.float32)
    skin = (rng.uniform(size=(2, 20, 20, 1)) > 0.4).astype(np.float32)

    def formula(i, r, a, s):
        c = losses.composite_render(i, r, a)
        g = (losses.gaussian_blur(i, 2.0, s) + 1e-3) / (losses.gaussian_blur(c, 2.0, s) + 1e-3)
        d = tf.sqrt(tf.reduce_sum(tf.square(255.0 * (i - g * c)), axis=-1, keepdims=True) + 1e-8)
        return tf.reduce_mean(tf.reduce_sum(s * d, axis=[1, 2, 3]) / tf.maximum(tf.reduce_sum(s, axis=[1, 2, 3]), 1.0))
    with tf.Graph().as_default(), tf.Session() as session:
        r = tf.constant(renders)
        ours = losses.gain_normalised_photometric_loss(images, r, cover, skin, 2.0)
        reference = formula(tf.constant(images), r, tf.constant(cover), tf.constant(skin))
        values = session.run([ours, reference, tf.gradients(ours, r)[0], tf.gradients(reference, r)[0]])
    np.testing.assert_allclose(values[0], values[1], rtol=1e-6)
    np.testing.assert_allclose(values[2], values[3], rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("channels", [1, 2])
def test_uv_smoothness_and_its_gradient_match_the_slicing_formulation(channels):
    rng = np.random.default_rng(channels)
    values = rng.normal(size=(2, 7, 9, channels)).astype(np.float32)

    def outputs(fn):
        with tf.Graph().as_default(), tf.Session() as session:
            x = tf.constant(values)
            loss = fn(x)
            return session.run([loss, tf.gradients(loss, x)[0]])
    ours, reference = outputs(losses.uv_smoothness_loss), outputs(uv_smoothness_loss_tf)
    np.testing.assert_allclose(ours[0], reference[0], rtol=1e-6)
    np.testing.assert_allclose(ours[1], reference[1], rtol=1e-5, atol=1e-8)
