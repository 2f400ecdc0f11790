"""The fused bilinear sampling op (BilinearSample, renderer/kernels/sample_core.cc) and its gradient
op: against the TensorFlow formula it replaced in model/face/unwrap.bilinear_sample
(tests/tf_reference.bilinear_sample_tf), against finite differences, and on bad or non-finite input."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from model.face import unwrap
from renderer import sampling
from tests.gradient_check import central_differences
from tests.tf_reference import bilinear_sample_tf

tf.disable_eager_execution()


def random_positions(rng, batch, count, height, width):
    """Positions inside, outside and on the borders of the image: uniform over the image and a
    margin of two pixels, then pixel centres, pixel corners (the floor's kinks), the clamp
    bounds (0.5 and size - 0.5), the image's edges (0 and size), far outside and +-inf."""
    x = rng.uniform(-2.0, width + 2.0, size=(batch, count))
    y = rng.uniform(-2.0, height + 2.0, size=(batch, count))
    special_x = np.array([0.5, width - 0.5, 0.0, float(width), 1.0, 1.5, width - 1.0, width - 1.5,
                          -1e6, 1e6, np.inf, -np.inf, 2.0, 0.5, 3.25])
    special_y = np.array([0.5, height - 0.5, float(height), 0.0, height - 1.0, 1.5, 1.0, height - 1.5,
                          0.75, -np.inf, 1e6, np.inf, height - 0.5, 0.5, -1e6])
    n = min(len(special_x), count)
    x[:, :n], y[:, :n] = special_x[:n], special_y[:n]
    # Every coordinate of the special positions paired with the random other coordinate too.
    if count >= 3 * n:
        x[:, n:2 * n] = special_x[:n]
        y[:, 2 * n:3 * n] = special_y[:n]
    return np.stack([x, y], axis=-1).astype(np.float32)


def sample_outputs(sample, images, positions, d_out):
    """(out, d_images, d_positions) of sum(out * d_out)."""
    with tf.Graph().as_default(), tf.Session() as session:
        i, p = tf.constant(images), tf.constant(positions)
        out = sample(i, p)
        return session.run([out] + tf.gradients(tf.reduce_sum(out * d_out), [i, p]))


@pytest.mark.parametrize("shape", [(3, 7, 9, 6), (2, 5, 4, 1), (2, 2, 2, 3), (1, 6, 3, 4), (2, 8, 5, 5)])
def test_forward_is_bit_identical_and_gradients_match_the_tensorflow_version(shape):
    batch, height, width, channels = shape
    rng = np.random.default_rng(sum(shape))
    images = rng.normal(size=shape).astype(np.float32)
    positions = random_positions(rng, batch, 200, height, width)
    d_out = rng.normal(size=(batch, 200, channels)).astype(np.float32)
    ours = sample_outputs(sampling.bilinear_sample, images, positions, d_out)
    reference = sample_outputs(bilinear_sample_tf, images, positions, d_out)
    # The same float operations in the same order: equal bit for bit.
    np.testing.assert_array_equal(ours[0], reference[0])
    # The gradients differ in the order of their sums (the channels, the samples adding into a pixel).
    for name, a, b in zip(("d_images", "d_positions"), ours[1:], reference[1:]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max(), err_msg=name)
    # Clamped coordinates (outside [0.5, size - 0.5]) have no position gradient; the bounds do.
    d_positions = ours[2]
    outside_x = (positions[..., 0] < 0.5) | (positions[..., 0] > width - 0.5)
    outside_y = (positions[..., 1] < 0.5) | (positions[..., 1] > height - 0.5)
    assert np.all(d_positions[..., 0][outside_x] == 0.0) and np.all(d_positions[..., 1][outside_y] == 0.0)
    on_bound = positions[..., 0] == width - 0.5
    assert np.any(d_positions[..., 0][on_bound] != 0.0)


def test_forward_at_the_fine_stage_size_is_bit_identical():
    """300 x 300 x 6 images (photo and render stacked), texel positions over the face and beyond."""
    rng = np.random.default_rng(7)
    images = rng.uniform(size=(2, 300, 300, 6)).astype(np.float32)
    positions = random_positions(rng, 2, 20000, 300, 300)
    d_out = rng.normal(size=(2, 20000, 6)).astype(np.float32)
    ours = sample_outputs(sampling.bilinear_sample, images, positions, d_out)
    reference = sample_outputs(bilinear_sample_tf, images, positions, d_out)
    np.testing.assert_array_equal(ours[0], reference[0])
    for name, a, b in zip(("d_images", "d_positions"), ours[1:], reference[1:]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max(), err_msg=name)


def test_each_image_of_the_batch_is_sampled_and_gets_its_own_gradient():
    rng = np.random.default_rng(8)
    batch, height, width = 4, 5, 6
    images = np.stack([np.full((height, width, 2), b + 1.0) for b in range(batch)]).astype(np.float32)
    images += rng.normal(scale=0.01, size=images.shape).astype(np.float32)
    positions = random_positions(rng, batch, 50, height, width)
    d_out = np.ones((batch, 50, 2), np.float32)
    out, d_images, _ = sample_outputs(sampling.bilinear_sample, images, positions, d_out)
    np.testing.assert_allclose(out, np.arange(1.0, batch + 1.0)[:, None, None] * np.ones_like(out), atol=0.05)
    # The bilinear weights of a sample sum to 1: each image's gradient sums to its sample count.
    np.testing.assert_allclose(d_images.sum(axis=(1, 2, 3)), 2 * 50, rtol=1e-5)


def test_hand_computed_values_through_unwrap_take_the_fused_op():
    image = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)     # value = 3 row + column
    positions = np.array([[[0.5, 0.5], [1.0, 0.5], [1.5, 1.25], [2.9, 2.9], [-4.0, 0.5], [3.0, 3.0]]], np.float32)
    with tf.Graph().as_default(), tf.Session() as session:
        values = session.run(unwrap.bilinear_sample(tf.constant(image), tf.constant(positions)))[0, :, 0]
        ops = [op.type for op in tf.get_default_graph().get_operations()]
    assert "BilinearSample" in ops and "GatherV2" not in ops
    np.testing.assert_allclose(values, [0.0, 0.5, 3 * 0.75 + 1.0, 8.0, 0.0, 8.0], atol=1e-6)


def test_gradients_match_finite_differences_away_from_the_kinks():
    rng = np.random.default_rng(9)
    batch, height, width, channels, count = 2, 4, 5, 3, 8
    images = rng.normal(size=(batch, height, width, channels))
    # Fractions in [0.2, 0.8] of a pixel: steps of 0.01 stay in one cell. A few clamped coordinates
    # (far outside; also a step away from the clamp bound) have a zero derivative.
    cells_x = rng.integers(-1, width, size=(batch, count))
    cells_y = rng.integers(-1, height, size=(batch, count))
    positions = np.stack([cells_x + 0.5 + rng.uniform(0.2, 0.8, size=cells_x.shape),
                          cells_y + 0.5 + rng.uniform(0.2, 0.8, size=cells_y.shape)], axis=-1)
    positions[0, 0] = [-3.0, height + 4.0]
    weights = rng.normal(size=(batch, count, channels))
    with tf.Graph().as_default(), tf.Session() as session:
        holders = [tf.placeholder(tf.float32, images.shape), tf.placeholder(tf.float32, positions.shape)]
        loss = tf.reduce_sum(sampling.bilinear_sample(*holders) * weights)
        inputs = [images, positions]
        feed = dict(zip(holders, inputs))
        analytic = session.run(tf.gradients(loss, holders), feed)
        for k, numeric in enumerate(central_differences(session, loss, holders, inputs, step=1e-2)):
            np.testing.assert_allclose(analytic[k], numeric, rtol=1e-2, atol=2e-3, err_msg="input %d" % k)
    assert analytic[1][0, 0, 0] == 0.0 and analytic[1][0, 0, 1] == 0.0


def test_gradient_does_not_depend_on_the_thread_count():
    rng = np.random.default_rng(10)
    images = rng.normal(size=(3, 20, 30, 6)).astype(np.float32)
    positions = random_positions(rng, 3, 5000, 20, 30)
    d_out = rng.normal(size=(3, 5000, 6)).astype(np.float32)
    results = []
    for threads in (1, 2, 4):
        config = tf.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1)
        with tf.Graph().as_default(), tf.Session(config=config) as session:
            i, p = tf.constant(images), tf.constant(positions)
            out = sampling.bilinear_sample(i, p)
            results.append(session.run([out] + tf.gradients(tf.reduce_sum(out * d_out), [i, p])))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_non_finite_positions_do_not_crash():
    """+-inf clamps to the border; a NaN coordinate gives a NaN sample, a NaN position gradient
    and adds nothing to the image gradient."""
    rng = np.random.default_rng(11)
    images = rng.normal(size=(2, 4, 5, 3)).astype(np.float32)
    positions = random_positions(rng, 2, 30, 4, 5)
    positions[0, 3] = [np.nan, 1.0]
    positions[1, 7] = [2.0, np.nan]
    positions[1, 8] = [np.nan, np.nan]
    nan = np.isnan(positions).any(axis=-1)
    d_out = rng.normal(size=(2, 30, 3)).astype(np.float32)
    out, d_images, d_positions = sample_outputs(sampling.bilinear_sample, images, positions, d_out)
    assert np.all(np.isnan(out[nan])) and np.all(np.isfinite(out[~nan]))
    assert np.all(np.isnan(d_positions[nan])) and np.all(np.isfinite(d_positions[~nan]))
    assert np.all(np.isfinite(d_images))
    # The others are as without the NaN samples (which then get a zero upstream gradient).
    clean = positions.copy()
    clean[nan] = 1.0
    d_clean = d_out.copy()
    d_clean[nan] = 0.0
    reference = sample_outputs(sampling.bilinear_sample, images, clean, d_clean)
    np.testing.assert_array_equal(out[~nan], reference[0][~nan])
    np.testing.assert_array_equal(d_images, reference[1])
    np.testing.assert_array_equal(d_positions[~nan], reference[2][~nan])


def test_empty_inputs():
    with tf.Graph().as_default(), tf.Session() as session:
        for images, positions in ((tf.zeros([2, 3, 4, 5]), tf.zeros([2, 0, 2])),
                                  (tf.zeros([0, 3, 4, 5]), tf.zeros([0, 7, 2])),
                                  (tf.zeros([2, 3, 4, 0]), tf.zeros([2, 7, 2]))):
            out = sampling.bilinear_sample(images, positions)
            d_images, d_positions = tf.gradients(tf.reduce_sum(out), [images, positions])
            values = session.run([out, d_images, d_positions])
            assert values[0].shape == (images.shape[0], positions.shape[1], images.shape[3])
            assert values[1].shape == tuple(images.shape) and not values[1].any()
            assert values[2].shape == tuple(positions.shape) and not values[2].any()


def run(build):
    with tf.Graph().as_default(), tf.Session() as session:
        return session.run(build())


def test_bad_shapes_are_invalid_argument_errors():
    images, positions = np.zeros((2, 4, 5, 3), np.float32), np.zeros((2, 6, 2), np.float32)

    def sample(i, p):
        op = sampling.load_op()
        # Unknown ranks: the shape function cannot refuse them, the kernel must.
        return op.bilinear_sample(tf.placeholder_with_default(i, None), tf.placeholder_with_default(p, None))

    for bad_images, bad_positions, message in (
            (images[0], positions, "images must have shape"),
            (images, positions[..., :1], "positions must have shape"),
            (images, positions[0], "positions must have shape"),
            (images, positions[:1], "positions has batch 1, images 2"),
            (images[:, :1], positions, "at least 2 x 2"),
            (images[:, :, :1], positions, "at least 2 x 2")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            run(lambda: sample(bad_images, bad_positions))
    op = sampling.load_op()
    with pytest.raises(tf.errors.InvalidArgumentError, match="d_output must have shape"):
        run(lambda: op.bilinear_sample_grad(images, positions, tf.placeholder_with_default(
            np.zeros((2, 6, 4), np.float32), [None] * 3)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least 2 x 2"):
        run(lambda: op.bilinear_sample_grad(
            tf.placeholder_with_default(images[:, :1], [None] * 4), positions, np.zeros((2, 6, 3), np.float32)))
    # Static shapes are refused when the graph is built.
    with pytest.raises(ValueError, match="images must have shape"):
        sampling.bilinear_sample(images[0], positions)
    with pytest.raises(ValueError, match="at least 2 x 2"):
        sampling.bilinear_sample(images[:, :1], positions)
    with pytest.raises(ValueError, match="positions must have shape"):
        sampling.bilinear_sample(images, positions[..., :1])
    with tf.Graph().as_default():
        with pytest.raises(ValueError):
            sampling.bilinear_sample(tf.zeros([2, 4, 5, 3]), tf.zeros([3, 6, 2]))   # shape inference
