"""Sliding jaw-contour landmarks (model/face/contour.py, FaceModel.landmarks): fixed at a frontal
pose, on the silhouette of the far side of a turned face, mirror-symmetric, the TensorFlow op and
its NumPy twin equal, gradients through the chosen vertices only."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from model.face import FaceModel, contour, landmarks68
from tests import face_model_oracle as oracle

tf.disable_eager_execution()


@pytest.fixture(scope="module")
def fm():
    return FaceModel()


def yawed(fm, degrees):
    """The mean shape turned by `degrees` about the vertical axis (positive: the subject's left
    side, x > 0, away from the viewer), and its orthographic image points (u = x, v = -y)."""
    a = np.radians(degrees)
    rotation = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    vertices = fm.mean_shape.astype(np.float64) @ rotation.T
    return vertices, np.stack([vertices[:, 0], -vertices[:, 1]], 1)


def test_candidate_lines_start_at_the_fixed_vertex_and_run_medially_on_the_skin(fm):
    candidates = fm.contour_candidates
    assert candidates.shape[0] == len(landmarks68.JAW)
    np.testing.assert_array_equal(candidates[:, 0], fm.landmarks68[landmarks68.JAW])
    assert np.all(candidates[contour.CHIN] == fm.landmarks68[contour.CHIN])
    x = fm.mean_shape[:, 0]
    for k in landmarks68.JAW:
        if k == contour.CHIN:
            continue
        row = candidates[k]
        assert len(set(row)) >= 4, k
        assert np.all(np.abs(x[row]) <= abs(x[row[0]]) + 1e-6) and np.all(np.sign(x[row]) == np.sign(x[row[0]]))
        assert np.all(fm.regions["skin"][row[1:]] | (row[1:] == row[0]))


def test_a_frontal_face_keeps_its_fixed_jaw_vertices(fm):
    _, points = yawed(fm, 0.0)
    np.testing.assert_array_equal(fm.landmarks_numpy(points), points[fm.landmarks68])


@pytest.mark.parametrize("degrees", [30.0, 50.0])
def test_a_turned_face_moves_the_far_side_onto_its_silhouette_and_keeps_the_near_side(fm, degrees):
    vertices, points = yawed(fm, degrees)
    sliding = fm.landmarks_numpy(points)
    fixed = points[fm.landmarks68]
    moved = np.linalg.norm(sliding - fixed, axis=1)
    far, near = landmarks68.JAW[contour.CHIN + 1:], landmarks68.JAW[:contour.CHIN]
    assert np.all(moved[near] == 0) and np.all(moved[len(landmarks68.JAW):] == 0)
    assert np.mean(moved[far]) > 3.0                         # mm: the fixed vertices are hidden
    # On the outline: no front-facing skin vertex near the point's height lies further out.
    front = (oracle.normals(fm, vertices[None])[0][:, 2] > 0) & fm.regions["skin"]
    for k in far[2:]:
        band = front & (np.abs(points[:, 1] - sliding[k, 1]) < 2.0)
        assert points[band, 0].max() - sliding[k, 0] < 2.5, k
        # ... while the fixed vertex is well inside it.
        assert points[band, 0].max() - fixed[k, 0] > moved[k] - 2.5


def test_turning_the_other_way_mirrors_the_points(fm):
    _, left = yawed(fm, 40.0)
    _, right = yawed(fm, -40.0)
    a = fm.landmarks_numpy(left)
    b = fm.landmarks_numpy(right)[landmarks68.FLIP_PERMUTATION]
    b[:, 0] = -b[:, 0]
    np.testing.assert_allclose(a, b, atol=1e-3)


def test_the_tensorflow_op_equals_its_numpy_twin_and_its_gradient_reaches_only_the_chosen_vertices(fm):
    rng = np.random.default_rng(0)
    batch = []
    for degrees in (-55.0, -20.0, 0.0, 35.0):
        _, points = yawed(fm, degrees)
        points = points + rng.normal(0, 0.05, points.shape)
        batch.append(np.concatenate([points, np.zeros((len(points), 1))], 1))
    batch = np.stack(batch).astype(np.float32)
    with tf.Graph().as_default(), tf.Session() as session:
        points_px = tf.constant(batch)
        landmarks = fm.landmarks(points_px)
        fixed = fm.landmarks(points_px, sliding=False)
        gradient = tf.gradients(tf.reduce_sum(landmarks[:, :17, 0]), points_px)[0]
        got, got_fixed, grad = session.run([landmarks, fixed, gradient])
    np.testing.assert_allclose(got, fm.landmarks_numpy(batch[..., :2]), atol=1e-5)
    np.testing.assert_array_equal(got_fixed, batch[:, fm.landmarks68, :2])
    for b in range(len(batch)):
        chosen = [int(np.flatnonzero(np.all(np.abs(batch[b, :, :2] - got[b, k]) < 1e-6, axis=1))[0])
                  for k in range(17)]
        touched = np.flatnonzero(np.abs(grad[b, :, 0]) > 0)
        assert set(touched) == set(chosen)
        assert np.all(grad[b, :, 1:] == 0)
