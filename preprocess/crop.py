"""Resampling a photo into its face crop (the crop rule itself is model/face/framing.py)."""
import cv2
import numpy as np

from model.face.framing import CROP_SIZE, invert_affine


def inside_photo(matrix, photo_shape, out_size=CROP_SIZE):
    """bool [out_size, out_size]: True where a crop pixel's centre maps inside the photo.

    Args:
      matrix: [2, 3] affine from photo pixels to crop pixels (continuous coordinates).
      photo_shape: (H, W, ...) of the photo.
    """
    inverse = invert_affine(matrix)
    centres = np.arange(out_size) + 0.5
    x = inverse[0, 0] * centres[None, :] + inverse[0, 1] * centres[:, None] + inverse[0, 2]
    y = inverse[1, 0] * centres[None, :] + inverse[1, 1] * centres[:, None] + inverse[1, 2]
    return (x >= 0) & (x < photo_shape[1]) & (y >= 0) & (y < photo_shape[0])


def warp_to_crop(image, matrix, out_size=CROP_SIZE, fill=0):
    """Resamples a photo into the crop that `matrix` defines: bilinear (edge pixels repeated
    between the outermost pixel centres and the photo's border), `fill` where a crop pixel's centre
    falls outside the photo (`inside_photo`).

    Args:
      image: RGB uint8 [H, W, 3].
      matrix: [2, 3] affine from photo pixels to crop pixels (continuous coordinates, pixel
        centres at +0.5), e.g. from `model.face.framing.crop_matrix_from_landmarks`.
      out_size: side of the square crop in pixels.
      fill: grey level of crop pixels that fall outside the photo.
    Returns:
      uint8 [out_size, out_size, 3].
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("image must be RGB uint8 [H, W, 3], got %s %s" % (image.dtype, image.shape))
    matrix = np.asarray(matrix, dtype=np.float64).reshape(2, 3)
    # Bilinear sampling aliases when the crop shrinks the photo a lot; box-average first by the
    # integer factor k (OpenCV's area resize), so that the remaining bilinear step shrinks by less
    # than 2. A reduced pixel covers k x k photo pixels, i.e. photo = k * reduced; the photo is
    # first padded (edge pixels repeated) to a multiple of k.
    inside = inside_photo(matrix, image.shape, out_size)
    scale = np.sqrt(abs(np.linalg.det(matrix[:, :2])))
    k = int(np.floor(1.0 / scale)) if scale > 0 else 1
    if k >= 2:
        height, width = image.shape[:2]
        padded = cv2.copyMakeBorder(image, 0, -height % k, 0, -width % k, cv2.BORDER_REPLICATE)
        image = cv2.resize(padded, (padded.shape[1] // k, padded.shape[0] // k), interpolation=cv2.INTER_AREA)
        matrix = matrix @ np.diag([k, k, 1.0])
    # OpenCV's pixel (c, r) has its centre at (c, r), ours at (c + 0.5, r + 0.5).
    to_indices = np.concatenate([matrix[:, :2], (matrix[:, :2] @ [0.5, 0.5] + matrix[:, 2] - 0.5)[:, None]], axis=1)
    warped = cv2.warpAffine(np.ascontiguousarray(image), to_indices, (out_size, out_size), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    warped[~inside] = fill
    return warped
