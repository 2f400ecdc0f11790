"""The coarse losses as formulas: known answers and their minima."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from model import losses
from preprocess import schema

tf.disable_eager_execution()


def evaluate(tensor_fn, *arrays):
    with tf.Graph().as_default(), tf.Session() as session:
        tensors = [tf.constant(np.asarray(a)) for a in arrays]
        return session.run(tensor_fn(*tensors))


def test_region_mask_keeps_exactly_the_listed_labels():
    segmentation = np.arange(8, dtype=np.int32).reshape(1, 2, 4)
    face = (schema.SKIN, schema.NOSE, schema.BROWS, schema.LIPS)
    mask = evaluate(lambda s: losses.region_mask(s, face), segmentation)
    assert mask.shape == (1, 2, 4, 1)
    expected = np.isin(segmentation, face).astype(np.float32)[..., None]
    np.testing.assert_array_equal(mask, expected)


def test_photometric_loss_is_the_mean_colour_distance_on_the_mask():
    images = np.zeros((2, 4, 4, 3), np.float32)
    renders = np.zeros_like(images)
    renders[..., 0], renders[..., 1] = 0.3, 0.4  # distance 0.5 everywhere
    mask = np.zeros((2, 4, 4, 1), np.float32)
    mask[0, :2] = 1.0
    mask[1, 3, 3] = 1.0
    value = evaluate(losses.photometric_loss, images, renders, mask)
    assert value == pytest.approx(0.5, rel=1e-4)


def test_photometric_loss_ignores_differences_off_the_mask():
    rng = np.random.default_rng(0)
    images = rng.random((1, 6, 6, 3)).astype(np.float32)
    renders = images.copy()
    renders[0, 3:] = 1.0 - renders[0, 3:]
    mask = np.zeros((1, 6, 6, 1), np.float32)
    mask[0, :3] = 1.0
    assert evaluate(losses.photometric_loss, images, renders, mask) < 1e-3


def test_photometric_loss_of_an_empty_mask_is_zero():
    images = np.ones((1, 3, 3, 3), np.float32)
    value = evaluate(losses.photometric_loss, images, 0 * images, np.zeros((1, 3, 3, 1), np.float32))
    assert value == 0.0


def test_landmark_weights_favour_nose_and_inner_lips():
    weights = losses.landmark_weights()
    assert weights.shape == (68,)
    assert np.all(weights[27:36] > weights[0]) and np.all(weights[60:68] > weights[0])
    assert np.all(weights[:17] == 1.0)


def test_landmark_loss_is_the_weighted_mean_squared_distance():
    target = np.zeros((1, 3, 2), np.float32)
    predicted = np.array([[[3.0, 4.0], [0.0, 1.0], [0.0, 0.0]]], np.float32)
    weights = np.array([1.0, 2.0, 5.0], np.float32)
    value = evaluate(lambda p, t: losses.landmark_loss(p, t, weights), predicted, target)
    assert value == pytest.approx((25.0 + 2.0) / 3.0)


def test_landmark_loss_is_zero_only_at_the_target():
    rng = np.random.default_rng(1)
    target = rng.random((2, 68, 2)).astype(np.float32) * 300
    at_target = evaluate(lambda p, t: losses.landmark_loss(p, t, losses.landmark_weights()), target, target)
    moved = evaluate(lambda p, t: losses.landmark_loss(p, t, losses.landmark_weights()), target + 0.5, target)
    assert at_target == 0.0 and moved > 0.0


def test_coefficient_regularization_is_the_weighted_mean_squared_norm():
    identity = np.array([[1.0, 2.0], [0.0, 0.0]], np.float32)    # squared norms 5, 0
    expression = np.array([[1.0], [3.0]], np.float32)            # 1, 9
    albedo = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]], np.float32)  # 4, 0
    value = evaluate(lambda a, b, c: losses.coefficient_regularization(a, b, c, 1.0, 0.5, 0.25),
                     identity, expression, albedo)
    assert value == pytest.approx(2.5 + 0.5 * 5.0 + 0.25 * 2.0)


@pytest.mark.parametrize("scale, expected", [(2.0, 0.0), (-1.0, 2.0)])
def test_perceptual_loss_is_the_cosine_distance(scale, expected):
    features = np.array([[1.0, 2.0, 3.0]], np.float32)
    assert evaluate(losses.perceptual_loss, features, scale * features) == pytest.approx(expected, abs=1e-6)


def test_perceptual_loss_of_orthogonal_features_is_one():
    a = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)
    b = np.array([[0.0, 5.0], [3.0, 0.0]], np.float32)
    assert evaluate(losses.perceptual_loss, a, b) == pytest.approx(1.0)
