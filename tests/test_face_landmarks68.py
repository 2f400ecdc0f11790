"""model/face/landmarks68.py: the left-right permutation of the 68 iBUG points."""
import numpy as np

from model.face import landmarks68 as lm


def test_flip_permutation_is_an_involution():
    np.testing.assert_array_equal(lm.FLIP_PERMUTATION[lm.FLIP_PERMUTATION], np.arange(68))


def test_flip_permutation_swaps_left_and_right_eyes():
    assert set(lm.FLIP_PERMUTATION[lm.RIGHT_EYE]) == set(lm.LEFT_EYE)
    assert set(lm.FLIP_PERMUTATION[lm.LEFT_EYE]) == set(lm.RIGHT_EYE)
    assert lm.FLIP_PERMUTATION[36] == 45 and lm.FLIP_PERMUTATION[39] == 42  # outer, inner corners


def test_flip_permutation_fixes_the_midline():
    for index in (8, 27, 28, 29, 30, 33, 51, 57, 62, 66):
        assert lm.FLIP_PERMUTATION[index] == index


def test_flipping_a_symmetric_face_reproduces_it():
    # Build a face symmetric about x = 50: each twin pair mirrored, midline points on x = 50.
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, (68, 2))
    for index, twin in enumerate(lm.FLIP_PERMUTATION):
        if twin == index:
            points[index, 0] = 50
        elif twin > index:
            points[twin] = (100 - points[index, 0], points[index, 1])
    np.testing.assert_allclose(lm.flip_landmarks(points, 100), points)


def test_flipping_twice_is_the_identity():
    points = np.random.default_rng(1).uniform(0, 300, (68, 2))
    np.testing.assert_allclose(lm.flip_landmarks(lm.flip_landmarks(points, 300), 300), points)
