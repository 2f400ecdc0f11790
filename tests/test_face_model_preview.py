"""The mean-face preview: the quality bar (dlib finds the rendered mean face and agrees with the
model's landmarks) and the files the preview script writes."""
import numpy as np
import pytest

from model import metrics
from model.face import FaceModel, forward
from resources import preview_face_model
from tests import face_model_oracle as oracle


@pytest.fixture(scope="module")
def preview(tmp_path_factory):
    out = tmp_path_factory.mktemp("preview") / "mean.png"
    status = preview_face_model.main(["--out", str(out)])
    return out, status


@pytest.fixture(scope="module")
def dlib_on_mean_face():
    """(NME, dlib points [68, 2], model landmarks [68, 2]) on the mean-face render."""
    fm = FaceModel()
    images, landmarks = preview_face_model.render_faces(
        fm, preview_face_model.default_coefficients(fm, 0, seed=0))
    points = preview_face_model.dlib_landmarks(images[0])
    assert points is not None, "dlib found no face on the mean-face render"
    return metrics.landmark_nme(points, landmarks[0]), points, landmarks[0]


def test_dlib_landmarks_on_the_mean_face_render_are_within_8_percent_of_the_inter_ocular_distance(
        dlib_on_mean_face):
    assert dlib_on_mean_face[0] < 0.08


def test_dlib_finds_the_eyes_where_the_model_has_them(dlib_on_mean_face):
    # The mean face must read as a face to dlib: dark low brows once made it put its eye points
    # between the eyes and the brows, which the overall mean hid.
    _, points, landmarks = dlib_on_mean_face
    assert metrics.landmark_nme_by_region(points, landmarks)["eyes"] < 0.05


def eye_opening_rims(fm):
    """Per eye (model x < 0, x > 0): xy [M, 2] of the vertices bordering the eye socket (the lid
    margin, where the lids meet the socket)."""
    eyes = fm.regions["eyes"]
    touches = np.zeros(fm.num_vertices, dtype=bool)
    touches[fm.triangles[eyes[fm.triangles].any(axis=1)].ravel()] = True
    rim = touches & ~eyes
    xy = fm.mean_shape[:, :2]
    return xy[rim & (xy[:, 0] < 0)], xy[rim & (xy[:, 0] > 0)]


def test_eye_landmarks_surround_the_eye_openings():
    fm = FaceModel()
    xy = fm.mean_shape[fm.landmarks68, :2]
    for rim, group in zip(eye_opening_rims(fm), (slice(36, 42), slice(42, 48))):
        assert np.linalg.norm(xy[group].mean(axis=0) - rim.mean(axis=0)) < 3.0
        width = np.ptp(rim[:, 0])
        assert np.ptp(xy[group, 0]) > 0.8 * width  # the corners are the opening's ends


def test_upper_lid_points_lie_above_the_lower_lid_points():
    y = FaceModel().mean_shape[FaceModel().landmarks68, 1]
    for upper, lower in [(37, 41), (38, 40), (43, 47), (44, 46)]:
        assert y[upper] > y[lower] + 2.0, (upper, lower)


def test_mouth_interior_never_shows_below_the_lower_lip_in_turned_and_pitched_views():
    # The cavity once ran down into the throat, which the open mask shows under the chin of a
    # face pitched up. Rendered as preprocess/synthesize.py does (back faces culled), the only
    # visible cavity is between the lips, above the lower lip's bottom (landmark 57).
    import tensorflow.compat.v1 as tf
    tf.disable_eager_execution()
    fm = FaceModel()
    coeffs = preview_face_model.default_coefficients(fm, 2, seed=1)
    pose = fm.k_id + fm.k_exp + fm.k_tex
    views = []
    for c in coeffs:
        c = c.copy()
        c[fm.k_id:fm.k_id + fm.k_exp] = 0.0  # mouth closed; identity and albedo of random faces kept
        for pitch in (-20, 20):
            for yaw in (-60, 0, 60):
                c[pose:pose + 2] = np.radians([pitch, yaw])
                views.append(c.copy())
    cavity = fm.regions["mouth_interior"][fm.triangles].any(axis=1)
    with tf.Graph().as_default():
        out = forward.render_face(fm, tf.constant(np.array(views)), 200, cull_backfaces=True)
        raster = out["rasterized"]
        with tf.Session() as sess:
            ids, mask, landmarks = sess.run([raster.triangle_ids, raster.mask, out["landmarks"]])
    for view in range(len(views)):
        shows_cavity = (mask[view] > 0.5) & cavity[ids[view]]
        rows = np.nonzero(shows_cavity)[0]
        assert rows.size == 0 or rows.max() + 0.5 <= landmarks[view, 57, 1] + 1.0, view


def test_mean_face_render_has_no_holes_inside_the_face():
    # Eye sockets and the closed mouth cavity leave no see-through gaps between the brows and
    # the lower lip (the jagged outer border may enclose a stray background pixel; it is outside).
    import scipy.ndimage
    import tensorflow.compat.v1 as tf
    tf.disable_eager_execution()
    fm = FaceModel()
    with tf.Graph().as_default():
        out = forward.render_face(fm, tf.constant(preview_face_model.default_coefficients(fm, 0, seed=0)), 600)
        mask = out["mask"]
        with tf.Session() as sess:
            covered, landmarks = sess.run([mask, out["landmarks"]])
    covered, landmarks = covered[0, ..., 0] > 0.5, landmarks[0]
    holes = scipy.ndimage.binary_fill_holes(covered) & ~covered
    top, bottom = int(landmarks[17:27, 1].min()), int(landmarks[57, 1]) + 10
    left, right = int(landmarks[36, 0]) - 20, int(landmarks[45, 0]) + 20
    assert covered[top:bottom, left:right].all()
    assert not holes[top:bottom, left:right].any()


def test_preview_writes_the_image_and_the_projected_landmarks(preview):
    from PIL import Image
    out, status = preview
    assert status == 0
    assert Image.open(out).size == (300, 300)
    written = np.loadtxt(str(out.with_suffix(".txt")))
    fm = FaceModel()
    expected = oracle.landmarks(fm, oracle.project(fm, fm.mean_shape[None], np.zeros((1, 6))))[0]
    assert written.shape == (68, 2)
    assert np.allclose(written, expected, atol=1e-2)


def test_random_faces_are_rendered_beside_the_mean_face(tmp_path):
    from PIL import Image
    out = tmp_path / "faces.png"
    assert preview_face_model.main(["--out", str(out), "--random", "2"]) == 0
    image = np.asarray(Image.open(out))
    assert image.shape == (300, 900, 3)
    assert not np.array_equal(image[:, :300], image[:, 300:600])
