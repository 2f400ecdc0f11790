"""The embedded face model file and the FaceModel class (TF graph ops against the NumPy oracle)."""
import os

import numpy as np
import pytest

from model.face import DEFAULT_PATH, REGION_NAMES, FaceModel
from model.face.framing import crop_box_from_landmarks
from tests import face_model_oracle as oracle


@pytest.fixture(scope="module")
def fm():
    return FaceModel()


def relative_off_diagonal(basis):
    gram = basis.astype(np.float64).T @ basis.astype(np.float64)
    diag = np.sqrt(np.diag(gram))
    return np.abs(gram / np.outer(diag, diag) - np.eye(len(gram))).max()


def rms_displacement_mm(column):
    return float(np.sqrt(np.mean(np.sum(column.reshape(-1, 3) ** 2, axis=1))))


# ----------------------------------------------------------------------------- the file


def test_model_file_is_at_most_30_mb():
    assert os.path.getsize(DEFAULT_PATH) <= 30e6


def test_vertex_count_is_between_8000_and_40000(fm):
    assert 8000 <= fm.num_vertices <= 40000


def test_basis_sizes_meet_the_minimums(fm):
    assert fm.k_id >= 80 and fm.k_exp >= 40 and fm.k_tex >= 20
    assert fm.coeff_size == fm.k_id + fm.k_exp + fm.k_tex + 6 + 27


@pytest.mark.parametrize("name", ["id_basis", "exp_basis", "tex_basis"])
def test_basis_columns_are_orthogonal(fm, name):
    assert relative_off_diagonal(getattr(fm, name)) < 1e-3


@pytest.mark.parametrize("name", ["id_basis", "exp_basis", "tex_basis"])
def test_basis_columns_are_ordered_by_standard_deviation(fm, name):
    norms = np.linalg.norm(getattr(fm, name), axis=0)
    assert np.all(np.diff(norms) <= 1e-4 * norms[0])


def test_one_standard_deviation_of_identity_and_expression_is_a_plausible_size(fm):
    # A 1-sigma change of the main identity/expression component moves a face by millimetres,
    # not micrometres or metres (a basis left in decimetres or unscaled would fail this).
    assert 1.0 < rms_displacement_mm(fm.id_basis[:, 0]) < 20.0
    assert 0.5 < rms_displacement_mm(fm.exp_basis[:, 0]) < 20.0


def face_region_mask(fm):
    return np.any([fm.regions[r] for r in REGION_NAMES], axis=0)


def camera_fields(fm):
    """The face regions' size and rotation displacement fields of the mean face, [4, 3M]."""
    mask = face_region_mask(fm)
    centred = fm.mean_shape.astype(np.float64)[mask]
    centred = centred - centred.mean(axis=0)
    return np.stack([centred.ravel()] + [np.cross(axis, centred).ravel() for axis in np.eye(3)])


def test_identity_basis_has_no_component_along_overall_size_or_rotation(fm):
    # Size is the camera's scale (scaled orthographic) and rotation the pose: the builder projects
    # the mean face's size and rotation directions (about the face regions' centroid, over those
    # vertices) out of the identity. The build before had cosine 0.995 between the first
    # component and the size direction, and a pitch of 4.5 degrees per standard deviation.
    mask = face_region_mask(fm)
    columns = fm.id_basis.astype(np.float64).reshape(fm.num_vertices, 3, fm.k_id)
    masked = columns[mask].reshape(-1, fm.k_id)
    fields = camera_fields(fm)
    cosines = (fields @ masked) / np.outer(np.linalg.norm(fields, axis=1), np.linalg.norm(masked, axis=0))
    assert np.abs(cosines).max() < 1e-4
    assert np.abs(columns.mean(axis=0)).max() < 1e-3  # and no translation (mm per sigma)


def test_random_identities_have_the_mean_face_size_and_orientation(fm):
    mask = face_region_mask(fm)
    mean = fm.mean_shape.astype(np.float64)
    reference = mean[mask] - mean[mask].mean(axis=0)
    fields = camera_fields(fm)[1:].T
    rng = np.random.default_rng(0)
    for _ in range(5):
        coefficients = rng.normal(size=fm.k_id) * 2.0
        shape = mean + (fm.id_basis.astype(np.float64) @ coefficients).reshape(-1, 3)
        assert rms_displacement_mm(shape - mean) > 2.0  # the shape changes ...
        centred = shape[mask] - shape[mask].mean(axis=0)
        scale = np.sum(reference * centred) / np.sum(reference ** 2)
        assert scale == pytest.approx(1.0, abs=1e-5)  # ... its least-squares size does not,
        rotation = np.linalg.lstsq(fields, (centred - reference).ravel(), rcond=None)[0]
        assert np.degrees(np.abs(rotation)).max() < 1e-3  # nor its (linearised) orientation


def test_mean_albedo_is_in_unit_range_and_albedo_basis_is_small(fm):
    assert fm.mean_albedo.min() >= 0 and fm.mean_albedo.max() <= 1
    assert np.abs(fm.tex_basis).max() < 0.5


def test_mirror_map_is_an_involution(fm):
    assert np.array_equal(fm.mirror[fm.mirror], np.arange(fm.num_vertices))


def test_mean_shape_is_mirror_symmetric(fm):
    mirrored = fm.mean_shape[fm.mirror] * np.array([-1.0, 1.0, 1.0])
    assert np.abs(mirrored - fm.mean_shape).max() < 0.5  # mm


def test_mean_shape_is_centred_and_face_sized(fm):
    extent = np.ptp(fm.mean_shape, axis=0)
    assert 120 < extent[0] < 200 and 150 < extent[1] < 240  # mm, ear to ear and brow to chin
    assert np.abs(fm.mean_shape[:, 0].mean()) < 0.5


def test_triangles_face_the_viewer_on_the_face_front(fm):
    normals = oracle.normals(fm, fm.mean_shape[None])[0]
    assert np.all(normals[fm.landmarks68[27:31], 2] > 0.5)  # nose bridge and tip
    # Brows, nose and outer lips; eye and inner-lip points sit on the openings' edges, seen edge-on.
    front = np.r_[17:36, 48:60]
    assert normals[fm.landmarks68[front], 2].mean() > 0.5


def test_uv_chart_has_no_flipped_or_overlapping_triangles(fm):
    uv = fm.uv.astype(np.float64)
    assert uv.min() >= 0 and uv.max() <= 1
    a, b, c = (uv[fm.triangles[:, k]] for k in range(3))
    signed = 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1]))
    assert np.all(signed > 0)
    # Same orientation everywhere and total area equal to the area inside the border: the chart
    # covers its disk exactly once.
    from model.face.builder.topology import boundary_loops
    outer = max(boundary_loops(fm.triangles), key=len)
    x, y = uv[outer, 0], uv[outer, 1]
    border_area = 0.5 * abs(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
    assert signed.sum() == pytest.approx(border_area, rel=1e-6)


def test_uv_mask_holds_every_vertex_away_from_the_chart_border(fm):
    from model.face.builder.topology import boundary_loops
    from skimage.measure import points_in_poly
    size = fm.uv_mask.shape[0]
    cols = np.clip((fm.uv[:, 0] * size).astype(int), 0, size - 1)
    rows = np.clip(((1 - fm.uv[:, 1]) * size).astype(int), 0, size - 1)
    border = fm.uv[max(boundary_loops(fm.triangles), key=len)].astype(np.float64)
    segments = np.diff(np.concatenate([border, border[:1]]), axis=0)
    # Distance of each vertex to the border polyline.
    t = np.clip(np.einsum("vsk,sk->vs", fm.uv[:, None] - border[None], segments)
                / np.sum(segments ** 2, axis=1), 0, 1)
    distance = np.linalg.norm(fm.uv[:, None] - border[None] - t[..., None] * segments, axis=-1).min(axis=1)
    inner = distance > 2.0 / size
    assert inner.mean() > 0.9
    assert np.all(fm.uv_mask[rows[inner], cols[inner]] == 1)
    x, y = border[:, 0], border[:, 1]
    chart_area = 0.5 * abs(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
    assert fm.uv_mask.mean() == pytest.approx(chart_area, rel=0.02)
    centres = (np.stack(np.nonzero(fm.uv_mask), axis=1)[:, ::-1] + 0.5) / size
    assert points_in_poly(np.stack([centres[:, 0], 1 - centres[:, 1]], axis=1), border).all()


def test_uv_chart_spreads_the_skin_area_ratio_at_most_3(fm):
    # UV area over 3D area, 95th over 5th percentile, over the triangles with all corners in
    # the skin (the mean-value chart before read 4.9).
    from model.face.builder.uv_chart import chart_figures
    figures = chart_figures(fm.mean_shape, fm.triangles, fm.uv, fm.mirror, fm.regions["skin"])
    assert figures["area_ratio_spread"] <= 3.0
    assert figures["flipped"] == 0


def test_uv_chart_puts_mirror_twins_at_mirrored_u(fm):
    np.testing.assert_allclose(fm.uv[fm.mirror, 0], 1.0 - fm.uv[:, 0], atol=1e-6)
    np.testing.assert_allclose(fm.uv[fm.mirror, 1], fm.uv[:, 1], atol=1e-6)


def test_outline_is_a_smooth_curve(fm):
    # The border turns by less than 45 degrees at every vertex (the quad-following cut of the
    # previous model turned by up to 151 degrees, 82 vertices over 45: a sawtooth).
    from model.face.builder.topology import boundary_loops
    loop = np.array(max(boundary_loops(fm.triangles), key=len))
    edges = fm.mean_shape[np.roll(loop, -1)].astype(np.float64) - fm.mean_shape[loop]
    edges /= np.linalg.norm(edges, axis=1, keepdims=True)
    turn = np.degrees(np.arccos(np.clip(np.sum(edges * np.roll(edges, 1, axis=0), axis=1), -1, 1)))
    assert turn.max() < 45.0


def test_outline_runs_from_forehead_to_chin_and_ear_to_ear(fm):
    x, y = fm.mean_shape[:, 0], fm.mean_shape[:, 1]
    lm = fm.mean_shape[fm.landmarks68]
    eye_distance = lm[45, 0] - lm[36, 0]
    assert y.max() - lm[19, 1] > 0.6 * eye_distance       # forehead above the brows
    assert lm[8, 1] - y.min() < 0.5 * eye_distance         # the chin near the bottom
    assert np.ptp(x) > 1.5 * eye_distance                 # cheek to cheek, to the ears


def test_regions_are_disjoint_and_non_empty(fm):
    names = ["skin", "eyes", "brows", "nose", "lips"]
    stacked = np.stack([fm.regions[n] for n in names])
    assert np.all(stacked.sum(axis=1) > 50)
    assert stacked.sum(axis=0).max() == 1


# ----------------------------------------------------------------------------- landmarks


def test_nose_tip_is_the_frontmost_nose_landmark(fm):
    z = fm.mean_shape[fm.landmarks68, 2]
    assert np.argmax(z[27:36]) + 27 == 30


def test_landmarks_run_from_image_left_to_image_right(fm):
    x = fm.mean_shape[fm.landmarks68, 0]
    for left, right in [(0, 16), (17, 26), (36, 39), (39, 42), (42, 45), (31, 35), (48, 54)]:
        assert x[left] < x[right], (left, right)


def test_landmarks_run_from_brows_to_chin(fm):
    y = fm.mean_shape[fm.landmarks68, 1]
    assert y[19] > y[37] > y[33] > y[62] > y[57] > y[8]


# iBUG pairs that swap under x -> -x (the rest lie on the midline: 8, 27-30, 33, 51, 57, 62, 66).
IBUG_PAIRS = ([(k, 16 - k) for k in range(8)] + [(17 + k, 26 - k) for k in range(5)]
              + [(31, 35), (32, 34), (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
              + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)])


def test_landmarks_are_mirror_twins(fm):
    lm = np.asarray(fm.landmarks68)
    for a, b in IBUG_PAIRS:
        assert fm.mirror[lm[a]] == lm[b], (a, b)
    paired = {k for pair in IBUG_PAIRS for k in pair}
    for k in sorted(set(range(68)) - paired):
        assert fm.mirror[lm[k]] == lm[k], k


def test_jaw_landmarks_lie_on_the_frontal_outline(fm):
    # Seen from the front, a jaw vertex is on the face's outline: the surface there is seen
    # edge-on or the mesh ends there, and nothing lies well in front of it.
    from model.face.builder.topology import boundary_loops
    normals = oracle.normals(fm, fm.mean_shape[None])[0]
    border = np.zeros(fm.num_vertices, dtype=bool)
    border[max(boundary_loops(fm.triangles), key=len)] = True
    xy, z = fm.mean_shape[:, :2], fm.mean_shape[:, 2]
    for k in range(17):
        v = fm.landmarks68[k]
        assert border[v] or abs(normals[v, 2]) < 0.3, k
        nearby = np.linalg.norm(xy - xy[v], axis=1) < 1.5
        assert z[nearby].max() - z[v] < 10.0, k


# ----------------------------------------------------------------------------- FaceModel ops


def test_missing_key_is_an_error_naming_the_file(tmp_path, fm):
    path = str(tmp_path / "broken.npz")
    np.savez(path, mean_shape=fm.mean_shape)
    with pytest.raises(ValueError, match="broken.npz"):
        FaceModel(path)


def test_split_coefficients_gives_the_contract_sizes(fm):
    parts = fm.split_coefficients(np.zeros((2, fm.coeff_size)))
    assert [parts[k].shape[1] for k in ("identity", "expression", "albedo", "pose", "light")] == \
        [fm.k_id, fm.k_exp, fm.k_tex, 6, 27]


def test_mean_face_at_pose_zero_is_framed_by_the_crop_rule(fm):
    points = oracle.project(fm, fm.mean_shape[None], np.zeros((1, 6)))
    cx, cy, side = crop_box_from_landmarks(oracle.landmarks(fm, points)[0])
    assert (cx, cy, side) == pytest.approx((150.0, 150.0, 300.0), abs=1e-3)


def test_translation_is_in_crop_pixels_and_log_scale_scales_about_the_centre(fm):
    base = oracle.project(fm, fm.mean_shape[None], np.zeros((1, 6)), image_size=600)[0]
    moved = oracle.project(fm, fm.mean_shape[None], np.array([[0, 0, 0, 10.0, -5.0, np.log(2.0)]]),
                          image_size=600)[0]
    expected_uv = 300 + 2 * (base[:, :2] - 300) + np.array([20.0, -10.0])
    assert np.allclose(moved[:, :2], expected_uv, atol=1e-3)


def test_positive_yaw_turns_the_nose_towards_the_image_right(fm):
    tip = fm.landmarks68[30]
    front = oracle.project(fm, fm.mean_shape[None], np.zeros((1, 6)))[0, tip, 0]
    turned = oracle.project(fm, fm.mean_shape[None], np.array([[0, 0.3, 0, 0, 0, 0]]))[0, tip, 0]
    assert turned > front + 5


def test_bases_are_embedded_once_per_graph(fm):
    import tensorflow.compat.v1 as tf
    tf.disable_eager_execution()
    with tf.Graph().as_default() as graph:
        zeros_id, zeros_exp = tf.zeros([1, fm.k_id]), tf.zeros([1, fm.k_exp])
        fm.shape(zeros_id, zeros_exp)
        fm.shape(zeros_id, zeros_exp)
        constants = [op for op in graph.get_operations() if op.name.startswith("face_model_id_basis")]
    assert len(constants) == 1


def test_identity_pca_without_samples_matches_an_explicit_pca():
    # The builder never forms the [samples, 3N] matrix; its result must equal PCA of that matrix.
    from model.face.builder.bases import pca_of_mixes
    rng = np.random.default_rng(1)
    offsets = rng.normal(size=(6, 40))
    weights = rng.uniform(size=(500, 6)) ** 2
    mean, basis, variances = pca_of_mixes(offsets, weights, 4)
    samples = weights @ offsets
    centred = samples - samples.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    assert np.allclose(mean, samples.mean(axis=0))
    assert np.allclose(variances, sv[:6] ** 2 / (len(samples) - 1))
    # Columns: principal directions (up to sign) times the standard deviation along them.
    assert np.allclose(np.abs(basis.T @ vt[:4].T), np.diag(np.sqrt(variances[:4])), atol=1e-8)
    assert np.allclose(np.var(centred @ (basis / np.linalg.norm(basis, axis=0)), axis=0, ddof=1),
                       variances[:4])


def _model_arrays():
    with np.load(DEFAULT_PATH) as data:
        return {k: data[k] for k in data.files}


def test_model_file_is_replaced_atomically_and_left_intact_on_error(tmp_path):
    from model.face import save_face_model
    path = tmp_path / "model.npz"
    arrays = _model_arrays()
    save_face_model(str(path), arrays)

    class Unsavable:
        def __array__(self, *args, **kwargs):
            raise RuntimeError("cannot be converted")

    # The other arrays are written into the new zip before "b" fails: a half-written file exists
    # for a moment.
    with pytest.raises(RuntimeError, match="cannot be converted"):
        save_face_model(str(path), dict(arrays, mean_shape=arrays["mean_shape"] + 1.0, b=Unsavable()))
    assert np.array_equal(np.load(str(path))["mean_shape"], arrays["mean_shape"])
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


@pytest.mark.parametrize("key", ["uv_mask", "landmarks68", "region_lips"])
def test_writer_refuses_a_model_without_a_required_key_and_writes_nothing(tmp_path, key):
    from model.face import save_face_model
    arrays = _model_arrays()
    del arrays[key]
    path = tmp_path / "model.npz"
    with pytest.raises(ValueError, match="misses %s" % key):
        save_face_model(str(path), arrays)
    assert list(tmp_path.iterdir()) == []


def test_reader_names_the_file_and_the_missing_key(tmp_path):
    arrays = _model_arrays()
    del arrays["uv_mask"]
    path = tmp_path / "old.npz"
    np.savez(str(path), **arrays)
    with pytest.raises(ValueError, match="old.npz misses uv_mask"):
        FaceModel(str(path))


def test_model_hash_is_the_file_sha256(fm):
    import hashlib
    with open(DEFAULT_PATH, "rb") as f:
        assert fm.sha256 == hashlib.sha256(f.read()).hexdigest()


def test_clip_to_unit_has_clip_by_values_values_and_gradient():
    import tensorflow.compat.v1 as tf
    from model.face.model import clip_to_unit
    x = np.array([[-0.5, 0.0, 0.3, 1.0, 1.7, -1e-7, 1.0 + 1e-6]], np.float32)
    upstream = np.array([[0.7, -1.3, 2.0, 0.4, -0.9, 5.0, 3.0]], np.float32)
    with tf.Graph().as_default(), tf.Session() as session:
        value = tf.constant(x)
        ours, reference = clip_to_unit(value), tf.clip_by_value(value, 0.0, 1.0)
        grads = [tf.gradients(y, value, grad_ys=tf.constant(upstream))[0] for y in (ours, reference)]
        ours_y, reference_y, ours_g, reference_g = session.run([ours, reference] + grads)
    np.testing.assert_array_equal(ours_y, reference_y)
    np.testing.assert_array_equal(ours_g, reference_g)
    # The gradient passes inside [0, 1], edges included, and is 0 outside.
    np.testing.assert_array_equal(ours_g, upstream * np.array([[0, 1, 1, 1, 0, 0, 0]], np.float32))
