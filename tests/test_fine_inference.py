"""The fine stage's inference and evaluation: test.py's detailed outputs, the stage choice, evaluate.py's
fine figures, on tiny fine exports (tests/fine_export.py: untrained coarse network, 32 x 32 fine map)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

import evaluate
import test as test_py
from model import inference, mesh_files, metrics, training
from model.face import FaceModel
from preprocess import synthesize
from tests.test_inference import ASTRONAUT, fresh_checkpoint  # noqa: F401 (a fixture)

tf.disable_eager_execution()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_test(*flags):
    return subprocess.run([sys.executable, os.path.join(REPO, "test.py")] + list(flags), cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def face_model():
    return FaceModel()


@pytest.fixture(scope="module")
def crop():
    rng = np.random.default_rng(3)
    return (rng.random((300, 300, 3)) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def zero_reconstructor(tiny_fine_export):
    return inference.load_reconstructor(tiny_fine_export, fit_steps=0)


@pytest.fixture(scope="module")
def nonzero_reconstructor(tiny_nonzero_fine_export):
    return inference.load_reconstructor(tiny_nonzero_fine_export, fit_steps=0)


@pytest.fixture(scope="module")
def written(tmp_path_factory, tiny_nonzero_fine_export):
    """test.py on the example photo with the non-zero fine export (--stage auto: the export's), and
    with --stage=coarse from the same export."""
    out = tmp_path_factory.mktemp("fine_out")
    fine_run = run_test("--input=%s" % ASTRONAUT, "--output_dir=%s" % (out / "fine"),
                        "--checkpoint=%s" % tiny_nonzero_fine_export, "--fit_steps=0")
    coarse_run = run_test("--input=%s" % ASTRONAUT, "--output_dir=%s" % (out / "coarse"),
                          "--checkpoint=%s" % tiny_nonzero_fine_export, "--fit_steps=0", "--stage=coarse")
    assert fine_run.returncode == 0, fine_run.stdout + fine_run.stderr[-3000:]
    assert coarse_run.returncode == 0, coarse_run.stdout + coarse_run.stderr[-3000:]
    return out


def test_a_fine_export_loads_as_the_fine_reconstructor(zero_reconstructor, tiny_fine_export):
    assert isinstance(zero_reconstructor, inference.FineReconstructor)
    assert zero_reconstructor.layout.size == 32
    coarse_only = inference.load_reconstructor(tiny_fine_export, stage="coarse")
    assert type(coarse_only) is inference.CoarseReconstructor


def test_zero_displacement_puts_the_fine_mesh_on_the_coarse_surface(zero_reconstructor, face_model, crop):
    result = zero_reconstructor(crop)
    assert np.all(result["displacement"] == 0.0)
    layout = zero_reconstructor.layout
    surface, smooth = metrics.dense_surface(layout, result["vertices"], face_model.triangles)
    assert np.abs(result["dense_vertices"] - surface).max() < 1e-3          # mm
    np.testing.assert_allclose(result["detailed_vertices"][:face_model.num_vertices], result["vertices"])
    # The mesh test.py writes: every vertex on the coarse surface (the coarse vertices, or the
    # coarse surface at a texel centre).
    vertices, _, _, _ = test_py.detailed_mesh(zero_reconstructor, result)
    on_surface = np.concatenate([result["vertices"], surface])
    from scipy.spatial import cKDTree
    assert cKDTree(on_surface).query(vertices)[0].max() < 1e-3


def test_the_fine_network_sees_the_fitted_coarse_result(tiny_nonzero_fine_export, face_model):
    sample = synthesize.SampleRenderer(face_model).sample(np.random.default_rng(2))
    fitted = inference.load_reconstructor(tiny_nonzero_fine_export, fit_steps=3)
    result = fitted(sample["image"], sample["landmarks"], sample["segmentation"], pictures=True)
    assert np.abs(result["coeffs"] - result["network_coeffs"]).max() > 1e-4     # fitting moved it
    np.testing.assert_allclose(result["detailed_vertices"][:face_model.num_vertices], result["vertices"])
    points, _ = metrics.dense_surface(fitted.layout, result["vertices"], face_model.triangles,
                                      result["displacement"], "normal")
    np.testing.assert_allclose(result["dense_vertices"], points, atol=1e-3)
    assert result["fine_shading"].shape == (300, 300, 3)
    with pytest.raises(ValueError, match="needs the crop's landmarks"):
        fitted(sample["image"])


def test_numpy_dense_surface_is_the_one_the_fine_model_builds(nonzero_reconstructor, face_model, crop):
    result = nonzero_reconstructor(crop)
    assert np.abs(result["displacement"]).max() > 0.05                       # a real displacement
    points, normals = metrics.dense_surface(nonzero_reconstructor.layout, result["vertices"], face_model.triangles,
                                            result["displacement"], "normal")
    np.testing.assert_allclose(result["dense_vertices"], points, atol=1e-3)
    np.testing.assert_allclose(result["dense_normals"], normals, atol=1e-3)


def test_displacement_png_and_sidecar_round_trip_to_millimetres(tmp_path):
    rng = np.random.default_rng(0)
    displacement = rng.uniform(-1.0, 1.0, (16, 16))
    displacement[0, 0], displacement[0, 1] = 1.0, -1.0
    encoding = mesh_files.DisplacementEncoding.spanning(1.0)
    with open(tmp_path / "d.png", "wb") as png, open(tmp_path / "d.json", "w") as sidecar:
        mesh_files.write_displacement(png, sidecar, displacement[..., None], encoding)
    decoded = mesh_files.read_displacement(tmp_path / "d.png", tmp_path / "d.json")
    assert np.abs(decoded - displacement).max() <= encoding.scale_mm / 2 + 1e-12
    assert np.asarray(Image.open(tmp_path / "d.png")).dtype in (np.uint16, np.int32)   # 16-bit, not 8
    with open(tmp_path / "d.json", "w") as f:
        f.write("{}")
    with pytest.raises(ValueError, match="d.json"):
        mesh_files.read_displacement(tmp_path / "d.png", tmp_path / "d.json")


@pytest.mark.slow
def test_test_py_writes_the_detailed_obj_that_trimesh_loads_textured(written, face_model):
    import trimesh
    from model.face.uv_layout import UVLayout
    from model import fine

    out = written / "fine"
    assert sorted(os.listdir(out)) == sorted("astronaut" + suffix for suffix in
                                             test_py.output_suffixes("fine"))
    layout = UVLayout(face_model, 32)
    triangles = fine.FineModel(face_model, layout, None).triangles
    mesh = trimesh.load(out / "astronaut_fine.obj", process=False)
    assert len(mesh.vertices) == len(np.unique(triangles))
    assert len(mesh.faces) == len(triangles)
    assert mesh.visual.uv.shape == (len(mesh.vertices), 2)
    assert 0.0 <= mesh.visual.uv.min() and mesh.visual.uv.max() <= 1.0
    assert mesh.visual.material.image.size == (32, 32)                     # the texture PNG it names
    np.testing.assert_allclose(np.linalg.norm(mesh.vertex_normals, axis=1), 1.0, atol=1e-3)
    # Same frame as the coarse OBJ: the coarse vertices it keeps are the coarse OBJ's.
    coarse = trimesh.load(out / "astronaut_coarse.obj", process=False)
    kept = np.unique(triangles)
    kept_coarse = kept[kept < face_model.num_vertices]
    np.testing.assert_allclose(mesh.vertices[:len(kept_coarse)], coarse.vertices[kept_coarse], atol=1e-3)

    decoded = mesh_files.read_displacement(out / "astronaut_displacement.png", out / "astronaut_displacement.json")
    assert decoded.shape == (32, 32)
    assert np.abs(decoded[~layout.mask]).max() < 1e-4                     # tapered to the detail mask
    assert np.abs(decoded[layout.mask]).max() > 0.05
    with open(out / "astronaut_displacement.json") as f:
        assert json.load(f)["displacement_direction"] == "normal"
    detail = np.asarray(Image.open(out / "astronaut_detail.png")).astype(int)
    assert detail.shape == (300, 900, 3)
    # The fine panel differs from the coarse one (the displacement shows), both grey.
    assert np.abs(detail[:, 600:] - detail[:, 300:600]).max() > 10
    face = detail[150, 450]
    assert abs(face[0] - face[1]) <= 1 and abs(face[1] - face[2]) <= 1


@pytest.mark.slow
def test_stage_coarse_writes_exactly_the_coarse_files_of_the_fine_run(written):
    coarse, fine = written / "coarse", written / "fine"
    assert sorted(os.listdir(coarse)) == ["astronaut_coarse.obj", "astronaut_coeffs.npz",
                                          "astronaut_landmarks.txt", "astronaut_overlay.png"]
    for name in ("astronaut_coarse.obj", "astronaut_landmarks.txt", "astronaut_overlay.png"):
        assert (coarse / name).read_bytes() == (fine / name).read_bytes(), name


def test_stage_is_chosen_by_the_checkpoint_or_the_releases(tmp_path, tiny_fine_export, fresh_checkpoint):  # noqa: F811
    assert inference.resolve_stage(tiny_fine_export) == (tiny_fine_export, "fine")
    assert inference.resolve_stage(fresh_checkpoint) == (fresh_checkpoint, "coarse")
    assert inference.resolve_stage(tiny_fine_export, "coarse") == (tiny_fine_export, "coarse")
    with pytest.raises(training.StageConfigMismatch, match="--stage=fine needs a fine export"):
        inference.resolve_stage(fresh_checkpoint, "fine")
    releases = tmp_path / "results" / "release"
    releases.mkdir(parents=True)
    os.symlink(fresh_checkpoint, releases / "coarse")
    assert inference.resolve_stage(None, root=str(tmp_path))[1] == "coarse"       # no fine release yet
    os.symlink(tiny_fine_export, releases / "fine")
    checkpoint, stage = inference.resolve_stage(None, root=str(tmp_path))
    assert (checkpoint, stage) == (str(releases / "fine"), "fine")
    assert inference.resolve_stage(None, "coarse", root=str(tmp_path)) == (str(releases / "coarse"), "coarse")


def test_a_fine_stage_config_without_its_sizes_is_named(tmp_path, tiny_fine_export):
    import shutil
    copy = tmp_path / "export"
    shutil.copytree(tiny_fine_export, copy)
    config = training.read_stage_config(str(copy))
    del config["uv_size"]
    training.write_stage_config(str(copy), config)
    with pytest.raises(ValueError, match="lacks uv_size"):
        inference.load_reconstructor(str(copy))


def evaluate_maps(folder):
    """The gt/displacement maps of a folder's records, in file order."""
    import tensorflow as tf2
    out = []
    for path in sorted(folder.glob("*.tfrecord")):
        for record in tf2.compat.v1.io.tf_record_iterator(str(path)):
            feature = tf2.train.Example.FromString(record).features.feature
            side = feature["gt/displacement_size"].int64_list.value[0]
            out.append(np.asarray(feature["gt/displacement"].float_list.value).reshape(side, side))
    return out


@pytest.fixture(scope="module")
def record_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fine_records")
    synthesize.synthesize(2, str(folder), seed=5, workers=1, progress=False)
    return folder


def test_evaluate_reports_fine_figures_and_zero_detail_scores_as_the_coarse_surface(
        zero_reconstructor, nonzero_reconstructor, record_folder):
    zero, rows, _ = evaluate.evaluate_synthetic(zero_reconstructor, str(record_folder), progress=False)
    assert set(zero["normal_error_deg"]) == {"coarse", "coarse_detail_grid", "fine"}
    assert set(zero["displacement_error_mm"]) == {"fine", "zero_prediction", "mean_map_of_the_others"}
    assert zero["uv_size"] == 32
    # A zero map is the coarse surface, and its error is the ground truth's RMS.
    assert zero["normal_error_deg"]["fine"] == pytest.approx(zero["normal_error_deg"]["coarse_detail_grid"], abs=1e-6)
    assert zero["displacement_error_mm"]["fine"] == pytest.approx(zero["displacement_error_mm"]["zero_prediction"])
    assert 0.0 < zero["displacement_error_mm"]["zero_prediction"] < 1.0
    assert all(row["scored_texels"] > 0 for row in rows)
    # The template baseline of a face is the OTHER face's map (two records): scored by hand.
    maps = [evaluate.resample_map(m, 32) for m in evaluate_maps(record_folder)]
    assert np.isfinite(zero["displacement_error_mm"]["mean_map_of_the_others"])
    assert [row["displacement_template_error_mm"] for row in rows] != [row["displacement_gt_rms_mm"] for row in rows]
    total, count = evaluate.ground_truth_map_sum(sorted(map(str, record_folder.glob("*.tfrecord"))), 32)
    assert count == 2
    np.testing.assert_allclose(total, maps[0] + maps[1])
    section, _, _ = evaluate.evaluate_synthetic(nonzero_reconstructor, str(record_folder), progress=False)
    for key in ("coarse", "coarse_detail_grid", "fine"):
        assert np.isfinite(section["normal_error_deg"][key]) and 0.0 < section["normal_error_deg"][key] < 90.0
    assert section["normal_error_deg"]["fine"] != pytest.approx(section["normal_error_deg"]["coarse_detail_grid"])
    assert np.isfinite(section["displacement_error_mm"]["fine"])
    assert section["displacement_error_mm"]["zero_prediction"] == pytest.approx(
        zero["displacement_error_mm"]["zero_prediction"])
    # The own chart: a zero map scores the RMS of the true detail seen through the coarse face.
    own = zero["displacement_error_mm_own_chart"]
    assert own["scored_texels"] > 0
    assert own["fine"] == pytest.approx(own["zero_prediction"]) and 0.0 < own["zero_prediction"] < 1.0
    assert np.isfinite(own["mean_map_of_the_others"])
    assert section["displacement_error_mm_own_chart"]["fine"] != pytest.approx(own["fine"])


def test_own_chart_scores_pool_texels_and_leave_each_face_out_of_its_template():
    targets = np.array([[[1.0, 2.0]], [[3.0, 6.0]], [[5.0, 0.0]]])
    scored = np.array([[[True, True]], [[True, False]], [[True, True]]])
    predicted = np.zeros_like(targets)
    scores = evaluate.own_chart_scores(predicted, targets, scored)
    values = targets[scored]
    assert scores["scored_texels"] == 5
    assert scores["fine"] == pytest.approx(np.sqrt(np.mean(values ** 2)))
    assert scores["zero_prediction"] == scores["fine"]
    # Templates: texel 0 of face 0 is (3 + 5) / 2; texel 1 of face 0 is 0 (face 1 did not score it).
    residuals = [4.0 - 1.0, 0.0 - 2.0, 3.0 - 3.0, 2.0 - 5.0, 2.0 - 0.0]
    assert scores["mean_map_of_the_others"] == pytest.approx(np.sqrt(np.mean(np.square(residuals))))
    assert evaluate.own_chart_scores(predicted, targets, np.zeros_like(scored))["fine"] is None


def test_maps_of_another_size_are_block_averaged_or_sampled():
    rng = np.random.default_rng(1)
    fine_map = rng.normal(size=(64, 64))
    np.testing.assert_array_equal(evaluate.resample_map(fine_map, 64), fine_map)
    np.testing.assert_allclose(evaluate.resample_map(fine_map, 32)[3, 5], fine_map[6:8, 10:12].mean())
    # A smooth map is the same function of (u, v) at any size.
    centres = evaluate.texel_centres(48)
    smooth = np.sin(3 * centres[..., 0]) + centres[..., 1] ** 2
    small = evaluate.resample_map(smooth, 40)
    expected = evaluate.texel_centres(40)
    np.testing.assert_allclose(small[5:-5, 5:-5], (np.sin(3 * expected[..., 0]) + expected[..., 1] ** 2)[5:-5, 5:-5],
                               atol=2e-3)


def test_an_export_with_the_shading_cue_loads_and_reads_six_channels(tmp_path, face_model, crop):
    from tests.fine_export import make_fine_export
    from model import fine
    folder = make_fine_export(tmp_path / "cue", face_model, output_std=0.05, shading_cue=True, ratio_input=True)
    config = training.read_stage_config(folder)
    assert config["shading_cue"] is True and config["ratio_input"] is True
    reconstructor = inference.load_reconstructor(folder, fit_steps=0)
    result = reconstructor(crop)
    assert np.all(np.isfinite(result["displacement"])) and np.abs(result["displacement"]).max() > 0
    stored = dict(tf.train.list_variables(tf.train.latest_checkpoint(folder)))
    assert stored[fine.SCOPE + "/conv0/kernel"] == [3, 3, fine.input_channels(True), 8]
    assert fine.parameter_count(32, 8, fine.input_channels(True)) == sum(
        int(np.prod(shape)) for name, shape in stored.items() if name.startswith(fine.SCOPE + "/"))


def test_the_released_fine_checkpoint_is_the_default_and_builds_on_the_released_coarse_one():
    release = os.path.join(REPO, "results", "release", "fine")
    config = training.read_stage_config(release)
    training.check_face_model(config, FaceModel(), release)
    assert config["stage"] == "fine" and config["coarse_checkpoint"] == "results/release/coarse"
    assert inference.resolve_stage(None, root=REPO) == (os.path.join(REPO, "results", "release", "fine"), "fine")
    # One checkpoint with both networks: the coarse variables are the coarse release's, unchanged.
    fine_vars = dict(tf.train.list_variables(release))
    coarse_release = os.path.join(REPO, "results", "release", "coarse")
    coarse_vars = dict(tf.train.list_variables(coarse_release))
    shared = [name for name in coarse_vars if name.startswith("coarse/") and "Adam" not in name]
    assert shared and all(name in fine_vars for name in shared)
    assert any(name.startswith("fine/") for name in fine_vars)
    name = sorted(shared)[0]
    np.testing.assert_array_equal(tf.train.load_variable(release, name), tf.train.load_variable(coarse_release, name))
