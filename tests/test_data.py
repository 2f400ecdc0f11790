"""model/data.py: parsing, validation naming the file, and the paper's augmentation."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from model import data
from model.face import landmarks68 as lm
from preprocess import images, schema, tfrecord_writer

SIZE = schema.CROP_SIZE


def sample_arrays(seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    landmarks = rng.uniform(60, 240, (68, 2)).astype(np.float32)
    labels = rng.integers(0, 8, (SIZE, SIZE), dtype=np.uint8)
    return image, landmarks, labels


def photo_record(seed=0, ground_truth=None, **replace):
    image, landmarks, labels = sample_arrays(seed)
    fields = dict(image_bytes=images.encode_png(image), landmarks=landmarks,
                  segmentation_bytes=images.encode_png(labels),
                  source_filename="photo%d.jpg" % seed, crop_matrix=np.eye(2, 3))
    fields.update(replace)
    return tfrecord_writer.make_example(ground_truth=ground_truth, **fields)


def ground_truth(seed=0):
    rng = np.random.default_rng(seed)
    return dict(coefficients=rng.normal(size=40), displacement=rng.normal(size=(16, 16)),
                points_px=rng.uniform(0, 300, (50, 3)))


def write_records(path, records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return str(path)


def read_all(pattern, **kwargs):
    kwargs = dict(dict(augment=False, shuffle=False, repeat=False), **kwargs)
    with tf.Graph().as_default():
        batch = tf.data.make_one_shot_iterator(data.make_dataset(pattern, 1, **kwargs)).get_next()
        results = []
        with tf.Session() as session:
            while True:
                try:
                    results.append(session.run(batch))
                except tf.errors.OutOfRangeError:
                    return results


def test_photo_records_decode_to_the_written_values(tmp_path):
    write_records(tmp_path / "a.tfrecord", [photo_record(0), photo_record(1)])
    out = read_all(str(tmp_path / "*.tfrecord"))
    assert len(out) == 2
    image, landmarks, labels = sample_arrays(1)
    assert out[1]["image"].dtype == np.float32 and out[1]["segmentation"].dtype == np.int32
    np.testing.assert_allclose(out[1]["image"][0], image / 255.0, atol=1e-6)
    np.testing.assert_array_equal(out[1]["landmarks"][0], landmarks)
    np.testing.assert_array_equal(out[1]["segmentation"][0], labels)
    assert out[1][schema.SOURCE_FILENAME][0] == b"photo1.jpg"
    assert not any(key.startswith("gt/") for key in out[0])


def test_ground_truth_is_read_when_not_augmenting(tmp_path):
    truth = ground_truth(3)
    write_records(tmp_path / "s.tfrecord", [photo_record(0, ground_truth=truth)])
    out = read_all(str(tmp_path / "s.tfrecord"))[0]
    np.testing.assert_allclose(out[schema.GT_COEFFICIENTS][0], truth["coefficients"], rtol=1e-6)
    np.testing.assert_allclose(out[schema.GT_DISPLACEMENT][0], truth["displacement"], rtol=1e-6)
    np.testing.assert_allclose(out[schema.GT_POINTS_PX][0], truth["points_px"], rtol=1e-6)


def test_augmented_batches_have_static_shapes_and_no_ground_truth(tmp_path):
    write_records(tmp_path / "s.tfrecord", [photo_record(i, ground_truth(i)) for i in range(3)])
    with tf.Graph().as_default():
        dataset = data.make_dataset(str(tmp_path / "s.tfrecord"), batch_size=2, seed=1)
        spec = tf.data.get_output_shapes(dataset)
    assert spec["image"].as_list() == [2, SIZE, SIZE, 3]
    assert spec["landmarks"].as_list() == [2, 68, 2]
    assert spec["segmentation"].as_list() == [2, SIZE, SIZE]
    assert not any(key.startswith("gt/") for key in spec)


@pytest.mark.parametrize("bad_record, words", [
    (lambda: _without(photo_record(5), schema.SEGMENTATION),
     "key segmentation has 0 values, expected 1 (0 = key missing)"),
    (lambda: _with_value(photo_record(5), schema.LANDMARKS, np.zeros(100)),
     "key landmarks has 100 values, expected 136"),
    (lambda: photo_record(5, image_bytes=b"GIF89a not a crop"), "key image is not PNG or JPEG"),
    (lambda: photo_record(5, image_bytes=images.encode_png(np.zeros((200, 300, 3), np.uint8))),
     "key image decodes to 200 x 300, expected 300 x 300"),
    (lambda: photo_record(5, image_bytes=images.encode_png(np.zeros((300, 300, 3), np.uint8))[:200]),
     "not a tf.train.Example, or an image in it does not decode"),
    (lambda: np.random.default_rng(0).bytes(3000),
     "not a tf.train.Example, or an image in it does not decode"),
])
def test_malformed_record_raises_an_error_naming_its_file(tmp_path, bad_record, words):
    write_records(tmp_path / "good.tfrecord", [photo_record(0)])
    bad = write_records(tmp_path / "bad.tfrecord", [photo_record(1), bad_record()])
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        read_all(str(tmp_path / "*.tfrecord"), augment=True)
    assert "malformed record 1 in %s: %s" % (bad, words) in error.value.message


def _without(record, key):
    example = tf.train.Example.FromString(record)
    del example.features.feature[key]
    return example.SerializeToString()


def _with_value(record, key, values):
    example = tf.train.Example.FromString(record)
    example.features.feature[key].float_list.value[:] = values
    return example.SerializeToString()


def test_no_matching_file_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no tfrecord file matches"):
        data.make_dataset(str(tmp_path / "*.tfrecord"), 1)


def _augment(sample, seed):
    with tf.Graph().as_default():
        tensors = {key: tf.constant(value) for key, value in sample.items()}
        out = data.augment_sample(tensors, seed=seed)
        with tf.Session() as session:
            return session.run(out)


def _marked_sample():
    """Grey image and background labels, with a white 5x5 square and label EYES at landmark 36."""
    landmarks = np.random.default_rng(4).uniform(80, 220, (68, 2)).astype(np.float32)
    landmarks[36] = (101.5, 120.5)  # centre of pixel (row 120, col 101)
    image = np.full((SIZE, SIZE, 3), 0.25, np.float32)
    image[118:123, 99:104] = 1.0
    labels = np.zeros((SIZE, SIZE), np.int32)
    labels[118:123, 99:104] = schema.EYES
    return dict(image=image, landmarks=landmarks, segmentation=labels)


def _white_centroid(image):
    weight = (image.min(axis=2) > 0.7).astype(np.float64)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    return np.array([(weight * (cols + 0.5)).sum(), (weight * (rows + 0.5)).sum()]) / weight.sum()


@pytest.mark.parametrize("seed", range(6))
def test_augmentation_moves_image_segmentation_and_landmarks_together(seed):
    sample = _marked_sample()
    out = _augment(sample, seed)
    centroid = _white_centroid(out["image"])
    # The marked point was the subject's right eye corner (36); in a flipped image it is where
    # the left one is (45).
    flipped = centroid[0] > SIZE / 2
    point = out["landmarks"][45 if flipped else 36]
    np.testing.assert_allclose(centroid, point, atol=0.6)
    assert out["segmentation"][int(point[1]), int(point[0])] == schema.EYES
    # A flip and a scale about the centre keep all pairwise distances up to the scale factor.
    order = lm.FLIP_PERMUTATION if flipped else np.arange(68)
    before = sample["landmarks"][order]
    distances = np.linalg.norm(before[:, None] - before[None], axis=-1)
    new_distances = np.linalg.norm(out["landmarks"][:, None] - out["landmarks"][None], axis=-1)
    ratio = new_distances[distances > 0] / distances[distances > 0]
    assert np.ptp(ratio) < 1e-4 and 0.9 - 1e-6 <= ratio[0] <= 1.1 + 1e-6


def test_augmentation_flips_about_half_the_samples():
    sample = _marked_sample()
    flipped = [_augment(sample, seed)["landmarks"][36, 0] > SIZE / 2 for seed in range(16)]
    assert 3 <= sum(flipped) <= 13


def test_flipped_landmarks_use_the_permutation():
    sample = _marked_sample()
    for seed in range(16):
        out = _augment(sample, seed)
        if out["landmarks"][36, 0] > SIZE / 2:
            scale = (out["landmarks"][8, 1] - 150) / (sample["landmarks"][8, 1] - 150)
            expected = lm.flip_landmarks(sample["landmarks"], SIZE)
            np.testing.assert_allclose(out["landmarks"], 150 + scale * (expected - 150), atol=1e-3)
            return
    pytest.fail("no flipped sample in 16 seeds")


def test_colour_scale_is_per_channel_within_the_paper_range():
    sample = _marked_sample()
    out = _augment(sample, 7)
    grey = out["image"][10:20, 140:160].reshape(-1, 3)   # uniform 0.25 region, away from edges
    factors = grey.mean(axis=0) / 0.25
    assert np.all((factors >= 0.8 - 1e-4) & (factors <= 1.2 + 1e-4))
    assert np.ptp(factors) > 1e-3


def _shard_bytes(tmp_path, count):
    return open(write_records(tmp_path / "whole.tmp", [photo_record(i) for i in range(count)]), "rb").read()


@pytest.mark.parametrize("damage", ["truncated", "corrupted", "random"])
def test_an_unreadable_shard_is_named_beside_good_ones(tmp_path, damage):
    whole = _shard_bytes(tmp_path, 2)
    damaged = {"truncated": whole[:len(whole) - 100],
               "corrupted": whole[:len(whole) // 2] + bytes([whole[len(whole) // 2] ^ 1]) + whole[len(whole) // 2 + 1:],
               "random": np.random.default_rng(1).bytes(5000)}[damage]
    write_records(tmp_path / "good.tfrecord", [photo_record(0)])
    (tmp_path / "bad.tfrecord").write_bytes(damaged)
    for augment in (False, True):
        with pytest.raises((tf.errors.InvalidArgumentError, ValueError)) as error:
            read_all(str(tmp_path / "*.tfrecord"), augment=augment)
        assert "unreadable tfrecord file %s" % (tmp_path / "bad.tfrecord") in str(error.value)


def test_skip_bad_records_skips_and_counts_bad_files_and_records(tmp_path, capfd):
    whole = _shard_bytes(tmp_path, 2)
    (tmp_path / "truncated.tfrecord").write_bytes(whole[:len(whole) - 100])   # record 0 good, then broken
    write_records(tmp_path / "mixed.tfrecord", [photo_record(2), np.random.default_rng(0).bytes(900),
                                                 _without(photo_record(3), schema.IMAGE), photo_record(4)])
    skipped = data.SkippedCounter()
    out = read_all(str(tmp_path / "*.tfrecord"), skipped=skipped)
    assert sorted(o[schema.SOURCE_FILENAME][0] for o in out) == [b"photo0.jpg", b"photo2.jpg", b"photo4.jpg"]
    assert (skipped.files, skipped.records) == (1, 2)
    log = capfd.readouterr().err
    assert "skipped unreadable tfrecord file %s" % (tmp_path / "truncated.tfrecord") in log
    assert "skipped malformed record 2 in %s: key image has 0 values" % (tmp_path / "mixed.tfrecord") in log


def test_tfrecords_that_are_all_empty_are_an_error_when_the_pipeline_is_built(tmp_path):
    (tmp_path / "z.tfrecord").write_bytes(b"")
    with tf.Graph().as_default(), pytest.raises(data.DataError, match="all 1 tfrecord file.* are empty"):
        data.make_dataset(str(tmp_path / "*.tfrecord"), 2)


@pytest.mark.parametrize("skip", [False, True])
def test_tfrecords_without_usable_records_are_an_error_not_a_hang(tmp_path, skip):
    """No record at all (a file of only a bad record, and an empty file), or, when skipping, none
    left: an error at the first batch instead of a reader that cycles forever."""
    (tmp_path / "z.tfrecord").write_bytes(b"")
    if skip:
        write_records(tmp_path / "bad.tfrecord", [np.random.default_rng(0).bytes(900)])
    else:
        write_records(tmp_path / "bad.tfrecord", [_without(photo_record(0), schema.IMAGE)])
    with tf.Graph().as_default():
        dataset = data.make_dataset(str(tmp_path / "*.tfrecord"), 2, seed=0,
                                    skipped=data.SkippedCounter() if skip else None)
        batch = tf.data.make_one_shot_iterator(dataset).get_next()
        with tf.Session() as session, pytest.raises(tf.errors.InvalidArgumentError) as error:
            session.run(batch)
    expected = "holds a usable record" if skip else "malformed record 0 in %s" % (tmp_path / "bad.tfrecord")
    assert expected in error.value.message


def test_ground_truth_sizes_come_from_the_first_readable_record(tmp_path):
    (tmp_path / "a.tfrecord").write_bytes(b"")
    write_records(tmp_path / "b.tfrecord", [photo_record(0, ground_truth=ground_truth(0))])
    out = read_all(str(tmp_path / "*.tfrecord"))
    assert out[0][schema.GT_COEFFICIENTS].shape == (1, 40)
