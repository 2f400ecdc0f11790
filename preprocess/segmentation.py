"""Face segmentation of a photo crop from its 68 landmarks, refined by a skin-colour model.

Labels are those of the tfrecord schema (`preprocess.schema.SEGMENTATION_LABELS`).

How the labels are made:
1. Face region: the jaw line (points 0-16) closed over the forehead by the brow points raised by
   FOREHEAD_RAISE x (brow-to-chin distance), since the 68 points stop at the brows.
2. Parts drawn on top, as polygons of the landmarks: nose (bridge 27-30 widened, base 31-35),
   brows (17-21, 22-26 thickened into bands), eyes (36-41, 42-47), lips (outer 48-59 minus inner
   60-67), mouth interior (inner 60-67, when the mouth is open).
3. Skin-colour model: a Gaussian in YCbCr fitted, with a robust trim, to the pixels of the cheeks
   and nose bridge; pixels of the face region still labelled skin whose Mahalanobis distance
   exceeds SKIN_MAX_DISTANCE become "other" (hair over the forehead, glasses, hands, shadows
   that are not skin-like). Parts are not re-labelled: the landmarks are better evidence there.
Pixels outside the face region, and outside the photo (`valid` mask), are background.
"""
import numpy as np
from skimage import draw

from model.face import landmarks68 as lm
from preprocess.schema import (BACKGROUND, BROWS, EYES, LIPS, MOUTH_INTERIOR, NOSE, OTHER,
                               SKIN)

FOREHEAD_RAISE = 0.45
SKIN_MAX_DISTANCE = 4.0
# Fewer skin samples than this make the colour model unreliable; then it is not applied.
MIN_SKIN_SAMPLES = 50


def _fill(labels, points, value):
    """Sets the pixels whose centres lie inside the polygon `points` [K, 2] (x, y) to `value`."""
    points = np.asarray(points, dtype=np.float64)
    # skimage indexes pixel centres at integers; ours are at +0.5.
    rows, cols = draw.polygon(points[:, 1] - 0.5, points[:, 0] - 0.5, shape=labels.shape)
    labels[rows, cols] = value


def _polygon_mask(shape, points):
    mask = np.zeros(shape, dtype=bool)
    _fill(mask, points, True)
    return mask


def face_outline(landmarks):
    """Closed outline [27, 2] of the face region: jaw 0..16, then raised brows 26..17."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    brows = landmarks[np.concatenate([lm.RIGHT_BROW, lm.LEFT_BROW])]
    chin = landmarks[8]
    up = brows.mean(axis=0) - chin
    forehead = brows + FOREHEAD_RAISE * up
    return np.concatenate([landmarks[lm.JAW], forehead[::-1]], axis=0)


def _brow_band(points, thickness):
    """Polygon of a band of `thickness` pixels around the polyline `points` (vertical offset)."""
    offset = np.array([0.0, 0.5 * thickness])
    return np.concatenate([points - offset, (points + offset)[::-1]], axis=0)


def _nose_polygon(landmarks):
    base = landmarks[lm.NOSE_BASE]
    half_width = 0.2 * (base[-1] - base[0])
    bridge_top = landmarks[lm.NOSE_BRIDGE[0]]
    return np.concatenate([[bridge_top - half_width], base, [bridge_top + half_width]], axis=0)


def _skin_sample_mask(shape, landmarks):
    """Cheeks and the nose bridge: regions that are skin on almost every face."""
    mask = _polygon_mask(shape, landmarks[[1, 2, 3, 31, 29, 39, 40, 41]])
    mask |= _polygon_mask(shape, landmarks[[15, 14, 13, 35, 29, 42, 47, 46]])
    return mask


def rgb_to_ycbcr(image):
    """RGB uint8 [..., 3] -> float64 [..., 3] (Y, Cb, Cr), ITU-R BT.601 full range."""
    rgb = np.asarray(image, dtype=np.float64)
    matrix = np.array([[0.299, 0.587, 0.114],
                       [-0.168736, -0.331264, 0.5],
                       [0.5, -0.418688, -0.081312]])
    return rgb @ matrix.T + np.array([0.0, 128.0, 128.0])


def skin_distance(image, sample_mask):
    """Mahalanobis distance of every pixel from the skin colour of `sample_mask`.

    Returns [H, W] float64, or None when the sample is too small to fit a model.
    """
    ycc = rgb_to_ycbcr(image)
    samples = ycc[sample_mask]
    if len(samples) < MIN_SKIN_SAMPLES:
        return None
    # Trim: specular highlights and stray hair in the cheeks would widen the model.
    centre = np.median(samples, axis=0)
    spread = np.median(np.abs(samples - centre), axis=0) * 1.4826 + 1.0
    inliers = samples[np.all(np.abs(samples - centre) < 3.0 * spread, axis=1)]
    if len(inliers) < MIN_SKIN_SAMPLES:
        return None
    mean = inliers.mean(axis=0)
    # The floor keeps a flat-coloured (synthetic, or overexposed) sample from making every
    # other shade of the same skin an outlier.
    covariance = np.cov(inliers, rowvar=False) + np.diag([16.0, 4.0, 4.0])
    diff = ycc - mean
    return np.sqrt(np.einsum("...i,ij,...j->...", diff, np.linalg.inv(covariance), diff))


def segment_face(image, landmarks, valid=None):
    """Segmentation labels of a face crop.

    Args:
      image: RGB uint8 [H, W, 3] (a 300 x 300 crop in the pipeline; any size works).
      landmarks: [68, 2] (x, y) continuous pixels of `image`, dlib order.
      valid: optional bool [H, W], False where the crop lies outside the photo (padding).
    Returns:
      uint8 [H, W] labels (0 background, 1 skin, 2 nose, 3 eyes, 4 brows, 5 lips, 6 mouth
      interior, 7 other).
    """
    image = np.asarray(image)
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (lm.NUM_LANDMARKS, 2):
        raise ValueError("landmarks must be [68, 2], got %s" % (landmarks.shape,))
    shape = image.shape[:2]
    labels = np.full(shape, BACKGROUND, dtype=np.uint8)
    _fill(labels, face_outline(landmarks), SKIN)

    distance = skin_distance(image, _skin_sample_mask(shape, landmarks))
    if distance is not None:
        labels[(labels == SKIN) & (distance > SKIN_MAX_DISTANCE)] = OTHER

    _fill(labels, _nose_polygon(landmarks), NOSE)
    eye_width = 0.5 * (np.linalg.norm(landmarks[39] - landmarks[36])
                       + np.linalg.norm(landmarks[45] - landmarks[42]))
    for brow in (lm.RIGHT_BROW, lm.LEFT_BROW):
        _fill(labels, _brow_band(landmarks[brow], 0.35 * eye_width), BROWS)
    for eye in (lm.RIGHT_EYE, lm.LEFT_EYE):
        _fill(labels, landmarks[eye], EYES)
    _fill(labels, landmarks[lm.OUTER_LIPS], LIPS)
    _fill(labels, landmarks[lm.INNER_LIPS], MOUTH_INTERIOR)
    if valid is not None:
        labels[~np.asarray(valid, dtype=bool)] = BACKGROUND
    return labels
