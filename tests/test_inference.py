"""test.py: photos in, per-photo results out; faceless or missing input handled clearly."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

from model import coarse, fitting, training
from model.face import FaceModel
from preprocess import faces, images

tf.disable_eager_execution()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASTRONAUT = os.path.join(REPO, "resources", "examples", "astronaut.png")


def run_test(*flags):
    return subprocess.run([sys.executable, os.path.join(REPO, "test.py")] + list(flags), cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def fresh_checkpoint(tmp_path_factory):
    """An untrained coarse network (it predicts the mean face, frontal, centred), saved."""
    face_model = FaceModel()
    folder = tmp_path_factory.mktemp("checkpoint")
    with tf.Graph().as_default(), tf.Session() as session:
        net = coarse.CoarseNet(face_model.k_id, face_model.k_exp, face_model.k_tex)
        net(tf.zeros([1, 224, 224, 3]))
        session.run(tf.global_variables_initializer())
        tf.train.Saver(net.variables(), save_relative_paths=True).save(session, str(folder / "model.ckpt"))
    training.write_stage_config(str(folder), coarse.stage_config(face_model, "compact"))
    return str(folder)


@pytest.fixture
def faceless_photo(tmp_path):
    rows, cols = np.mgrid[0:240, 0:320]
    picture = np.stack([rows, cols, (rows + cols) // 2], axis=-1).astype(np.uint8)
    path = tmp_path / "photos" / "sky.png"
    path.parent.mkdir()
    Image.fromarray(picture).save(path)
    return path


def test_photo_without_a_face_exits_with_a_clear_message(fresh_checkpoint, faceless_photo, tmp_path):
    result = run_test("--input=%s" % faceless_photo, "--output_dir=%s" % (tmp_path / "out"),
                      "--checkpoint=%s" % fresh_checkpoint)
    assert result.returncode != 0
    assert "%s: no face found" % faceless_photo in result.stdout
    assert "0 of 1 photos reconstructed" in result.stdout


@pytest.mark.slow
def test_folder_with_a_faceless_photo_still_reconstructs_the_others(fresh_checkpoint, faceless_photo, tmp_path):
    shutil.copy(ASTRONAUT, faceless_photo.parent / "astronaut.png")
    out = tmp_path / "out"
    result = run_test("--input=%s" % faceless_photo.parent, "--output_dir=%s" % out,
                      "--checkpoint=%s" % fresh_checkpoint)
    assert result.returncode == 0, result.stderr
    assert "no face found" in result.stdout and "1 of 2 photos reconstructed" in result.stdout
    assert sorted(os.listdir(out)) == ["astronaut_coarse.obj", "astronaut_coeffs.npz",
                                       "astronaut_landmarks.txt", "astronaut_overlay.png"]

    face_model = FaceModel()
    with open(out / "astronaut_coarse.obj") as obj:
        lines = obj.read().splitlines()
    vertex_lines = [l for l in lines if l.startswith("v ")]
    assert len(vertex_lines) == face_model.num_vertices and len(vertex_lines[0].split()) == 7
    assert sum(l.startswith("vt ") for l in lines) == face_model.num_vertices
    assert sum(l.startswith("f ") for l in lines) == len(face_model.triangles)

    overlay = np.asarray(Image.open(out / "astronaut_overlay.png"))
    assert overlay.shape == (300, 900, 3)
    coeffs = np.load(out / "astronaut_coeffs.npz")
    np.testing.assert_array_equal(coeffs["network_coefficients"], 0.0)  # untrained: the mean face
    assert int(coeffs["fit_steps"]) == fitting.DEFAULT_STEPS  # fitting is on by default
    assert np.abs(coeffs["coefficients"] - coeffs["network_coefficients"]).max() > 0.05


@pytest.mark.slow
def test_landmarks_are_written_in_original_photo_pixels(fresh_checkpoint, tmp_path):
    """The untrained network puts the mean face where the crop rule frames the detected face, so its
    landmarks, mapped back to the photo, must lie on the detected ones (to within the difference
    between the mean face and this person)."""
    out = tmp_path / "out"
    result = run_test("--input=%s" % ASTRONAUT, "--output_dir=%s" % out, "--checkpoint=%s" % fresh_checkpoint)
    assert result.returncode == 0, result.stderr
    written = np.loadtxt(out / "astronaut_landmarks.txt")
    photo = images.load_image(ASTRONAUT)
    detected = faces.predict_landmarks(photo, faces.detect_largest_face(photo))
    interocular = np.linalg.norm(detected[36:42].mean(0) - detected[42:48].mean(0))
    assert written.shape == (68, 2)
    assert np.mean(np.linalg.norm(written - detected, axis=1)) < 0.25 * interocular


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    result = run_test("--input=%s" % ASTRONAUT, "--output_dir=%s" % tmp_path,
                      "--checkpoint=%s" % (tmp_path / "nothing"))
    assert result.returncode != 0
    assert "no checkpoint at %s" % (tmp_path / "nothing") in result.stderr


def test_a_checkpoint_of_another_face_model_is_a_clear_error(fresh_checkpoint, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(fresh_checkpoint, other)
    config = training.read_stage_config(str(other))
    training.write_stage_config(str(other), dict(config, face_model_file="bfm.npz", face_model_sha256="0" * 64))
    result = run_test("--input=%s" % ASTRONAUT, "--output_dir=%s" % (tmp_path / "out"), "--checkpoint=%s" % other)
    assert result.returncode != 0
    assert "was trained with the face model bfm.npz (sha256 %s)" % ("0" * 64) in result.stderr
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_a_checkpoint_without_its_stage_config_is_a_clear_error(fresh_checkpoint, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(fresh_checkpoint, bare)
    os.remove(bare / training.STAGE_CONFIG_NAME)
    result = run_test("--input=%s" % ASTRONAUT, "--output_dir=%s" % (tmp_path / "out"), "--checkpoint=%s" % bare)
    assert result.returncode != 0
    assert "no stage config stage.json beside the checkpoint" in result.stderr


def test_the_released_checkpoint_names_the_embedded_face_model():
    release = os.path.join(REPO, "results", "release", "coarse")
    config = training.read_stage_config(release)
    training.check_face_model(config, FaceModel(), release)
    assert config["stage"] == "coarse" and config["backbone"] == "compact"


def test_output_dir_that_is_a_file_is_a_one_line_error(tmp_path):
    (tmp_path / "taken").write_text("")
    result = run_test("--input=%s" % ASTRONAUT, "--output_dir=%s" % (tmp_path / "taken"),
                      "--checkpoint=%s" % REPO + "/results/release/coarse")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith(
        "test.py: cannot create --output_dir=%s: File exists" % (tmp_path / "taken"))


def test_a_checkpoint_of_another_backbone_is_named_as_such(fresh_checkpoint, tmp_path):
    # Its stage config says vgg_face; the weights are a compact network's.
    other = tmp_path / "other"
    shutil.copytree(fresh_checkpoint, other)
    training.write_stage_config(str(other), dict(training.read_stage_config(str(other)), backbone="vgg_face"))
    result = run_test("--input=%s" % ASTRONAUT, "--output_dir=%s" % (tmp_path / "out"), "--checkpoint=%s" % other)
    assert result.returncode != 0
    assert "holds a --backbone=compact network, not --backbone=vgg_face" in result.stderr
    assert "not found" not in result.stderr


@pytest.mark.slow
def test_same_stem_photos_both_keep_results_and_a_failed_write_spares_the_others(fresh_checkpoint, tmp_path):
    """face.jpg and face.png in one folder: both reconstructed, named with their extensions. A folder
    in the way of one of the jpg's outputs fails that photo alone: its other three results are not
    written (all or none), the png's are, and the exit status says something failed."""
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(ASTRONAUT, photos / "face.png")
    Image.open(ASTRONAUT).convert("RGB").save(photos / "face.jpg", quality=95)
    out = tmp_path / "out"
    (out / "face.jpg_overlay.png").mkdir(parents=True)
    result = run_test("--input=%s" % photos, "--output_dir=%s" % out, "--checkpoint=%s" % fresh_checkpoint)
    assert result.returncode == 1
    assert "FAILED %s" % (photos / "face.jpg") in result.stdout
    assert "1 of 2 photos reconstructed" in result.stdout
    assert sorted(os.listdir(out)) == ["face.jpg_overlay.png", "face.png_coarse.obj", "face.png_coeffs.npz",
                                       "face.png_landmarks.txt", "face.png_overlay.png"]

