"""The mean-face preview: the quality bar (dlib finds the rendered mean face and agrees with the
model's landmarks) and the files the preview script writes."""
import numpy as np
import pytest

from model.face_model import FaceModel
from resources import preview_face_model


@pytest.fixture(scope="module")
def preview(tmp_path_factory):
    out = tmp_path_factory.mktemp("preview") / "mean.png"
    status = preview_face_model.main(["--out", str(out)])
    return out, status


def test_dlib_landmarks_on_the_mean_face_render_are_within_8_percent_of_the_inter_ocular_distance():
    fm = FaceModel()
    images, landmarks = preview_face_model.render_faces(
        fm, preview_face_model.default_coefficients(fm, 0, seed=0))
    error, _ = preview_face_model.dlib_error(images[0], landmarks[0])
    assert error is not None, "dlib found no face on the mean-face render"
    assert error < 0.08


def test_mean_face_render_has_no_holes_inside_the_face():
    # Eye sockets and the closed mouth cavity leave no see-through gaps between the brows and
    # the lower lip (the jagged outer border may enclose a stray background pixel; it is outside).
    import scipy.ndimage
    import tensorflow.compat.v1 as tf
    import renderer
    tf.disable_eager_execution()
    fm = FaceModel()
    with tf.Graph().as_default():
        out = fm.reconstruct(tf.constant(preview_face_model.default_coefficients(fm, 0, seed=0)), 600)
        mask = renderer.render(out["clip"], fm.triangles, out["colours"], (600, 600))["mask"]
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
    expected = fm.landmarks_np(fm.project_np(fm.mean_shape[None], np.zeros((1, 6))))[0]
    assert written.shape == (68, 2)
    assert np.allclose(written, expected, atol=1e-2)


def test_random_faces_are_rendered_beside_the_mean_face(tmp_path):
    from PIL import Image
    out = tmp_path / "faces.png"
    assert preview_face_model.main(["--out", str(out), "--random", "2"]) == 0
    image = np.asarray(Image.open(out))
    assert image.shape == (300, 900, 3)
    assert not np.array_equal(image[:, :300], image[:, 300:600])
