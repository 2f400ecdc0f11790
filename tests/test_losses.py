"""The coarse losses as formulas: known answers and their minima."""
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from model import losses
from preprocess import schema

tf.disable_eager_execution()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def test_photometric_loss_of_a_batch_is_the_mean_of_its_images_losses():
    # Masks of very different areas: each image counts the same (the mean over equal slices of a
    # batch is then the batch's loss, which in-graph towers rely on).
    rng = np.random.default_rng(1)
    images = rng.random((3, 5, 5, 3)).astype(np.float32)
    renders = rng.random((3, 5, 5, 3)).astype(np.float32)
    mask = np.zeros((3, 5, 5, 1), np.float32)
    mask[0] = 1.0
    mask[1, 0, 0] = 1.0
    mask[2, 1:3] = 0.5
    singles = [evaluate(losses.photometric_loss, images[i:i + 1], renders[i:i + 1], mask[i:i + 1]) for i in range(3)]
    expected = [np.sum(mask[i] * np.linalg.norm(images[i] - renders[i], axis=-1, keepdims=True)) / max(mask[i].sum(), 1.0)
                for i in range(3)]
    np.testing.assert_allclose(singles, expected, rtol=1e-4)
    whole = evaluate(losses.photometric_loss, images, renders, mask)
    assert whole == pytest.approx(np.mean(expected), rel=1e-4)


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


# Perturbations of ground-truth coefficients: (part, index slice, offset).
PERTURBATIONS = {
    "yaw": ("pose", slice(1, 2), 0.15),
    "translation": ("pose", slice(3, 5), 6.0),
    "scale": ("pose", slice(5, 6), 0.08),
    "identity": ("identity", slice(0, 5), 1.5),
    "albedo": ("albedo", slice(0, 3), 1.5),
    "light": ("light", slice(0, 3), 0.3),
}
GEOMETRIC = ("yaw", "translation", "scale", "identity")


@pytest.fixture(scope="module")
def synthetic_losses(tmp_path_factory):
    """Photometric and landmark losses of 4 synthetic faces at their ground-truth coefficients and
    at each perturbation of them: dict name -> (photometric, landmark)."""
    import subprocess
    import sys

    from model import coarse
    from model.data import make_dataset
    from model.face import FaceModel

    out = tmp_path_factory.mktemp("synthetic")
    subprocess.run([sys.executable, "-m", "preprocess.synthesize", "--num=4", "--out=%s" % out, "--seed=11",
                    "--workers=1"], cwd=REPO, check=True, capture_output=True, timeout=300)
    face_model = FaceModel()
    results = {}
    with tf.Graph().as_default(), tf.Session() as session:
        batch = session.run(tf.data.make_one_shot_iterator(make_dataset(
            str(out / "*.tfrecord"), 4, augment=False, shuffle=False, repeat=False)).get_next())
        coeffs = tf.placeholder(tf.float32, batch["gt/coefficients"].shape)
        model = coarse.CoarseModel(face_model, net=None)
        fixed = {key: tf.constant(batch[key]) for key in ("image", "landmarks", "segmentation")}
        terms = model.losses(fixed, model.decode(coeffs, fixed["image"]),
                             coarse.LossWeights(1.0, 1.0, 0.0, 0.0, 0.0, 0.0))
        fetch = (terms["photometric"], terms["landmark"])
        truth = batch["gt/coefficients"]
        results["truth"] = session.run(fetch, {coeffs: truth})
        offsets = {name: int(np.sum([face_model.k_id, face_model.k_exp, face_model.k_tex, 6][:index]))
                   for index, name in enumerate(["identity", "expression", "albedo", "pose", "light"])}
        for name, (part, where, delta) in PERTURBATIONS.items():
            moved = truth.copy()
            moved[:, offsets[part] + where.start:offsets[part] + where.stop] += delta
            results[name] = session.run(fetch, {coeffs: moved})
    return results


@pytest.mark.slow
@pytest.mark.parametrize("perturbation", sorted(PERTURBATIONS))
def test_photometric_loss_is_lowest_at_the_ground_truth_of_synthetic_faces(synthetic_losses, perturbation):
    assert synthetic_losses[perturbation][0] > synthetic_losses["truth"][0]


@pytest.mark.slow
@pytest.mark.parametrize("perturbation", GEOMETRIC)
def test_landmark_loss_is_lowest_at_the_ground_truth_of_synthetic_faces(synthetic_losses, perturbation):
    assert synthetic_losses["truth"][1] < 0.05  # px^2: the records hold the projected model landmarks
    assert synthetic_losses[perturbation][1] > 10 * synthetic_losses["truth"][1] + 1.0
