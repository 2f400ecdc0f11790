"""The 68-point iBUG landmark layout (dlib order) and its left-right mirror permutation.

Index groups (0-based). "Right"/"left" are the subject's own sides, as in the iBUG annotation
guide; in a frontal photo the subject's right eye (36-41) is on the image's left.

The face model owns this layout: its `landmarks68` are vertex ids in this order, detection
(preprocess/faces.py, dlib) returns points in it, and the landmark loss and the metrics weight
and normalise by its groups.
"""
import numpy as np

NUM_LANDMARKS = 68

JAW = np.arange(0, 17)
RIGHT_BROW = np.arange(17, 22)
LEFT_BROW = np.arange(22, 27)
NOSE_BRIDGE = np.arange(27, 31)
NOSE_BASE = np.arange(31, 36)
RIGHT_EYE = np.arange(36, 42)
LEFT_EYE = np.arange(42, 48)
OUTER_LIPS = np.arange(48, 60)
INNER_LIPS = np.arange(60, 68)
# The five groups a per-group landmark error is reported for.
GROUPS = dict(jaw=JAW, brows=np.concatenate([RIGHT_BROW, LEFT_BROW]),
              nose=np.concatenate([NOSE_BRIDGE, NOSE_BASE]),
              eyes=np.concatenate([RIGHT_EYE, LEFT_EYE]),
              mouth=np.concatenate([OUTER_LIPS, INNER_LIPS]))
# Outer eye corners (subject's right, left): their distance normalises landmark errors (300-W).
OUTER_EYE_CORNERS = (36, 45)
# Inner eye corners (subject's right, left).
INNER_EYE_CORNERS = (39, 42)


def _flip_permutation():
    """Index of each point's mirror twin: after a horizontal flip, point i is old point perm[i]
    (jaw 0 <-> 16, outer eye corners 36 <-> 45, ...; midline points are their own twin)."""
    perm = np.arange(NUM_LANDMARKS)
    pairs = []
    pairs += [(i, 16 - i) for i in range(8)]                      # jaw, chin (8) stays
    pairs += [(17 + i, 26 - i) for i in range(5)]                 # brows
    pairs += [(31, 35), (32, 34)]                                 # nostrils; bridge and 33 stay
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (59, 55), (58, 56)]   # outer lips; 51, 57 stay
    pairs += [(60, 64), (61, 63), (67, 65)]                       # inner lips; 62, 66 stay
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


FLIP_PERMUTATION = _flip_permutation()


def flip_landmarks(landmarks, width):
    """Landmarks of the horizontally flipped image.

    Args:
      landmarks: [..., 68, 2] (x, y) continuous pixels (pixel centres at +0.5).
      width: image width in pixels; x maps to width - x.
    Returns:
      [..., 68, 2] float64, re-ordered so that every index still names the same facial point.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    flipped = landmarks[..., FLIP_PERMUTATION, :].copy()
    flipped[..., 0] = width - flipped[..., 0]
    return flipped


def inter_ocular_distance(landmarks):
    """Distance between the outer eye corners of landmarks [..., 68, 2]: [...] float64."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    right, left = OUTER_EYE_CORNERS
    return np.linalg.norm(landmarks[..., right, :] - landmarks[..., left, :], axis=-1)
