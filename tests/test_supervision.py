"""Synthetic supervision (not in the paper): ground truth kept through the augmentation
(model/data.py keep_ground_truth), the supervised shape and displacement terms (model/losses.py),
and their use by the coarse and fine stages."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from model import coarse, data, losses
from model.face import FaceModel
from model.face.landmarks68 import FLIP_PERMUTATION
from preprocess import schema
from tests.test_data import ground_truth, photo_record, write_records


def run(*tensors):
    with tf.Session() as session:
        return session.run(tensors)


@pytest.fixture(scope="module")
def face_model():
    return FaceModel()


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """'photos': 2 records without ground truth; 'synthetic': 3 with."""
    root = tmp_path_factory.mktemp("supervision")
    (root / "photos").mkdir()
    (root / "synthetic").mkdir()
    write_records(root / "photos" / "p.tfrecord", [photo_record(i) for i in range(2)])
    write_records(root / "synthetic" / "s.tfrecord",
                  [photo_record(10 + i, ground_truth(i), source_filename="synthetic/%d" % i) for i in range(3)])
    return str(root / "photos"), str(root / "synthetic")


def batches(pattern, num, batch_size=6, **kwargs):
    with tf.Graph().as_default():
        batch = tf.data.make_one_shot_iterator(data.make_dataset(pattern, batch_size, seed=3, **kwargs)).get_next()
        with tf.Session() as session:
            return [session.run(batch) for _ in range(num)]


def test_supervised_shape_loss_is_the_mean_squared_distance_of_the_samples_with_ground_truth():
    with tf.Graph().as_default():
        target = tf.constant(np.random.default_rng(0).normal(size=(2, 5, 3)), tf.float32)
        shifted = target + tf.constant([3.0, 0.0, 4.0])          # 5 mm from every target vertex
        both, first, none, exact = run(
            losses.supervised_shape_loss(shifted, target, tf.constant([1.0, 1.0])),
            losses.supervised_shape_loss(shifted, target, tf.constant([1.0, 0.0])),
            losses.supervised_shape_loss(shifted, target, tf.constant([0.0, 0.0])),
            losses.supervised_shape_loss(target, target, tf.constant([1.0, 1.0])))
    np.testing.assert_allclose([both, first, none, exact], [25.0, 12.5, 0.0, 0.0], atol=1e-5)


def test_supervised_displacement_loss_counts_the_mask_only():
    mask = np.zeros((1, 4, 4, 1), np.float32)
    mask[0, 1:3, 1:3] = 1.0
    predicted = np.zeros((2, 4, 4, 1), np.float32)
    predicted[:, 1:3, 1:3] = 0.5           # 0.5 mm off inside the mask
    predicted[:, 0, 0] = 100.0             # outside: not counted
    with tf.Graph().as_default():
        value, half = run(
            losses.supervised_displacement_loss(tf.constant(predicted), tf.zeros([2, 4, 4, 1]), tf.constant(mask),
                                                tf.constant([1.0, 1.0])),
            losses.supervised_displacement_loss(tf.constant(predicted), tf.zeros([2, 4, 4, 1]), tf.constant(mask),
                                                tf.constant([0.0, 1.0])))
    np.testing.assert_allclose([value, half], [0.25, 0.125], rtol=1e-6)


def test_the_mirror_of_a_face_is_a_face_of_the_model_and_mirroring_twice_gives_it_back(face_model):
    rng = np.random.default_rng(1)
    coeffs = np.zeros((1, face_model.coeff_size), np.float32)
    slices = face_model.coefficient_slices()
    coeffs[0, slices["identity"]] = rng.normal(size=face_model.k_id)
    with tf.Graph().as_default():
        parts = face_model.split_coefficients(tf.constant(coeffs))
        shape = face_model.shape(parts["identity"], parts["expression"])
        mean = face_model.shape(tf.zeros_like(parts["identity"]), tf.zeros_like(parts["expression"]))
        twice, mean_mirrored, shape_value, mirrored = run(
            losses.mirrored_vertices(losses.mirrored_vertices(shape, face_model.mirror), face_model.mirror),
            losses.mirrored_vertices(mean, face_model.mirror) - mean, shape,
            losses.mirrored_vertices(shape, face_model.mirror))
    np.testing.assert_allclose(twice, shape_value, atol=1e-4)
    assert np.abs(mean_mirrored).max() < 1e-3 * np.abs(shape_value).max()     # the mean face is symmetric
    assert np.abs(mirrored - shape_value).max() > 0.1                         # this identity is not


def test_augmented_batches_keep_the_ground_truth_and_say_which_samples_were_flipped(folders):
    _, synthetic = folders
    pattern = synthetic + "/*.tfrecord"
    whole = batches(pattern, 1, batch_size=3, augment=False, shuffle=False)[0]
    plain = {name: {key: value[i:i + 1] for key, value in whole.items()}
             for i, name in enumerate(whole[schema.SOURCE_FILENAME])}
    flips = []
    for batch in batches(pattern, 6, augment=True, keep_ground_truth=True):
        assert schema.GT_POINTS_PX not in batch
        np.testing.assert_array_equal(batch[data.GT_PRESENT], 1.0)
        for i, name in enumerate(batch[schema.SOURCE_FILENAME]):
            original = plain[name]
            np.testing.assert_array_equal(batch[schema.GT_COEFFICIENTS][i], original[schema.GT_COEFFICIENTS][0])
            np.testing.assert_array_equal(batch[schema.GT_DISPLACEMENT][i], original[schema.GT_DISPLACEMENT][0])
            # The landmarks are the original ones (mirrored and re-ordered when flipped) scaled
            # about the crop centre: only the flag's choice fits them.
            source = original["landmarks"][0]
            if batch[data.GT_FLIPPED][i]:
                source = np.stack([schema.CROP_SIZE - source[FLIP_PERMUTATION, 0], source[FLIP_PERMUTATION, 1]], 1)
            centred = source - 0.5 * schema.CROP_SIZE
            moved = batch["landmarks"][i] - 0.5 * schema.CROP_SIZE
            scale = np.sum(centred * moved) / np.sum(centred * centred)
            np.testing.assert_allclose(moved, scale * centred, atol=1e-3)
            flips.append(bool(batch[data.GT_FLIPPED][i]))
    assert 0 < sum(flips) < len(flips)
    # Without keep_ground_truth an augmented batch has no gt/* at all.
    assert not [key for key in batches(pattern, 1, augment=True)[0] if key.startswith("gt/")]


def test_a_mixture_gives_photo_samples_zero_ground_truth_marked_absent(folders):
    batch = batches(data.Mixture(folders, (1, 1)), 1, batch_size=24, augment=True, keep_ground_truth=True)[0]
    from_photos = np.array([name.startswith(b"photo") for name in batch[schema.SOURCE_FILENAME]])
    assert 0 < from_photos.sum() < len(from_photos)
    np.testing.assert_array_equal(batch[data.GT_PRESENT], (~from_photos).astype(np.float32))
    assert not batch[schema.GT_COEFFICIENTS][from_photos].any()
    assert not batch[data.GT_FLIPPED][from_photos].any()
    assert batch[schema.GT_COEFFICIENTS][~from_photos].any()


def test_the_coarse_shape_term_is_zero_at_the_ground_truth_and_sees_the_flip(face_model):
    rng = np.random.default_rng(2)
    truth = np.zeros((2, face_model.coeff_size), np.float32)
    truth[:, face_model.coefficient_slices()["identity"]] = rng.normal(size=(2, face_model.k_id))
    model = coarse.CoarseModel(face_model, None)
    with tf.Graph().as_default():
        batch = {schema.GT_COEFFICIENTS: tf.constant(truth), data.GT_FLIPPED: tf.constant([False, True]),
                 data.GT_PRESENT: tf.constant([1.0, 1.0])}
        parts = face_model.split_coefficients(tf.constant(truth))
        outputs = {"coeffs": tf.constant(truth), "vertices": face_model.shape(parts["identity"], parts["expression"])}
        mirrored = losses.mirrored_vertices(face_model.shape(parts["identity"], parts["expression"]),
                                            face_model.mirror)
        # The flipped sample's target is the mirror image: predicting the truth unmirrored costs
        # its asymmetry; the other sample costs nothing.
        value, asymmetry = run(model.supervised_shape_loss(batch, outputs),
                               tf.reduce_mean(tf.reduce_sum(tf.square(
                                   mirrored - face_model.shape(parts["identity"], parts["expression"])), -1), -1))
    np.testing.assert_allclose(value, asymmetry[1] / 2.0, rtol=1e-5)
    assert asymmetry[1] > 0.01


def test_the_fine_detail_term_in_the_true_chart_compares_the_map_with_the_truth_mirrored_where_flipped(face_model):
    from model import fine
    from model.face.uv_layout import UVLayout
    size, image_size = 32, 64
    layout = UVLayout(face_model, size)
    rng = np.random.default_rng(4)
    truth = (rng.normal(size=(2, size, size)) * layout.mask).astype(np.float32)
    predicted = np.stack([truth[0], truth[1][:, ::-1]])[..., None]    # sample 1: the mirror image
    coeffs = np.zeros((2, face_model.coeff_size), np.float32)
    with tf.Graph().as_default():
        coarse_outputs = coarse.CoarseModel(face_model, None, render_size=image_size).decode(
            tf.constant(coeffs), tf.zeros([2, 300, 300, 3]))
        fine_model = fine.FineModel(face_model, layout, None, gt_chart="true")
        photos = coarse_outputs["input"]
        outputs = fine_model.decode(coarse_outputs, tf.constant(predicted), image_size)
        weights = fine.PAPER_WEIGHTS._replace(gt_disp=1.0)

        def term(flipped, present=(1.0, 1.0), target=truth):
            ground_truth = dict(displacement=tf.constant(target), flipped=tf.constant(flipped),
                                present=tf.constant(present))
            return fine_model.losses(photos, coarse_outputs["mask"], coarse_outputs, outputs, weights,
                                     ground_truth)["gt_disp"]
        right, wrong, absent = run(term([False, True]), term([False, False]), term([False, False], (1.0, 0.0)))
        without = fine_model.losses(photos, coarse_outputs["mask"], coarse_outputs, outputs, weights)
        assert "gt_disp" not in without
        with pytest.raises(ValueError, match="gt/displacement maps are 16 x 16.*--map_size=32"):
            term([False, False], target=truth[:, :16, :16])
    assert right == 0.0 and absent == 0.0
    mask = layout.mask.astype(np.float64)
    expected = np.sum(mask * (truth[1][:, ::-1] - truth[1]) ** 2) / mask.sum() / 2.0
    np.testing.assert_allclose(wrong, expected, rtol=1e-5)


def test_the_fine_detail_term_in_the_own_chart_is_near_zero_at_the_truth_when_the_coarse_face_is_the_true_one(face_model):
    """gt_chart "own" (the default): with the coarse face equal to the true one, the true detail
    seen through it is the ground-truth map itself on the texels it sees, so predicting the truth
    costs a small fraction of predicting zero (resampling through the image is the rest), and
    predicting its negative about four times as much as zero."""
    from model import fine
    from model.face.uv_layout import UVLayout, texel_centres
    size, image_size = 64, 300
    layout = UVLayout(face_model, size)
    centres = texel_centres(size)
    # Smooth and asymmetric in u: a field the image carries at 300 pixels without loss.
    truth = (np.sin(9.0 * centres[..., 0]) * np.cos(5.0 * centres[..., 1]) * layout.mask)[None].astype(np.float32)
    coeffs = np.zeros((1, face_model.coeff_size), np.float32)
    coeffs[0, face_model.coefficient_slices()["pose"].start + 1] = 0.3
    with tf.Graph().as_default():
        coarse_outputs = coarse.CoarseModel(face_model, None, render_size=image_size).decode(
            tf.constant(coeffs), tf.zeros([1, 300, 300, 3]))
        fine_model = fine.FineModel(face_model, layout, None)
        photos = coarse_outputs["input"]
        unwrapped = fine_model.unwrap(coarse_outputs, photos)
        weights = fine.PAPER_WEIGHTS._replace(gt_disp=1.0)
        ground_truth = dict(displacement=tf.constant(truth), flipped=tf.constant([False]),
                            present=tf.constant([1.0]), coefficients=tf.constant(coeffs),
                            scale=tf.constant([1.0]))

        def term(predicted):
            outputs = fine_model.decode(coarse_outputs, tf.constant(predicted[..., None]), image_size)
            outputs.update(unwrapped)
            return fine_model.losses(photos, coarse_outputs["mask"], coarse_outputs, outputs, weights,
                                     ground_truth)["gt_disp"]
        at_truth, at_zero, negative = run(term(truth), term(np.zeros_like(truth)), term(-truth))
    assert at_zero > 0.05
    assert at_truth < 0.01 * at_zero
    np.testing.assert_allclose(negative, 4.0 * at_zero, rtol=0.05)
