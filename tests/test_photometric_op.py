"""The fused photometric-loss op (renderer/photometric.py, renderer/kernels/photometric_core.cc):
against the TensorFlow formula it replaced (tests/tf_reference.py), against finite differences and
float64 sums, on empty masks and images, and on bad input."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import renderer
from model import losses
from renderer.photometric import photometric_loss_per_image
from tests.tf_reference import photometric_loss_per_image_tf, photometric_loss_tf

tf.disable_eager_execution()

EPSILON = 1e-8


def run(build, feed=None, config=None):
    with tf.Graph().as_default(), tf.Session(config=config) as session:
        return session.run(build(), feed)


def random_inputs(rng, shape):
    """images, renders [B, H, W, C] in [0, 1] and a mask [B, H, W, 1] whose images are, in turn:
    empty; about half covered (0/1); soft (values in (0, 1)); one pixel of weight exactly 1 (mask
    total on the tie of max(total, 1)); one pixel of weight 0.4 (total below 1); fully covered."""
    batch, height, width, _ = shape
    images = rng.uniform(size=shape).astype(np.float32)
    renders = rng.uniform(size=shape).astype(np.float32)
    kinds = []
    mask = np.zeros((batch, height, width, 1), np.float32)
    for b in range(batch):
        kind = b % 6
        if kind == 1:
            mask[b] = rng.uniform(size=(height, width, 1)) < 0.5
        elif kind == 2:
            mask[b] = rng.uniform(0.1, 0.9, (height, width, 1))
        elif kind == 3:
            mask[b, height // 2, width // 2] = 1.0
        elif kind == 4:
            mask[b, 0, 0] = 0.4
        elif kind == 5:
            mask[b] = 1.0
        kinds.append(kind)
    # A pixel on the mask where the render equals the photo: the distance is sqrt(epsilon).
    renders[1, 0, 0] = images[1, 0, 0]
    mask[1, 0, 0] = 1.0
    return images, renders, mask


def loss_and_gradients(fn, images, renders, mask, d_loss, config=None):
    """fn's [B] losses and the gradients of sum(loss * d_loss) wrt images, renders and mask."""
    def build():
        tensors = [tf.constant(v) for v in (images, renders, mask)]
        loss = fn(*tensors, EPSILON)
        return [loss] + tf.gradients(tf.reduce_sum(loss * d_loss), tensors)
    return run(build, config=config)


@pytest.mark.parametrize("shape", [(6, 12, 10, 3), (7, 17, 23, 3), (3, 5, 4, 1), (2, 6, 3, 5)])
def test_photometric_loss_and_its_gradients_match_the_tensorflow_version(shape):
    rng = np.random.default_rng(shape[1])
    images, renders, mask = random_inputs(rng, shape)
    d_loss = rng.normal(size=shape[0]).astype(np.float32)
    ours = loss_and_gradients(photometric_loss_per_image, images, renders, mask, d_loss)
    reference = loss_and_gradients(photometric_loss_per_image_tf, images, renders, mask, d_loss)
    for name, a, b in zip(("per_image", "d_images", "d_renders", "d_mask"), ours, reference):
        assert a.shape == b.shape, name
        assert np.all(np.isfinite(a)), name
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)
    assert ours[0][0] == 0.0  # the empty mask
    np.testing.assert_array_equal(ours[1], -ours[2])


def test_losses_photometric_loss_is_the_batch_mean_of_the_fused_op_and_matches_the_old_formula():
    rng = np.random.default_rng(4)
    images, renders, mask = random_inputs(rng, (6, 9, 8, 3))

    def build(fn):
        def inner():
            tensors = [tf.constant(v) for v in (images, renders, mask)]
            loss = fn(*tensors)
            return [loss] + tf.gradients(loss, tensors)
        return inner
    ours = run(build(losses.photometric_loss))
    reference = run(build(photometric_loss_tf))
    for name, a, b in zip(("loss", "d_images", "d_renders", "d_mask"), ours, reference):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, err_msg=name)


def test_photometric_gradient_is_right_when_it_takes_over_the_buffers_of_its_inputs():
    # Computed renders and mask (not constants) that only the loss reads: the gradient op may write
    # d_renders and d_mask over them (forward_input_or_allocate_output). Its results must not
    # change, nor those of a run that also fetches the renders and mask themselves.
    rng = np.random.default_rng(8)
    images, renders, mask = random_inputs(rng, (6, 33, 29, 3))
    d_loss = rng.normal(size=6).astype(np.float32)

    def outputs(fn, fetch_inputs):
        with tf.Graph().as_default(), tf.Session() as session:
            # Halves fed and doubled (exactly) in the graph: fresh buffers that grappler cannot fold
            # into constants.
            half_renders, half_mask = tf.placeholder(tf.float32), tf.placeholder(tf.float32)
            r, m = half_renders * 2.0, half_mask * 2.0
            loss = fn(tf.constant(images), r, m, EPSILON)
            gradients = tf.gradients(tf.reduce_sum(loss * d_loss), [r, m])
            return session.run([loss] + gradients + ([r, m] if fetch_inputs else []),
                               {half_renders: renders / 2, half_mask: mask / 2})
    reference = outputs(photometric_loss_per_image_tf, False)
    for fetch_inputs in (False, True):
        ours = outputs(photometric_loss_per_image, fetch_inputs)
        for name, a, b in zip(("per_image", "d_renders", "d_mask"), ours, reference):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)
        if fetch_inputs:
            np.testing.assert_array_equal(ours[3], renders)
            np.testing.assert_array_equal(ours[4], mask)


def finite_difference_check(values, index, step, rtol, atol):
    """The analytic gradient of sum(loss * d) wrt input `index` against central differences."""
    rng = np.random.default_rng(index)
    d_loss = rng.normal(size=values[0].shape[0])
    with tf.Graph().as_default(), tf.Session() as session:
        placeholders = [tf.placeholder(tf.float32, v.shape) for v in values]
        loss = tf.reduce_sum(photometric_loss_per_image(*placeholders, EPSILON) * d_loss)
        analytic = session.run(tf.gradients(loss, placeholders[index])[0], dict(zip(placeholders, values)))
        numeric = np.zeros(values[index].shape)
        for i in np.ndindex(values[index].shape):
            shifted = []
            for sign in (1, -1):
                point = [v.copy() for v in values]
                point[index][i] += sign * step
                shifted.append(session.run(loss, dict(zip(placeholders, point))))
            numeric[i] = (shifted[0] - shifted[1]) / (2 * step)
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol)


def finite_difference_inputs():
    """Three images of 3 x 4 pixels: mask total well above 1 (soft), below 1, and empty; colour
    differences of at least 0.1 (away from the square root's kink)."""
    rng = np.random.default_rng(21)
    images = rng.uniform(size=(3, 3, 4, 3))
    renders = images + rng.choice([-1.0, 1.0], images.shape) * rng.uniform(0.1, 0.4, images.shape)
    mask = np.zeros((3, 3, 4, 1))
    mask[0] = rng.uniform(0.3, 1.0, (3, 4, 1))
    mask[1, 1:, 2:] = 0.2  # total 0.8
    return [images, renders, mask]


@pytest.mark.parametrize("index, name", [(0, "images"), (1, "renders"), (2, "mask")])
def test_photometric_loss_gradients_match_finite_differences(index, name):
    del name
    # The loss is smooth here (no mask total near 1, no distance near 0); float32 rounding of the
    # loss (about 1e-7) over the step (1e-2) bounds the numeric error near 1e-5.
    finite_difference_check(finite_difference_inputs(), index, 1e-2, rtol=1e-2, atol=2e-4)


def test_photometric_loss_of_an_empty_mask_is_zero_with_finite_gradients():
    images = np.ones((2, 3, 3, 3), np.float32)
    renders = np.zeros_like(images)
    renders[1] = images[1]  # equal photo and render too: distance sqrt(epsilon)
    mask = np.zeros((2, 3, 3, 1), np.float32)
    d_loss = np.array([1.0, -2.0], np.float32)
    loss, d_images, d_renders, d_mask = loss_and_gradients(
        photometric_loss_per_image, images, renders, mask, d_loss)
    np.testing.assert_array_equal(loss, 0.0)
    np.testing.assert_array_equal(d_images, 0.0)
    np.testing.assert_array_equal(d_renders, 0.0)
    # The normaliser is 1: d loss / d M_p = dist_p.
    np.testing.assert_allclose(d_mask[0], np.sqrt(3.0 + EPSILON), rtol=1e-6)
    np.testing.assert_allclose(d_mask[1], -2.0 * np.sqrt(EPSILON), rtol=1e-5)


def test_photometric_loss_of_images_without_pixels_is_zero():
    def build():
        images = tf.zeros([3, 0, 5, 3])
        mask = tf.zeros([3, 0, 5, 1])
        loss = photometric_loss_per_image(images, images, mask, EPSILON)
        return [loss, tf.shape(tf.gradients(tf.reduce_sum(loss), images)[0])]
    loss, gradient_shape = run(build)
    np.testing.assert_array_equal(loss, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(gradient_shape, [3, 0, 5, 3])


def test_photometric_sums_are_double_precise_and_independent_of_the_thread_count():
    # 224 x 224 = 196 chunks of 256 pixels; 61 x 37 leaves a chunk remainder.
    rng = np.random.default_rng(7)
    for shape in ((2, 224, 224, 3), (3, 61, 37, 3)):
        images = rng.uniform(size=shape).astype(np.float32)
        renders = rng.uniform(size=shape).astype(np.float32)
        mask = (rng.uniform(size=shape[:3] + (1,)) < 0.7).astype(np.float32)
        d_loss = rng.normal(size=shape[0]).astype(np.float32)
        runs = [loss_and_gradients(photometric_loss_per_image, images, renders, mask, d_loss,
                                   tf.ConfigProto(intra_op_parallelism_threads=threads))
                for threads in (1, 3)]
        for a, b in zip(*runs):
            np.testing.assert_array_equal(a, b)
        distance = np.sqrt(np.sum(np.square(images.astype(np.float64) - renders), -1, keepdims=True) + EPSILON)
        exact = np.sum(mask * distance, axis=(1, 2, 3)) / np.maximum(np.sum(mask, axis=(1, 2, 3)), 1.0)
        np.testing.assert_allclose(runs[0][0], exact, rtol=2e-7)


def run_op(images, renders, mask, gradient_inputs=None, epsilon=EPSILON):
    """The ops themselves with every shape hidden from graph construction, so that the kernels'
    own checks run; gradient_inputs (per_image, mask_total, d_per_image) runs the gradient op."""
    with tf.Graph().as_default(), tf.Session() as session:
        values = [images, renders, mask] + list(gradient_inputs or [])
        placeholders = [tf.placeholder(tf.float32) for _ in values]
        op = renderer.load_op()
        if gradient_inputs is None:
            out = op.photometric_loss(*placeholders, epsilon=epsilon)
        else:
            out = op.photometric_loss_grad(*placeholders, epsilon=epsilon)
        return session.run(out, dict(zip(placeholders, values)))


def test_photometric_loss_rejects_mismatched_shapes_naming_the_input():
    images = np.zeros((2, 4, 5, 3), np.float32)
    mask = np.zeros((2, 4, 5, 1), np.float32)
    cases = [
        ((images[0], images[0], mask[0]), r"images must have shape \[batch, height, width, channels\], got \[4,5,3\]"),
        ((images, np.zeros((2, 4, 5, 4), np.float32), mask),
         r"renders must have the shape of images \[2,4,5,3\], got \[2,4,5,4\]"),  # another C
        ((images, images[:1], mask), r"renders must have the shape of images \[2,4,5,3\], got \[1,4,5,3\]"),
        ((images, images, images), r"mask must have shape \[2, 4, 5, 1\], got \[2,4,5,3\]"),
        ((images, images, mask[:1]), r"mask must have shape \[2, 4, 5, 1\], got \[1,4,5,1\]"),
        ((images, images, mask[..., 0]), r"mask must have shape \[2, 4, 5, 1\], got \[2,4,5\]"),
    ]
    for inputs, message in cases:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            run_op(*inputs)
    with pytest.raises(tf.errors.InvalidArgumentError, match="epsilon must be positive"):
        run_op(images, images, mask, epsilon=0.0)


def test_photometric_loss_gradient_op_rejects_mismatched_shapes_naming_the_input():
    images = np.zeros((2, 4, 5, 3), np.float32)
    mask = np.zeros((2, 4, 5, 1), np.float32)
    per_image = np.zeros(2, np.float32)
    d_renders, d_mask = run_op(images, images, mask, [per_image, per_image, per_image])
    assert d_renders.shape == images.shape and d_mask.shape == mask.shape
    for position, name in enumerate(("per_image", "mask_total", "d_per_image")):
        inputs = [per_image] * 3
        inputs[position] = np.zeros(3, np.float32)
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"%s must have shape \[2\], got \[3\]" % name):
            run_op(images, images, mask, inputs)
    with pytest.raises(tf.errors.InvalidArgumentError, match="renders must have the shape of images"):
        run_op(images, images[..., :2], mask, [per_image] * 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"mask must have shape"):
        run_op(images, images, mask[:, :3], [per_image] * 3)


def test_photometric_loss_refuses_static_shapes_that_disagree_and_a_bad_epsilon():
    with tf.Graph().as_default():
        images = tf.zeros([2, 4, 4, 3])
        for renders, mask in (([2, 4, 4, 4], [2, 4, 4, 1]), ([2, 4, 4, 3], [2, 4, 5, 1]),
                              ([2, 4, 4, 3], [2, 4, 4, 3]), ([3, 4, 4, 3], [2, 4, 4, 1])):
            with pytest.raises(ValueError):  # the shape function's error, at graph construction
                photometric_loss_per_image(images, tf.zeros(renders), tf.zeros(mask), EPSILON)
        with pytest.raises(ValueError, match="epsilon must be positive"):
            photometric_loss_per_image(images, images, tf.zeros([2, 4, 4, 1]), 0.0)
        per_image = photometric_loss_per_image(tf.placeholder(tf.float32, [None, 8, 8, 3]),
                                               tf.zeros([4, 8, 8, 3]), tf.zeros([4, 8, 8, 1]), EPSILON)
        assert per_image.shape.as_list() == [4]
