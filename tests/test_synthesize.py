"""preprocess/synthesize.py: synthetic faces whose ground truth agrees with their image data."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from model import data
from model.face import FaceModel
from model.face.framing import crop_box_from_landmarks
from preprocess import schema, synthesize
from tests import face_model_oracle as oracle


@pytest.fixture(scope="module")
def face_model():
    return FaceModel()


@pytest.fixture(scope="module")
def renderer(face_model):
    return synthesize.SampleRenderer(face_model, map_size=128)


@pytest.fixture(scope="module")
def samples(renderer):
    return [renderer.sample(synthesize.sample_rng(11, index)) for index in range(4)]


def _pose(face_model, coefficients):
    return face_model.split_coefficients(coefficients[None])["pose"][0]


def test_ground_truth_points_project_onto_the_landmarks(face_model, samples):
    for sample in samples:
        np.testing.assert_allclose(sample["points_px"][face_model.landmarks68, :2],
                                   sample["landmarks"], atol=1e-4)


def test_ground_truth_coefficients_reproduce_the_points(face_model, samples):
    for sample in samples:
        parts = face_model.split_coefficients(sample["coefficients"][None].astype(np.float64))
        vertices = oracle.shape(face_model, parts["identity"], parts["expression"])
        points = oracle.project(face_model, vertices, parts["pose"])[0]
        np.testing.assert_allclose(points, sample["points_px"], atol=0.05)


def test_ground_truth_map_is_zero_outside_the_detail_mask(samples, renderer):
    for sample in samples:
        assert np.abs(sample["displacement"]).max() > 0.05
        assert not sample["displacement"][~renderer.layout.mask].any()


def test_a_deep_wrinkle_shows_in_the_image_inside_the_face(face_model, renderer):
    """The map is rendered through the dense mesh: a 1.5 mm furrow across the forehead (about
    two texels wide at map size 128) changes the pixels over it, and nothing off the face."""
    size = renderer.map_size
    forehead_v = face_model.uv[face_model.landmarks68[[19, 24]], 1].mean() + 0.06
    rows = np.arange(size)[:, None] - (1.0 - forehead_v) * size
    furrow = np.broadcast_to(-1.5 * np.exp(-0.5 * (rows / 1.0) ** 2), (size, size))
    plain = renderer.sample(synthesize.sample_rng(3, 0), displacement=np.zeros((size, size)))
    wrinkled = renderer.sample(synthesize.sample_rng(3, 0), displacement=furrow)
    difference = np.abs(wrinkled["image"].astype(int) - plain["image"].astype(int)).max(axis=-1)
    face = plain["segmentation"] != schema.BACKGROUND
    assert difference[face].max() > 30
    assert (difference[face] > 2).sum() > 150
    assert not difference[~face & (wrinkled["segmentation"] == schema.BACKGROUND)].any()


def test_landmarks_are_framed_by_the_crop_rule(samples):
    for sample in samples:
        cx, cy, side = crop_box_from_landmarks(sample["landmarks"])
        np.testing.assert_allclose([cx, cy, side], [150, 150, 300], atol=1e-3)


def test_poses_stay_in_the_sampled_range(face_model, samples):
    for sample in samples:
        pitch, yaw, roll = np.rad2deg(_pose(face_model, sample["coefficients"])[:3])
        assert abs(pitch) <= 20 and abs(yaw) <= 60 and abs(roll) <= 15


def test_nose_tip_is_labelled_nose(samples):
    for sample in samples:
        x, y = sample["landmarks"][30]
        assert sample["segmentation"][int(y), int(x)] == schema.NOSE


def test_face_covers_the_middle_and_not_the_corners(samples):
    for sample in samples:
        labels = sample["segmentation"]
        assert labels[150, 150] != schema.BACKGROUND
        assert labels[0, 0] == schema.BACKGROUND and labels[299, 299] == schema.BACKGROUND
        assert set(np.unique(labels)) <= set(schema.SEGMENTATION_LABELS)


def test_samples_differ_and_repeat_for_the_same_seed(renderer, samples):
    again = renderer.sample(synthesize.sample_rng(11, 1))
    for key in ("image", "segmentation", "coefficients", "displacement", "points_px"):
        np.testing.assert_array_equal(again[key], samples[1][key])
    assert not np.array_equal(samples[0]["image"], samples[1]["image"])


def test_framed_pose_is_the_affine_of_the_projection(face_model):
    vertices = face_model.mean_shape[None].astype(np.float64)
    pose = np.array([0.1, -0.5, 0.2, 3.0, -4.0, 0.1])
    a, b = 1.3, np.array([-20.0, 7.0])
    expected = oracle.project(face_model, vertices, pose)[0] * [a, a, a] + [b[0], b[1], 0.0]
    framed = oracle.project(face_model, vertices, synthesize.framed_pose(pose, a, b))[0]
    np.testing.assert_allclose(framed, expected, atol=1e-6)


def test_written_records_parse_with_ground_truth(tmp_path, face_model):
    paths = synthesize.synthesize(3, str(tmp_path), seed=5, records_per_shard=2, map_size=64,
                                  progress=False)
    assert [os.path.basename(p) for p in paths] == ["synthetic-00000.tfrecord",
                                                    "synthetic-00001.tfrecord"]
    with tf.Graph().as_default():
        dataset = data.make_dataset(str(tmp_path / "*.tfrecord"), 3, augment=False,
                                    shuffle=False, repeat=False)
        batch = tf.data.make_one_shot_iterator(dataset).get_next()
        with tf.Session() as session:
            out = session.run(batch)
    assert out["image"].shape == (3, 300, 300, 3)
    assert out[schema.GT_COEFFICIENTS].shape == (3, face_model.coeff_size)
    assert out[schema.GT_DISPLACEMENT].shape == (3, 64, 64)
    assert out[schema.GT_POINTS_PX].shape == (3, face_model.num_vertices, 3)
    np.testing.assert_allclose(out[schema.GT_POINTS_PX][:, face_model.landmarks68, :2],
                               out["landmarks"], atol=1e-4)
    assert sorted(out[schema.SOURCE_FILENAME]) == [b"synthetic/5/0", b"synthetic/5/1",
                                                 b"synthetic/5/2"]
    summary = (tmp_path / "synthetic-summary.txt").read_text()
    assert "written: 3 record(s) in 2 shard(s)" in summary and "seed: 5" in summary


@pytest.mark.slow
def test_parallel_output_is_identical_to_serial(tmp_path):
    serial = synthesize.synthesize(4, str(tmp_path / "serial"), seed=2, map_size=64,
                                   progress=False)
    parallel = synthesize.synthesize(4, str(tmp_path / "parallel"), seed=2, workers=2,
                                     map_size=64, progress=False)
    read = lambda paths: [r for p in paths for r in tf.io.tf_record_iterator(p)]  # noqa: E731
    assert read(serial) == read(parallel)


def test_missing_face_model_is_a_clear_error_in_workers_too(tmp_path):
    missing = str(tmp_path / "no_model.npz")
    with pytest.raises(FileNotFoundError, match="no_model.npz"):
        synthesize.synthesize(2, str(tmp_path / "out"), face_model_path=missing, workers=2,
                              progress=False)
    assert not [f for f in os.listdir(tmp_path / "out") if f.endswith(".partial")]


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_synthesize(*flags):
    return subprocess.run([sys.executable, os.path.join(REPO, "preprocess", "synthesize.py"), "--num=1",
                           "--workers=1"] + list(flags), capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("flag, words", [
    ("--seed=-1", "flag --seed=-1: -1 is not"),
    ("--map_size=100000", "flag --map_size=100000: 100000 is not"),
    ("--map_size=0", "flag --map_size=0: 0 is not"),
    ("--workers=0", "flag --workers=0: 0 is not a positive integer"),
])
def test_an_impossible_flag_is_one_line_naming_it(tmp_path, flag, words):
    result = run_synthesize("--out=%s" % tmp_path, flag)
    assert result.returncode != 0
    assert any(line.startswith("FATAL Flags parsing error: " + words) for line in result.stderr.splitlines())
    assert "Traceback" not in result.stderr and os.listdir(tmp_path) == []


def test_a_prefix_with_a_folder_is_refused_and_nothing_is_written_outside_out(tmp_path):
    result = run_synthesize("--out=%s" % (tmp_path / "out"), "--prefix=../x")
    assert result.returncode == 2
    assert "synthesize: prefix '../x' must be a plain file name" in result.stderr
    assert os.listdir(tmp_path) == []


def test_an_out_that_is_a_file_is_a_one_line_error(tmp_path):
    (tmp_path / "taken").write_text("")
    result = run_synthesize("--out=%s" % (tmp_path / "taken"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "synthesize: cannot create the output folder %s: File exists" % (tmp_path / "taken"))
