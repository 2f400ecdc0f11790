"""resources/convert_bfm.py on tiny files written here in the BFM 2009 / Deep3DFaceRecon formats."""
import numpy as np
import pytest
import scipy.io

from model.face import FaceModel
from resources.convert_bfm import convert, main, read_expression_basis
from tests import face_model_oracle as oracle

GRID = 9  # the front face is a GRID x GRID vertex sheet: 81 vertices, enough for 68 landmarks
EXTRA_EXP = 6  # expression-model vertices outside the front crop
EXTRA_BFM = 5  # BFM vertices outside the expression model
K_SHAPE, K_EXP = 7, 5


def write_exp_pca_bin(path, mean, components):
    """Exp_Pca.bin as Deep3DFaceRecon reads it: int32 K, float32 mean [3E], float32 [K, 3E]."""
    with open(path, "wb") as f:
        np.array([len(components)], "<i4").tofile(f)
        mean.astype("<f4").tofile(f)
        components.astype("<f4").tofile(f)


@pytest.fixture(scope="module")
def bfm(tmp_path_factory):
    """Writes a tiny BFM folder; returns (folder, ground truth dict)."""
    folder = tmp_path_factory.mktemp("BFM")
    rng = np.random.default_rng(0)
    n_front = GRID * GRID
    n_exp = n_front + EXTRA_EXP
    n_bfm = n_exp + EXTRA_BFM
    # A dome in micrometres, x right, y up, z towards the viewer.
    gx, gy = np.meshgrid(np.linspace(-60, 60, GRID), np.linspace(80, -80, GRID))
    front_xyz = np.stack([gx.ravel(), gy.ravel(), 60 - 0.004 * (gx.ravel() ** 2 + gy.ravel() ** 2)], 1) * 1e3
    # Shuffled correspondences: BFM vertex of each expression vertex, expression vertex of each front vertex.
    trim = rng.permutation(n_bfm)[:n_exp]
    front = rng.permutation(n_exp)[:n_front]
    shape_mu = rng.normal(size=(n_bfm, 3)) * 1e5
    shape_mu[trim[front]] = front_xyz
    shape_pc = np.linalg.qr(rng.normal(size=(3 * n_bfm, K_SHAPE)))[0]
    shape_ev = np.linspace(3e4, 1e4, K_SHAPE)[:, None]
    tex_mu = rng.uniform(50, 200, size=(3 * n_bfm, 1))
    tex_pc = np.linalg.qr(rng.normal(size=(3 * n_bfm, K_SHAPE)))[0]
    tex_ev = np.linspace(40, 10, K_SHAPE)[:, None]
    scipy.io.savemat(folder / "01_MorphableModel.mat", dict(
        shapeMU=shape_mu.reshape(-1, 1), shapePC=shape_pc, shapeEV=shape_ev,
        texMU=tex_mu, texPC=tex_pc, texEV=tex_ev,
        tl=np.array([[1, 2, 3]], np.float64), segbin=np.zeros((n_bfm, 4))))
    exp_components = rng.normal(size=(K_EXP, 3 * n_exp))
    exp_std = np.linspace(2e4, 5e3, K_EXP)
    write_exp_pca_bin(folder / "Exp_Pca.bin", rng.normal(size=3 * n_exp), exp_components)
    np.savetxt(folder / "std_exp.txt", exp_std)
    scipy.io.savemat(folder / "BFM_exp_idx.mat", dict(trimIndex=(trim + 1).reshape(-1, 1).astype(np.float64)))
    scipy.io.savemat(folder / "BFM_front_idx.mat", dict(idx=(front + 1).reshape(-1, 1).astype(np.float64)))
    # Triangles of the sheet, written clockwise seen from the front (the converter must flip them).
    quads = [(r * GRID + c, r * GRID + c + 1, (r + 1) * GRID + c + 1, (r + 1) * GRID + c)
             for r in range(GRID - 1) for c in range(GRID - 1)]
    tri = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))])
    keypoints = rng.permutation(n_front)[:68]
    scipy.io.savemat(folder / "facemodel_info.mat", dict(tri=tri + 1.0, keypoints=keypoints[None] + 1.0))
    truth = dict(front_bfm=trim[front], front_exp=front, shape_mu=shape_mu, shape_pc=shape_pc,
                 shape_ev=shape_ev.ravel(), tex_mu=tex_mu.reshape(-1, 3), tex_pc=tex_pc,
                 tex_ev=tex_ev.ravel(), exp_components=exp_components, exp_std=exp_std, tri=tri,
                 keypoints=keypoints, n_exp=n_exp)
    return folder, truth


@pytest.fixture(scope="module")
def converted(bfm, tmp_path_factory):
    folder, _ = bfm
    out = tmp_path_factory.mktemp("out") / "bfm.npz"
    main(["--bfm-dir", str(folder), "--out", str(out), "--k-id", "6", "--k-exp", "4", "--k-tex", "3"])
    return FaceModel(str(out))


def test_expression_file_layout_round_trips(bfm):
    folder, truth = bfm
    _, components = read_expression_basis(str(folder / "Exp_Pca.bin"))
    assert components.shape == (3 * truth["n_exp"], K_EXP)
    assert np.allclose(components, truth["exp_components"].T, rtol=1e-6)


def test_expression_file_of_wrong_size_is_an_error_naming_it(tmp_path):
    path = tmp_path / "Exp_Pca.bin"
    write_exp_pca_bin(path, np.zeros(9), np.zeros((2, 9)))
    with open(path, "ab") as f:
        f.write(b"\0\0\0\0")
    with pytest.raises(ValueError, match="Exp_Pca.bin"):
        read_expression_basis(str(path))


def test_missing_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="01_MorphableModel.mat"):
        convert(str(tmp_path))


def test_mean_shape_is_the_front_crop_in_millimetres(bfm, converted):
    _, truth = bfm
    assert np.allclose(converted.mean_shape, truth["shape_mu"][truth["front_bfm"]] / 1e3, atol=1e-3)


def test_identity_coefficient_one_moves_by_one_standard_deviation(bfm, converted):
    _, truth = bfm
    k = 4
    identity = np.zeros((1, converted.k_id))
    identity[0, k] = 1.0
    moved = oracle.shape(converted, identity, np.zeros((1, converted.k_exp)))[0] - converted.mean_shape
    expected = truth["shape_pc"][:, k].reshape(-1, 3)[truth["front_bfm"]] * truth["shape_ev"][k] / 1e3
    assert np.allclose(moved, expected, atol=1e-4)


def test_expression_coefficient_one_moves_by_one_standard_deviation(bfm, converted):
    _, truth = bfm
    k = 2
    expression = np.zeros((1, converted.k_exp))
    expression[0, k] = 1.0
    moved = oracle.shape(converted, np.zeros((1, converted.k_id)), expression)[0] - converted.mean_shape
    expected = truth["exp_components"][k].reshape(-1, 3)[truth["front_exp"]] * truth["exp_std"][k] / 1e3
    assert np.allclose(moved, expected, atol=1e-4)


def test_albedo_is_scaled_to_unit_range(bfm, converted):
    _, truth = bfm
    assert np.allclose(converted.mean_albedo, truth["tex_mu"][truth["front_bfm"]] / 255.0, atol=1e-5)
    expected = truth["tex_pc"][:, 1].reshape(-1, 3)[truth["front_bfm"]] * truth["tex_ev"][1] / 255.0
    assert np.allclose(converted.tex_basis[:, 1].reshape(-1, 3), expected, atol=1e-5)


def test_component_counts_follow_the_flags(converted):
    assert (converted.k_id, converted.k_exp, converted.k_tex) == (6, 4, 3)


def test_landmarks_become_zero_based(bfm, converted):
    _, truth = bfm
    assert np.array_equal(converted.landmarks68, truth["keypoints"])


def test_clockwise_triangles_are_flipped_to_face_the_viewer(bfm, converted):
    _, truth = bfm
    assert {tuple(sorted(t)) for t in converted.triangles} == {tuple(sorted(t)) for t in truth["tri"]}
    normals = oracle.normals(converted, converted.mean_shape[None])[0]
    assert np.all(normals[:, 2] > 0)


def test_mirror_map_pairs_mirrored_grid_vertices(converted):
    mirrored = converted.mean_shape[converted.mirror] * np.array([-1.0, 1.0, 1.0])
    assert np.allclose(mirrored, converted.mean_shape, atol=1e-3)


def test_uv_chart_keeps_every_triangle_counter_clockwise(converted):
    uv = converted.uv.astype(np.float64)
    a, b, c = (uv[converted.triangles[:, k]] for k in range(3))
    signed = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    assert np.all(signed > 0) and uv.min() >= 0 and uv.max() <= 1
