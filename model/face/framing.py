"""The crop framing rule: where a 300 x 300 face crop sits in a photo, and how the face model
frames its mean face the same way.

One rule, used by the photo preprocessor, by inference, by synthesis and by the face model
(which frames its mean face at pose zero exactly as this rule frames a detected face):

    x0, y0, x1, y1 = bounding box of the 68 landmarks (pixels)
    w, h           = x1 - x0, y1 - y0
    side           = CROP_SIDE_FACTOR * max(w, h)
    centre         = ((x0 + x1) / 2, (y0 + y1) / 2 - CROP_CENTRE_SHIFT * h)

The crop is the axis-aligned square of that side around that centre, resampled to
CROP_SIZE x CROP_SIZE. The shift moves the square up so that it holds the forehead,
which the 68 points (brows to chin) do not reach.

Coordinates are continuous pixel coordinates: x right, y down, pixel (row r, col c)
covers [c, c+1) x [r, r+1), so its centre is (c + 0.5, r + 0.5). Resampling a photo into the
crop is image work and lives in preprocess/crop.py; this module is NumPy only.
"""
import numpy as np

CROP_SIZE = 300
# The encoder sees the crop resized to this side (shared/DESIGN.md).
ENCODER_SIZE = 224
CROP_SIDE_FACTOR = 1.6
CROP_CENTRE_SHIFT = 0.1


def crop_box_from_landmarks(landmarks):
    """Square crop box of a face.

    Args:
      landmarks: [68, 2] float, (x, y) pixels in any image.
    Returns:
      (cx, cy, side): centre and side length of the square, in the same pixels.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.ndim != 2 or landmarks.shape[1] != 2 or landmarks.shape[0] < 2:
        raise ValueError("landmarks must be [N, 2], got shape %s" % (landmarks.shape,))
    if not np.all(np.isfinite(landmarks)):
        raise ValueError("landmarks contain non-finite values")
    x0, y0 = landmarks.min(axis=0)
    x1, y1 = landmarks.max(axis=0)
    w, h = x1 - x0, y1 - y0
    side = CROP_SIDE_FACTOR * max(w, h)
    if side <= 0:
        raise ValueError("landmarks are degenerate (zero extent)")
    return 0.5 * (x0 + x1), 0.5 * (y0 + y1) - CROP_CENTRE_SHIFT * h, side


def crop_matrix(cx, cy, side, out_size=CROP_SIZE):
    """Affine [2, 3] (row-major) from photo pixels to crop pixels.

    crop = s * (photo - (c - side / 2)), s = out_size / side; no rotation.
    """
    s = out_size / float(side)
    return np.array([[s, 0.0, -s * (cx - 0.5 * side)],
                     [0.0, s, -s * (cy - 0.5 * side)]], dtype=np.float64)


def crop_matrix_from_landmarks(landmarks, out_size=CROP_SIZE):
    """Affine [2, 3] from photo pixels to the crop that `crop_box_from_landmarks` defines."""
    return crop_matrix(*crop_box_from_landmarks(landmarks), out_size=out_size)


def apply_affine(matrix, points):
    """Apply an affine [2, 3] to points [..., 2]; returns [..., 2] float64."""
    matrix = np.asarray(matrix, dtype=np.float64).reshape(2, 3)
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert_affine(matrix):
    """Inverse of an affine [2, 3]; returns [2, 3] float64."""
    matrix = np.asarray(matrix, dtype=np.float64).reshape(2, 3)
    linear_inv = np.linalg.inv(matrix[:, :2])
    return np.concatenate([linear_inv, -linear_inv @ matrix[:, 2:3]], axis=1)


def crop_frame(landmark_points):
    """The pose-0 framing of a face whose 68 landmarks are at landmark_points [68, 3] (mm).

    Returns (frame_scale, frame_centre): pixels per mm in a 300 crop, and the model point [3]
    (z = 0) at the crop centre, so that the crop rule, applied to the frontally projected
    landmarks, gives the whole 300 x 300 crop.
    """
    points = np.asarray(landmark_points, dtype=np.float64)
    # The crop rule works in a y-down frame (1 unit = 1 mm here).
    cx, cy, side = crop_box_from_landmarks(np.stack([points[:, 0], -points[:, 1]], axis=1))
    return float(CROP_SIZE / side), np.array([cx, -cy, 0.0], dtype=np.float32)
