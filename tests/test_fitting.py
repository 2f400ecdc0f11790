"""Test-time fitting: it finds a known pose from a frontal start and follows a tilted photo where the
network alone does not, and it fits each crop on its own."""
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

from model import coarse, fitting
from model.face import COEFFICIENT_PARTS, ENCODER_SIZE, FaceModel, forward
from preprocess import images, photo, segmentation, synthesize
from tests import face_model_oracle as oracle

tf.disable_eager_execution()

# Small renders keep the property tests fast; the pose tests use the training size.
SMALL_RENDER = 64
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASTRONAUT = os.path.join(REPO, "resources", "examples", "astronaut.png")
RELEASE = os.path.join(REPO, "results", "release", "coarse")


@pytest.fixture(scope="module")
def face_model():
    return FaceModel()


def framed_coefficients(face_model, rng, yaw_deg, roll_deg):
    """A random face at the given yaw and roll (degrees), framed as the crop rule frames a photo."""
    sizes = face_model.split_coefficients(np.zeros(face_model.coeff_size))
    parts = {name: np.zeros(len(value)) for name, value in sizes.items()}
    parts["identity"] = 0.5 * rng.standard_normal(face_model.k_id)
    parts["albedo"] = 0.5 * rng.standard_normal(face_model.k_tex)
    parts["pose"][:3] = np.deg2rad([5.0, yaw_deg, roll_deg])
    shape = oracle.shape(face_model, parts["identity"], parts["expression"])
    landmarks = oracle.landmarks(face_model, oracle.project(face_model, shape, parts["pose"]))[0]
    a, b = synthesize.framing(landmarks)
    parts["pose"] = synthesize.framed_pose(parts["pose"], a, b)
    return np.concatenate([parts[name] for name in COEFFICIENT_PARTS]).astype(np.float32)


def render_crops(face_model, coefficients):
    """[B, C] -> (crops uint8 [B,300,300,3] on grey, landmarks [B,68,2], segmentation [B,300,300]),
    the segmentation made from the landmarks as for a photo."""
    with tf.Graph().as_default(), tf.Session() as session:
        outputs = forward.render_face(face_model, tf.constant(coefficients), 300)
        grey = tf.fill(tf.shape(outputs["render"]), 0.45)
        image, landmarks = session.run([coarse.composite(outputs["render"], outputs["mask"], grey),
                                        outputs["landmarks"]])
    crops = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    labels = np.stack([segmentation.segment_face(c, l) for c, l in zip(crops, landmarks)]).astype(np.int32)
    return crops, landmarks, labels


def fit(face_model, crops, landmarks, labels, initial, steps, **options):
    with tf.Graph().as_default(), tf.Session() as session:
        fitter = fitting.CoefficientFitter(face_model, len(crops), **options)
        session.run(fitter.initializer())
        trace = []
        result = fitter.fit(session, crops, landmarks, labels, initial, steps, trace=trace)
    return result, trace


def test_fit_from_a_frontal_start_recovers_a_turned_and_tilted_head(face_model):
    rng = np.random.default_rng(3)
    truth = np.stack([framed_coefficients(face_model, rng, yaw_deg=35.0, roll_deg=-15.0) for _ in range(3)])
    crops, landmarks, labels = render_crops(face_model, truth)
    frontal = np.zeros_like(truth)  # what the network gives for a turned head in photos
    fitted, trace = fit(face_model, crops, landmarks, labels, frontal, fitting.DEFAULT_STEPS)
    pitch, yaw, roll = np.rad2deg(face_model.split_coefficients(fitted)["pose"][:, :3]).T
    # The default 50 steps leave yaw 4 to 7 degrees past the truth (pitch and yaw trade off on the
    # jaw points; 200 steps come within 3.5) and roll up to 4 short of it, depending on the face
    # (these three: yaw errors 7.2, 3.7, 6.3, roll 3.9, 1.1, 1.0; on the face model before size and
    # pitch left the identity 6.9, 5.3, 6.1 and 2.4, 0.0, 1.3): the bounds say the heads come out
    # turned and tilted, from 35 and 15 degrees away, each with at most a third of its start's
    # error, not that the fit has converged. (A single bound of 3 degrees on the first face's roll
    # held on that model and not on this one: a seed's luck, hence three faces.)
    yaw_error, roll_error = np.abs(yaw - 35.0), np.abs(roll + 15.0)
    assert np.all(yaw_error < 35.0 / 3) and np.all(roll_error < 15.0 / 3), (pitch, yaw, roll)
    assert yaw_error.mean() < 8.0 and roll_error.mean() < 3.0, (pitch, yaw, roll)
    assert np.all(trace[-1]["landmark"] < 0.05 * trace[0]["landmark"])


def test_fit_from_the_network_follows_a_tilted_photo(face_model):
    """The example photo turned by +20 and -20 degrees in the image plane: the fitted roll angles
    differ by 40 degrees (the released network's alone by about 15: it leaves tilted heads upright)."""
    picture = Image.fromarray(images.load_image(ASTRONAUT))
    roll = {}
    with tf.Graph().as_default(), tf.Session() as session:
        crop = tf.placeholder(tf.float32, [1, 300, 300, 3])
        net = coarse.CoarseNet(face_model.k_id, face_model.k_exp, face_model.k_tex)
        network_coeffs = net(coarse.resize_for_encoder(crop))
        fitter = fitting.CoefficientFitter(face_model)
        session.run(fitter.initializer())
        tf.train.Saver(net.variables()).restore(session, tf.train.latest_checkpoint(RELEASE))
        for angle in (20.0, -20.0):  # counter-clockwise on screen: roll grows (y up, z to the viewer)
            rotated = np.asarray(picture.rotate(angle, Image.BILINEAR, fillcolor=(128, 128, 128)))
            face = photo.crop_face(rotated)
            start = session.run(network_coeffs, {crop: face.image[None] / 255.0})
            fitted = fitter.fit(session, face.image[None], face.landmarks[None], face.segmentation[None],
                                start, fitting.DEFAULT_STEPS)
            roll[angle] = np.rad2deg(face_model.split_coefficients(fitted)["pose"][0, 2])
    assert abs(roll[20.0] - roll[-20.0] - 40.0) < 4.0, roll


def test_zero_steps_return_the_starting_coefficients(face_model):
    truth = framed_coefficients(face_model, np.random.default_rng(4), 10.0, 0.0)
    crops, landmarks, labels = render_crops(face_model, truth[None])
    start = np.random.default_rng(5).normal(0.0, 0.3, (1, face_model.coeff_size)).astype(np.float32)
    fitted, _ = fit(face_model, crops, landmarks, labels, start, 0, render_size=SMALL_RENDER)
    np.testing.assert_array_equal(fitted, start)


def test_fixed_parts_keep_their_starting_values_and_the_others_move(face_model):
    truth = framed_coefficients(face_model, np.random.default_rng(6), 20.0, 5.0)
    crops, landmarks, labels = render_crops(face_model, truth[None])
    start = np.zeros((1, face_model.coeff_size), np.float32)
    fitted, _ = fit(face_model, crops, landmarks, labels, start, 5, render_size=SMALL_RENDER,
                    fixed_parts=("pose", "light"))
    parts = face_model.split_coefficients(fitted)
    np.testing.assert_array_equal(parts["pose"], 0.0)
    np.testing.assert_array_equal(parts["light"], 0.0)
    assert np.abs(parts["identity"]).max() > 0.05 and np.abs(parts["albedo"]).max() > 0.05


def test_each_crop_of_a_batch_is_fitted_as_if_alone(face_model):
    rng = np.random.default_rng(7)
    truth = np.stack([framed_coefficients(face_model, rng, 25.0, 0.0),
                      framed_coefficients(face_model, rng, -10.0, 8.0)])
    crops, landmarks, labels = render_crops(face_model, truth)
    start = np.zeros_like(truth)
    together, _ = fit(face_model, crops, landmarks, labels, start, 8, render_size=SMALL_RENDER)
    alone, _ = fit(face_model, crops[1:], landmarks[1:], labels[1:], start[1:], 8, render_size=SMALL_RENDER)
    np.testing.assert_allclose(together[1], alone[0], atol=1e-4)
    assert np.abs(together[0] - together[1]).max() > 0.1


def test_a_second_fit_starts_afresh(face_model):
    """The fitter resets Adam's moments and the step: fitting twice gives the same result."""
    truth = framed_coefficients(face_model, np.random.default_rng(8), 15.0, 0.0)
    crops, landmarks, labels = render_crops(face_model, truth[None])
    start = np.zeros((1, face_model.coeff_size), np.float32)
    with tf.Graph().as_default(), tf.Session() as session:
        fitter = fitting.CoefficientFitter(face_model, 1, render_size=SMALL_RENDER)
        session.run(fitter.initializer())
        first = fitter.fit(session, crops, landmarks, labels, start, 6)
        second = fitter.fit(session, crops, landmarks, labels, start, 6)
    np.testing.assert_array_equal(first, second)


def test_landmark_term_weighs_the_same_at_any_render_size(face_model):
    """The landmark loss is in squared render pixels; the fitter reweights it so that a smaller
    render keeps the training objective (224) unchanged."""
    truth = framed_coefficients(face_model, np.random.default_rng(9), 15.0, 5.0)
    crops, landmarks, labels = render_crops(face_model, truth[None])
    start = np.zeros((1, face_model.coeff_size), np.float32)
    landmarks_only = coarse.LossWeights(photo=0.0, landmark=1e-3, perceptual=0.0, id=0.0, exp=0.0, tex=0.0)
    totals = []
    for size in (ENCODER_SIZE, SMALL_RENDER):
        _, trace = fit(face_model, crops, landmarks, labels, start, 0, weights=landmarks_only, render_size=size)
        totals.append(trace[0]["total"][0])
    assert totals[0] > 0.1
    np.testing.assert_allclose(totals[1], totals[0], rtol=1e-5)


def test_unknown_fixed_part_is_a_clear_error(face_model):
    with tf.Graph().as_default(), pytest.raises(ValueError, match="unknown part.*shape"):
        fitting.CoefficientFitter(face_model, 1, fixed_parts=("shape",))
