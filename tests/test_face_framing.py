"""model/face/framing.py: the crop rule's transform."""
import numpy as np

from model.face import framing


def test_crop_transform_round_trips_points():
    rng = np.random.default_rng(0)
    landmarks = rng.uniform(100, 400, (68, 2))
    matrix = framing.crop_matrix_from_landmarks(landmarks)
    points = rng.uniform(-50, 600, (20, 2))
    back = framing.apply_affine(framing.invert_affine(matrix), framing.apply_affine(matrix, points))
    np.testing.assert_allclose(back, points, atol=1e-9)


def test_crop_matrix_maps_the_box_corners_to_the_crop_corners():
    matrix = framing.crop_matrix(cx=200.0, cy=120.0, side=150.0)
    corners = framing.apply_affine(matrix, [[125.0, 45.0], [275.0, 195.0]])
    np.testing.assert_allclose(corners, [[0, 0], [300, 300]], atol=1e-9)
