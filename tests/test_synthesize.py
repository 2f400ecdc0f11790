"""preprocess/synthesize.py: synthetic faces whose ground truth agrees with their image data."""
import copy
import dataclasses
import os
import subprocess
import sys

import numpy as np
from scipy import ndimage
import pytest
import tensorflow.compat.v1 as tf

from model import data
from model.face import FaceModel
from model.face.framing import crop_box_from_landmarks
from preprocess import appearance, schema, synthesize
from tests import face_model_oracle as oracle


@pytest.fixture(scope="module")
def face_model():
    return FaceModel()


@pytest.fixture(scope="module")
def renderer(face_model):
    return synthesize.SampleRenderer(face_model, map_size=128)


# The appearance options' image-only parts off (light, skin, eyes, head and yaw at their defaults).
CLEAN = dict(shadow_probability=0.0, glasses_probability=0.0, hand_probability=0.0,
             blur_probability=0.0, noise_probability=0.0, jpeg_probability=0.0,
             colour_cast_probability=0.0)


@pytest.fixture(scope="module")
def plain_renderer(face_model):
    return synthesize.SampleRenderer(face_model, map_size=128, options=appearance.AppearanceOptions.plain())


def _with(renderer, **changes):
    """A renderer sharing `renderer`'s graph and session with other appearance options."""
    other = copy.copy(renderer)
    other.options = dataclasses.replace(renderer.options, **changes).validate()
    return other


@pytest.fixture(scope="module")
def samples(renderer):
    return [renderer.sample(synthesize.sample_rng(11, index)) for index in range(4)]


def _pose(face_model, coefficients):
    return face_model.split_coefficients(coefficients[None])["pose"][0]


def test_ground_truth_points_project_onto_the_landmarks(face_model, samples):
    # The jaw slides onto the outline (model/face/contour.py); every other point is its vertex.
    for sample in samples:
        np.testing.assert_allclose(face_model.landmarks_numpy(sample["points_px"][:, :2]),
                                   sample["landmarks"], atol=1e-4)
        np.testing.assert_allclose(sample["points_px"][face_model.landmarks68[17:], :2],
                                   sample["landmarks"][17:], atol=1e-4)


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


def test_a_deep_wrinkle_shows_in_the_image_inside_the_face(face_model, plain_renderer):
    """The map is rendered through the dense mesh: a 1.5 mm furrow across the forehead (about
    two texels wide at map size 128) changes the pixels over it, and nothing off the face."""
    size = plain_renderer.map_size
    forehead_v = face_model.uv[face_model.landmarks68[[19, 24]], 1].mean() + 0.06
    rows = np.arange(size)[:, None] - (1.0 - forehead_v) * size
    furrow = np.broadcast_to(-1.5 * np.exp(-0.5 * (rows / 1.0) ** 2), (size, size))
    plain = plain_renderer.sample(synthesize.sample_rng(3, 0), displacement=np.zeros((size, size)))
    wrinkled = plain_renderer.sample(synthesize.sample_rng(3, 0), displacement=furrow)
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
        assert abs(pitch) <= 20 and abs(yaw) <= 70 and abs(roll) <= 15


def test_max_yaw_sets_the_yaw_range_and_keeps_the_rest(face_model, renderer):
    yaws = {}
    for max_yaw in (10.0, 70.0):
        narrow = _with(renderer, max_yaw=max_yaw, **CLEAN)
        yaws[max_yaw] = [np.rad2deg(_pose(face_model, narrow.sample(synthesize.sample_rng(4, i))["coefficients"])[1])
                         for i in range(3)]
    # The same unit draw scaled to the range: 7 x the yaw of the 10-degree range.
    np.testing.assert_allclose(np.array(yaws[70.0]), 7.0 * np.array(yaws[10.0]), atol=1e-3)
    assert max(abs(y) for y in yaws[10.0]) <= 10.0 and max(abs(y) for y in yaws[70.0]) > 10.0


def test_max_pitch_and_max_roll_set_their_ranges_and_keep_the_rest(face_model, renderer):
    poses = {}
    for limits in ((20.0, 15.0), (30.0, 45.0)):
        wide = _with(renderer, max_pitch=limits[0], max_roll=limits[1], **CLEAN)
        poses[limits] = np.array([np.rad2deg(_pose(face_model, wide.sample(synthesize.sample_rng(4, i))["coefficients"])[:3])
                                  for i in range(3)])
    default, wide = poses[(20.0, 15.0)], poses[(30.0, 45.0)]
    np.testing.assert_allclose(wide[:, 0], 1.5 * default[:, 0], atol=1e-3)   # pitch 30 / 20
    np.testing.assert_allclose(wide[:, 1], default[:, 1], atol=1e-6)         # yaw untouched
    np.testing.assert_allclose(wide[:, 2], 3.0 * default[:, 2], atol=1e-3)   # roll 45 / 15
    with pytest.raises(ValueError, match="max_roll"):
        appearance.AppearanceOptions(max_roll=100.0).validate()


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
    np.testing.assert_allclose(face_model.landmarks_numpy(out[schema.GT_POINTS_PX][..., :2]),
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
    ("--max_yaw=100", "flag --max_yaw=100: 100.0 is not"),
    ("--hand_probability=2", "flag --hand_probability=2: 2.0 is not"),
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


# ------------------------------------------------------------------------ appearance options

def test_degradation_changes_the_image_only(renderer):
    clean = _with(renderer, **CLEAN)
    degraded = _with(renderer, **dict(CLEAN, blur_probability=1.0, noise_probability=1.0, jpeg_probability=1.0,
                                      colour_cast_probability=1.0, shadow_probability=1.0))
    a, b = clean.sample(synthesize.sample_rng(6, 0)), degraded.sample(synthesize.sample_rng(6, 0))
    for key in ("landmarks", "segmentation", "coefficients", "displacement", "points_px"):
        np.testing.assert_array_equal(a[key], b[key])
    assert np.abs(a["image"].astype(int) - b["image"].astype(int)).mean() > 3


def test_degradation_off_is_the_rounded_image_bit_for_bit():
    image = np.random.default_rng(0).uniform(-20, 280, (20, 20, 3))
    off = appearance.AppearanceOptions.plain()
    np.testing.assert_array_equal(appearance.degrade(np.random.default_rng(1), image, off),
                                  np.clip(image, 0, 255).round().astype(np.uint8))
    on = dataclasses.replace(off, jpeg_probability=1.0)
    assert not np.array_equal(appearance.degrade(np.random.default_rng(1), image, on),
                              np.clip(image, 0, 255).round().astype(np.uint8))


def test_plain_options_draw_the_old_light_and_yaw(face_model, plain_renderer):
    """plain(): the coefficients are random_coefficients' own draw, framed (nothing redrawn)."""
    sample = plain_renderer.sample(synthesize.sample_rng(2, 0))
    drawn = synthesize.random_coefficients(synthesize.sample_rng(2, 0), face_model)
    light = face_model.coefficient_slices()["light"]
    np.testing.assert_allclose(sample["coefficients"][light], drawn[light], rtol=1e-6)
    np.testing.assert_allclose(_pose(face_model, sample["coefficients"])[:3], drawn[face_model.coefficient_slices()["pose"]][:3],
                               rtol=1e-6)


def test_a_distant_light_projects_to_the_clamped_cosine():
    """Order-2 SH of max(0, n.d): 1.0625 facing the light, 0.0625 facing away (Ramamoorthi and
    Hanrahan), 0.25 + 0.3125 (3 cos^2 - 1)/2 across it, through the renderer's own basis."""
    from renderer import shading
    direction = np.array([0.6, 0.0, 0.8])
    light = appearance.sh_of_direction(direction)
    basis = lambda n: np.array(shading._BAND_SCALES) * np.array(  # noqa: E731
        [1, n[1], n[2], n[0], n[0] * n[1], n[1] * n[2], 3 * n[2] ** 2 - 1, n[0] * n[2], n[0] ** 2 - n[1] ** 2])
    assert light @ basis(direction) == pytest.approx(1.0625, abs=1e-6)
    assert light @ basis(-direction) == pytest.approx(0.0625, abs=1e-6)
    assert light @ basis(np.array([0.0, 1.0, 0.0])) == pytest.approx(0.25 - 0.3125 * 0.5, abs=1e-6)


def test_directional_light_has_directional_energy(face_model, renderer, plain_renderer):
    light = face_model.coefficient_slices()["light"]
    for index in range(4):
        rng = np.random.default_rng([9, index])
        coefficients = appearance.directional_light(rng, synthesize.renderer_ambient())
        assert appearance.directional_energy(coefficients) > 0.35
    sample = _with(renderer, **CLEAN).sample(synthesize.sample_rng(9, 0))
    assert appearance.directional_energy(sample["coefficients"][light]) > 0.35
    # and the face is lit unevenly: a bright and a dark side of the face pixels
    face = np.isin(sample["segmentation"], [schema.SKIN, schema.NOSE])
    brightness = sample["image"][face].mean(axis=1)
    assert np.percentile(brightness, 95) > 1.8 * np.percentile(brightness, 5)


def test_occluders_and_head_are_labelled_other(renderer):
    clean = _with(renderer, head_probability=0.0, **CLEAN)
    occluded = _with(renderer, head_probability=1.0, **dict(CLEAN, glasses_probability=1.0, hand_probability=1.0))
    for index in range(2):
        a, b = clean.sample(synthesize.sample_rng(8, index)), occluded.sample(synthesize.sample_rng(8, index))
        changed = a["segmentation"] != b["segmentation"]
        assert changed.sum() > 1000
        assert (b["segmentation"][changed] == schema.OTHER).all()
        # pixels that look different are labelled other, or are the anti-aliased rim around it
        # (an occluder's edge covers part of a pixel whose label is what lies behind)
        differs = np.abs(a["image"].astype(int) - b["image"].astype(int)).max(axis=-1) > 3
        rim = ndimage.binary_dilation(b["segmentation"] == schema.OTHER, iterations=2)
        assert rim[differs].mean() > 0.998
        assert (b["segmentation"][differs] == schema.OTHER).mean() > 0.9
        np.testing.assert_array_equal(a["points_px"], b["points_px"])


def test_appearance_options_refuse_impossible_values():
    with pytest.raises(ValueError, match="--jpeg_probability"):
        appearance.AppearanceOptions(jpeg_probability=1.5).validate()
    with pytest.raises(ValueError, match="--light"):
        appearance.AppearanceOptions(light="neon").validate()


def test_eye_discs_show_an_iris_in_the_eye_openings_labelled_eyes(renderer):
    without = _with(renderer, eyes=False, head_probability=0.0, **CLEAN)
    with_eyes = _with(renderer, eyes=True, head_probability=0.0, **CLEAN)
    for index in range(2):
        a, b = without.sample(synthesize.sample_rng(12, index)), with_eyes.sample(synthesize.sample_rng(12, index))
        # the discs sit behind the lids: the labels change on few pixels, and to "eyes" only
        changed = a["segmentation"] != b["segmentation"]
        assert changed.sum() < 0.01 * (a["segmentation"] != schema.BACKGROUND).sum()
        assert (b["segmentation"][changed] == schema.EYES).all()
        eyes = b["segmentation"] == schema.EYES
        differs = np.abs(a["image"].astype(int) - b["image"].astype(int)).max(axis=-1) > 10
        assert differs[eyes].mean() > 0.5 and not differs[~eyes].any()
        np.testing.assert_array_equal(a["points_px"], b["points_px"])


def test_appearance_flags_reach_the_samples_and_the_summary(tmp_path):
    result = run_synthesize("--out=%s" % tmp_path, "--max_yaw=5", "--light=soft", "--hand_probability=1",
                            "--map_size=32")
    assert result.returncode == 0, result.stderr
    summary = (tmp_path / "synthetic-summary.txt").read_text()
    assert "max_yaw=5.0" in summary and "light='soft'" in summary and "hand_probability=1.0" in summary
    plain = run_synthesize("--out=%s" % (tmp_path / "plain"), "--plain", "--map_size=32")
    assert plain.returncode == 0, plain.stderr
    assert "AppearanceOptions(max_yaw=60.0, max_pitch=20.0, max_roll=15.0, light='soft'" in (tmp_path / "plain" / "synthetic-summary.txt").read_text()
