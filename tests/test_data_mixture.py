"""model/data.py Mixture: several folders (photos without gt/*, synthetic with) sampled by weight."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from model import data
from preprocess import images, schema
from tests.test_data import ground_truth, photo_record, write_records

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """'photos': 3 records without ground truth; 'synthetic': 2 with (one file each and an empty
    file in synthetic, which must not matter)."""
    root = tmp_path_factory.mktemp("mixture")
    os.makedirs(root / "photos")
    os.makedirs(root / "synthetic")
    flat = images.encode_png(np.full((300, 300, 3), 128, np.uint8))   # decodes fast
    write_records(root / "photos" / "p.tfrecord", [photo_record(i, image_bytes=flat) for i in range(3)])
    write_records(root / "synthetic" / "s.tfrecord",
                  [photo_record(10 + i, ground_truth(i), source_filename="synthetic/0/%d" % i,
                                image_bytes=flat) for i in range(2)])
    write_records(root / "synthetic" / "t.tfrecord", [])
    return str(root / "photos"), str(root / "synthetic")


def sources(mixture, num_batches, batch_size=16, augment=False, shuffle=False, seed=7):
    """The source/filename of every sample in `num_batches` batches, and the last batch.
    (Not shuffling within the folders saves filling their shuffle buffers: the mixing draws
    are the same either way.)"""
    with tf.Graph().as_default():
        batch = tf.data.make_one_shot_iterator(data.make_dataset(
            mixture, batch_size, augment=augment, shuffle=shuffle, seed=seed)).get_next()
        with tf.Session() as session:
            names = []
            for _ in range(num_batches):
                out = session.run(batch)
                names += [name.decode() for name in out[schema.SOURCE_FILENAME]]
    return names, out


def from_photos(names):
    return sum(name.startswith("photo") for name in names)


def test_record_count_from_the_headers_matches_the_reader(tmp_path, folders):
    photos, _ = folders
    path = os.path.join(photos, "p.tfrecord")
    assert data.count_records(path) == 3
    whole = open(path, "rb").read()
    (tmp_path / "cut.tfrecord").write_bytes(whole[:len(whole) * 2 // 3])
    assert data.count_records(str(tmp_path / "cut.tfrecord")) == len(
        list(tf.io.tf_record_iterator(path))[:2])


@pytest.mark.parametrize("weights, expected", [((1, 0), 1.0), ((0, 1), 0.0)])
def test_a_folder_of_weight_zero_is_never_read(folders, weights, expected):
    names, _ = sources(data.Mixture(folders, weights), 4)
    assert from_photos(names) == expected * len(names)


@pytest.mark.parametrize("weights, p", [((1, 1), 0.5), ((3, 1), 0.75)])
def test_folders_are_sampled_in_their_ratio(folders, weights, p):
    # 400 draws with a fixed seed: the binomial sd is at most 10 and the bound 6 sd, so only a
    # wrong ratio (or a ratio applied per batch or per file) fails; a new random stream cannot.
    names, _ = sources(data.Mixture(folders, weights), 25)
    assert len(names) == 400
    assert abs(from_photos(names) - p * 400) < 60


def test_default_weights_are_the_record_counts(folders):
    mixture = data.Mixture(folders)
    assert mixture.counts == [3, 2]
    np.testing.assert_allclose(mixture.weights, [0.6, 0.4])


@pytest.mark.parametrize("augment", [True, False])
def test_records_with_and_without_ground_truth_share_a_batch(folders, augment):
    names, batch = sources(data.Mixture(folders, (1, 1)), 1, batch_size=32, augment=augment,
                           shuffle=augment)
    assert 0 < from_photos(names) < len(names)
    assert batch["image"].shape == (32, 300, 300, 3) and batch["landmarks"].shape == (32, 68, 2)
    assert batch["segmentation"].shape == (32, 300, 300)
    # Photos have no gt/*, so a mixture has none, augmented or not.
    assert not [key for key in batch if key.startswith("gt/")]


def test_a_folder_without_tfrecords_is_named(tmp_path, folders):
    with pytest.raises(data.DataError, match="data folder %s holds no" % tmp_path):
        data.Mixture([folders[0], str(tmp_path)], (1, 0))


@pytest.mark.parametrize("ratio, words", [("1", "has 1 value"), ("1,x", "comma-separated numbers"),
                                          ("0,0", "not all 0"), ("1,-1", ">= 0")])
def test_a_bad_ratio_is_a_value_error_naming_the_flag(ratio, words):
    with pytest.raises(ValueError, match="--data_ratio=%s.*%s" % (ratio, words)):
        data.parse_ratio(ratio, 2)


def run_train(*flags):
    return subprocess.run([sys.executable, os.path.join(REPO, "train.py")] + list(flags), cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_train_names_the_folder_without_tfrecords_and_refuses_a_bad_ratio(tmp_path, folders):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_train("--data_dir=%s,%s" % (folders[0], empty), "--checkpoint_dir=%s" % (tmp_path / "c"))
    assert result.returncode != 0
    assert "train.py: --data_dir=%s holds no *.tfrecord files" % empty in result.stderr
    result = run_train("--data_dir=%s,%s" % folders, "--data_ratio=1",
                       "--checkpoint_dir=%s" % (tmp_path / "c"))
    assert result.returncode != 0
    assert ("FATAL Flags parsing error: flags data_dir=%s,%s, data_ratio=1: --data_ratio=1 has 1 value(s) "
            "for 2 --data_dir folder(s)" % folders) in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "c").exists()


def test_the_coarse_stage_trains_on_a_mixture_of_photos_and_synthetic_records(folders):
    from model import coarse
    from model.face import FaceModel
    stage = coarse.CoarseStage(FaceModel(), data.Mixture(folders, (2, 1)), 2, coarse.TRAINING_LOSS_WEIGHTS)
    with tf.Graph().as_default():
        losses = stage.build(0).losses
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            values = [session.run(losses) for _ in range(2)]
    assert all(np.isfinite(v["total"]) for v in values)
