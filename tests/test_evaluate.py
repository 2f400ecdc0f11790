"""evaluate.py: photos with .pts files, synthetic records with ground truth and NoW-style scans, scored
by one run of the program with an untrained checkpoint (it reconstructs the mean face)."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

import evaluate
from model import inference, metrics
from model.face import FaceModel
from preprocess import faces, images, synthesize
from tests.test_inference import ASTRONAUT, fresh_checkpoint  # noqa: F401 (a fixture)
from tests import face_model_oracle as oracle
from tests.test_metrics import random_rotation, surface_samples

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCAN_NOISE_MM = 0.3


def write_pts(path, landmarks):
    """An iBUG .pts file of landmarks [68, 2] given in our continuous pixels (centres at +0.5)."""
    with open(path, "w") as f:
        f.write("version: 1\nn_points:  68\n{\n")
        f.writelines("%.3f %.3f\n" % (x + 0.5, y + 0.5) for x, y in landmarks)
        f.write("}\n")


@pytest.fixture(scope="module")
def astronaut_landmarks():
    """dlib's 68 points on the example photo: the annotation the photo folder carries."""
    image = images.load_image(ASTRONAUT)
    return faces.predict_landmarks(image, faces.detect_largest_face(image))


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory, astronaut_landmarks):
    """The four cases: annotated, not annotated, annotated but faceless, annotated but corrupt."""
    folder = tmp_path_factory.mktemp("photos")
    shutil.copy(ASTRONAUT, folder / "astronaut.png")
    write_pts(folder / "astronaut.pts", astronaut_landmarks)
    shutil.copy(ASTRONAUT, folder / "unannotated.png")
    rows, cols = np.mgrid[0:120, 0:160]
    Image.fromarray(np.stack([rows, cols, rows + cols], -1).astype(np.uint8)).save(folder / "sky.png")
    write_pts(folder / "sky.pts", astronaut_landmarks)
    (folder / "broken.JPG").write_bytes(b"\xff\xd8\xff not really a JPEG")
    write_pts(folder / "broken.pts", astronaut_landmarks)
    return folder


@pytest.fixture(scope="module")
def scan_folder(tmp_path_factory):
    """NoW-style: the example photo with a scan of the mean face (the untrained network's
    reconstruction) under a known rigid transform with known noise, and a photo without a scan."""
    folder = tmp_path_factory.mktemp("scans")
    face_model = FaceModel()
    rng = np.random.default_rng(11)
    vertices = face_model.mean_shape.astype(np.float64)
    face = evaluate.region_mask(face_model, evaluate.DETAIL_REGIONS)
    points, normals = surface_samples(rng, vertices, face_model.triangles[face[face_model.triangles].all(axis=1)],
                                      4000)
    points += rng.normal(0.0, SCAN_NOISE_MM, (len(points), 1)) * normals
    rotation, translation = random_rotation(rng), np.array([12.0, 80.0, -40.0])
    with open(folder / "face.obj", "w") as obj:
        obj.writelines("v %.5f %.5f %.5f\n" % tuple(p) for p in points @ rotation.T + translation)
    landmarks = vertices[face_model.landmarks68[list(metrics.NOW_LANDMARKS)]] @ rotation.T + translation
    np.savetxt(folder / "face_lmk7.txt", landmarks + rng.normal(0, 1.5, landmarks.shape))
    shutil.copy(ASTRONAUT, folder / "face.png")
    shutil.copy(ASTRONAUT, folder / "noscan.png")
    return folder


@pytest.fixture(scope="module")
def record_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("records")
    synthesize.synthesize(3, str(folder), seed=7, workers=1, progress=False)
    return folder


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, fresh_checkpoint, photo_folder, scan_folder, record_folder):  # noqa: F811
    out = tmp_path_factory.mktemp("evaluation")
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "evaluate.py"), "--photos=%s" % photo_folder,
         "--tfrecords=%s" % record_folder, "--scans=%s" % scan_folder, "--output_dir=%s" % out,
         "--checkpoint=%s" % fresh_checkpoint,
         "--fit_steps=0"],  # the untrained network alone: the mean face, which the checks below expect
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    with open(out / "metrics.json") as f:
        return out, json.load(f), result


@pytest.mark.slow
def test_metrics_json_has_exactly_the_documented_keys(evaluated):
    _, results, _ = evaluated
    assert set(results) == {"photos", "synthetic", "scans"}
    assert set(results["photos"]) == {"count", "mean_nme", "skipped", "per_photo"}
    assert set(results["photos"]["per_photo"]["astronaut"]) == {"nme", "regions"}
    assert set(results["photos"]["per_photo"]["astronaut"]["regions"]) == {"jaw", "brows", "nose", "eyes", "mouth"}
    assert set(results["synthetic"]) == {"count", "vertex_error_mm", "face_region_vertex_error_mm",
                                         "landmark_nme", "normal_error_deg"}
    for key in ("vertex_error_mm", "face_region_vertex_error_mm", "landmark_nme"):
        assert set(results["synthetic"][key]) == {"reconstruction", "mean_face"}
    assert set(results["synthetic"]["normal_error_deg"]) == {"coarse"}   # no fine stage yet
    assert set(results["scans"]) == {"count", "median_mm", "mean_mm", "std_mm"}


@pytest.mark.slow
def test_photos_are_counted_and_every_skipped_photo_has_its_reason(evaluated):
    out, results, run = evaluated
    photos = results["photos"]
    assert photos["count"] == 1 and list(photos["per_photo"]) == ["astronaut"]
    assert photos["skipped"] == {"broken.JPG": "unreadable", "sky.png": "no face",
                                 "unannotated.png": "no landmark file"}
    for name in photos["skipped"]:
        assert "skipped %s" % name in run.stdout
    assert sorted(f for f in os.listdir(out) if f.endswith("_landmarks.txt")) == ["astronaut_landmarks.txt"]
    assert open(out / "photos.csv").read().splitlines()[0] == "photo,nme,jaw,brows,nose,eyes,mouth"
    assert Image.open(out / "nme_regions.png").size[0] > 300


@pytest.mark.slow
def test_photo_nme_compares_the_written_landmarks_with_the_1_based_pts_file(evaluated, astronaut_landmarks):
    out, results, _ = evaluated
    written = np.loadtxt(out / "astronaut_landmarks.txt")
    # Independent of model/metrics.py: the .pts held dlib's points + 0.5 (1-based).
    target = astronaut_landmarks.astype(np.float64)
    expected = np.mean(np.linalg.norm(written - target, axis=1)) / np.linalg.norm(target[36] - target[45])
    scores = results["photos"]["per_photo"]["astronaut"]
    assert scores["nme"] == pytest.approx(expected, abs=2e-4)   # the file holds 2 decimals
    assert results["photos"]["mean_nme"] == scores["nme"]
    mouth = np.mean(np.linalg.norm(written[48:] - target[48:], axis=1)) / np.linalg.norm(target[36] - target[45])
    assert scores["regions"]["mouth"] == pytest.approx(mouth, abs=2e-4)


def rigid_error_oracle(source, target):
    """Mean distance after rigid alignment, with scipy's rotation fit (not model/metrics.py)."""
    source_c, target_c = source - source.mean(0), target - target.mean(0)
    rotation, _ = Rotation.align_vectors(target_c, source_c)
    return np.linalg.norm(rotation.apply(source_c) - target_c, axis=1).mean()


@pytest.mark.slow
def test_synthetic_scores_match_an_independent_computation_from_the_records(evaluated, record_folder):
    import tensorflow.compat.v1 as tf
    from model.data import make_dataset
    from preprocess import schema

    _, results, _ = evaluated
    synthetic = results["synthetic"]
    assert synthetic["count"] == 3
    for key in ("vertex_error_mm", "face_region_vertex_error_mm", "landmark_nme"):
        # The untrained network predicts zero coefficients: the mean face.
        assert synthetic[key]["reconstruction"] == pytest.approx(synthetic[key]["mean_face"], rel=1e-5)
    face_model = FaceModel()
    with tf.Graph().as_default():
        batch = tf.data.make_one_shot_iterator(make_dataset(
            str(record_folder / "*.tfrecord"), 3, augment=False, shuffle=False, repeat=False)).get_next()
        with tf.Session() as session:
            values = session.run(batch)
    parts = face_model.split_coefficients(values[schema.GT_COEFFICIENTS])
    shapes = oracle.shape(face_model, parts["identity"], parts["expression"]).astype(np.float64)
    mean_shape = face_model.mean_shape.astype(np.float64)
    assert synthetic["vertex_error_mm"]["mean_face"] == pytest.approx(
        np.mean([rigid_error_oracle(mean_shape, s) for s in shapes]), rel=1e-4)
    mean_landmarks = oracle.landmarks(face_model, oracle.project(face_model, mean_shape[None], np.zeros(6)))[0]
    target = values["landmarks"].astype(np.float64)
    nme = [np.linalg.norm(mean_landmarks - t, axis=1).mean() / np.linalg.norm(t[36] - t[45]) for t in target]
    assert synthetic["landmark_nme"]["mean_face"] == pytest.approx(np.mean(nme), rel=1e-4)
    assert 0.0 < synthetic["normal_error_deg"]["coarse"] < 90.0


@pytest.mark.slow
def test_scans_report_the_noise_of_a_scan_of_the_reconstructed_surface(evaluated):
    out, results, run = evaluated
    scans = results["scans"]
    assert scans["count"] == 1
    assert scans["mean_mm"] == pytest.approx(SCAN_NOISE_MM * np.sqrt(2 / np.pi), rel=0.1)
    assert scans["median_mm"] == pytest.approx(0.6745 * SCAN_NOISE_MM, rel=0.1)
    assert "skipped noscan.png: no scan" in run.stdout
    # One row of views per input with a per-vertex error: synthetic, then scans.
    width, height = Image.open(out / "error_map.png").size
    assert height > 0.8 * width


def test_ground_truth_detailed_surface_projects_onto_the_recorded_gt_vertices(record_folder):
    import tensorflow.compat.v1 as tf
    from model.data import make_dataset
    from preprocess import schema

    face_model = FaceModel()
    with tf.Graph().as_default():
        batch = tf.data.make_one_shot_iterator(make_dataset(
            str(record_folder / "*.tfrecord"), 1, augment=False, shuffle=False, repeat=False)).get_next()
        truth = evaluate.ground_truth_graph(face_model, batch)
        with tf.Session() as session:
            values, truth = session.run([batch, truth])
    coefficients = values[schema.GT_COEFFICIENTS][0]
    parts = face_model.split_coefficients(coefficients[None])
    np.testing.assert_allclose(truth["shape"][0], oracle.shape(face_model, parts["identity"], parts["expression"])[0],
                               atol=1e-3)
    detailed = evaluate.detailed_surface(face_model, truth["shape"][0], truth["normals"][0],
                                         values[schema.GT_DISPLACEMENT][0])
    assert np.abs(detailed - truth["shape"][0]).max() > 0.1                 # the detail is there ...
    projected = oracle.project(face_model, truth["shape"][0], parts["pose"])[0]
    np.testing.assert_allclose(projected, values[schema.GT_POINTS_PX][0], atol=0.02)  # the coarse points


def test_pts_coordinates_are_read_1_based_and_bad_files_are_named(tmp_path):
    points = np.random.default_rng(0).uniform(0, 200, (68, 2))
    write_pts(tmp_path / "a.pts", points)
    np.testing.assert_allclose(evaluate.read_pts(str(tmp_path / "a.pts")), points, atol=1e-3)
    (tmp_path / "b.pts").write_text("version: 1\nn_points: 5\n{\n1 2\n3 4\n}\n")
    with pytest.raises(evaluate.InputError, match="b.pts"):
        evaluate.read_pts(str(tmp_path / "b.pts"))


def test_scan_landmarks_are_read_from_meshlab_picked_points(tmp_path):
    points = np.arange(21, dtype=float).reshape(7, 3)
    (tmp_path / "s.pp").write_text("<!DOCTYPE PickedPoints>\n<PickedPoints>\n" + "".join(
        '<point x="%g" y="%g" z="%g" active="1" name="%d"/>\n' % (x, y, z, i)
        for i, (x, y, z) in enumerate(points)) + "</PickedPoints>\n")
    np.testing.assert_array_equal(evaluate.read_scan_landmarks(str(tmp_path / "s.pp")), points)
    np.savetxt(tmp_path / "s_lmk7.txt", points[:5])
    with pytest.raises(evaluate.InputError, match="s_lmk7.txt"):
        evaluate.read_scan_landmarks(str(tmp_path / "s_lmk7.txt"))


def test_folders_give_every_photo_extension_in_any_case(tmp_path):
    names = ["a.PNG", "b.jpg", "c.JPEG", "d.ppm", "e.PGM", "f.bmp", "g.Tif", "h.webp"]
    for name in names + ["notes.txt", "scan.obj"]:
        (tmp_path / name).write_bytes(b"")
    assert [os.path.basename(p) for p in inference.list_photos(str(tmp_path))] == names


def test_evaluate_names_a_missing_input_folder(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(REPO, "evaluate.py"), "--output_dir=%s" % tmp_path,
                             "--photos=%s" % (tmp_path / "nowhere")], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode != 0 and "--photos=%s is not a folder" % (tmp_path / "nowhere") in result.stderr


def test_barycentric_coordinates_rebuild_the_point_and_sum_to_one():
    rng = np.random.default_rng(3)
    corners = rng.normal(size=(20, 3, 3))
    weights = rng.dirichlet([1.0, 1.0, 1.0], 20)
    points = np.einsum("pk,pkd->pd", weights, corners)
    np.testing.assert_allclose(evaluate.barycentric(points, corners), weights, atol=1e-9)


def test_tfrecord_folders_without_records_are_named(tmp_path):
    import types

    reconstructor = types.SimpleNamespace(face_model=FaceModel())   # never called: the input is refused first
    with pytest.raises(evaluate.InputError, match="holds no"):
        evaluate.evaluate_synthetic(reconstructor, str(tmp_path), progress=False)
    (tmp_path / "empty.tfrecord").write_bytes(b"")
    with pytest.raises(evaluate.InputError, match="empty.tfrecord"):
        evaluate.evaluate_synthetic(reconstructor, str(tmp_path), progress=False)


@pytest.mark.slow
def test_scans_score_the_detailed_mesh_of_a_fine_checkpoint(scan_folder, tiny_fine_export, tiny_nonzero_fine_export):
    # Zero displacement: the detailed mesh lies on the coarse surface, so it scores as the coarse
    # mesh does (the scan's noise); a non-zero map moves the detailed surface off the scan.
    figures = {}
    for name, export in (("zero", tiny_fine_export), ("nonzero", tiny_nonzero_fine_export)):
        reconstructor = inference.load_reconstructor(export, fit_steps=0)
        section, rows, skipped, _ = evaluate.evaluate_scans(reconstructor, str(scan_folder), "hog", progress=False)
        assert section["count"] == 1 and set(skipped) == {"noscan.png"}
        assert set(section["fine"]) == {"median_mm", "mean_mm", "std_mm"}
        assert rows[0]["fine_mean_mm"] == pytest.approx(section["fine"]["mean_mm"])
        figures[name] = section
    zero, nonzero = figures["zero"], figures["nonzero"]
    # (The dense mesh is the coarse surface sampled on the 32 x 32 test grid: its chords add a little.)
    assert zero["fine"]["median_mm"] == pytest.approx(zero["median_mm"], rel=0.05)
    assert zero["fine"]["mean_mm"] == pytest.approx(zero["mean_mm"], abs=0.06)
    assert nonzero["mean_mm"] == pytest.approx(zero["mean_mm"], rel=1e-6)   # the same coarse mesh
    assert nonzero["fine"]["median_mm"] > 1.2 * zero["fine"]["median_mm"]


def test_coarse_checkpoints_have_no_fine_scan_figures(evaluated):
    assert "fine" not in evaluated[1]["scans"]
