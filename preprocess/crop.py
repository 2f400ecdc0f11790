"""The face crop: where a 300 x 300 training/inference crop sits in a photo.

One rule, used by the photo preprocessor, by inference and by the face model (which
frames its mean face at pose zero exactly as this rule frames a detected face):

    x0, y0, x1, y1 = bounding box of the 68 landmarks (pixels)
    w, h           = x1 - x0, y1 - y0
    side           = CROP_SIDE_FACTOR * max(w, h)
    centre         = ((x0 + x1) / 2, (y0 + y1) / 2 - CROP_CENTRE_SHIFT * h)

The crop is the axis-aligned square of that side around that centre, resampled to
CROP_SIZE x CROP_SIZE. The shift moves the square up so that it holds the forehead,
which the 68 points (brows to chin) do not reach.

Coordinates are continuous pixel coordinates: x right, y down, pixel (row r, col c)
covers [c, c+1) x [r, r+1), so its centre is (c + 0.5, r + 0.5).
"""
import numpy as np

CROP_SIZE = 300
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


def warp_to_crop(image, matrix, out_size=CROP_SIZE, fill=0):
    """Resamples a photo into the crop that `matrix` defines (bilinear, padding outside the photo).

    Args:
      image: RGB uint8 [H, W, 3].
      matrix: [2, 3] affine from photo pixels to crop pixels (continuous coordinates, pixel
        centres at +0.5), e.g. from `crop_matrix_from_landmarks`.
      out_size: side of the square crop in pixels.
      fill: grey level of crop pixels that fall outside the photo.
    Returns:
      uint8 [out_size, out_size, 3].
    """
    from PIL import Image  # Pillow is needed only here; the crop rule itself is NumPy only.

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("image must be RGB uint8 [H, W, 3], got %s %s" % (image.dtype, image.shape))
    matrix = np.asarray(matrix, dtype=np.float64).reshape(2, 3)
    photo = Image.fromarray(np.ascontiguousarray(image))
    # Bilinear sampling aliases when the crop shrinks the photo a lot; box-average first by the
    # integer factor k, so that the remaining bilinear step shrinks by less than 2. A reduced pixel
    # covers k x k photo pixels, i.e. photo = k * reduced.
    scale = np.sqrt(abs(np.linalg.det(matrix[:, :2])))
    k = int(np.floor(1.0 / scale)) if scale > 0 else 1
    if k >= 2:
        photo = photo.reduce(k)
        matrix = matrix @ np.diag([k, k, 1.0])
    inverse = invert_affine(matrix)
    warped = photo.transform((out_size, out_size), Image.AFFINE, tuple(inverse.ravel()),
                             resample=Image.BILINEAR, fillcolor=(fill, fill, fill))
    return np.asarray(warped, dtype=np.uint8)
