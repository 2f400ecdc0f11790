"""Resampling a photo into its face crop (the crop rule itself is model/face/framing.py)."""
import numpy as np

from model.face.framing import CROP_SIZE, invert_affine


def warp_to_crop(image, matrix, out_size=CROP_SIZE, fill=0):
    """Resamples a photo into the crop that `matrix` defines (bilinear, padding outside the photo).

    Args:
      image: RGB uint8 [H, W, 3].
      matrix: [2, 3] affine from photo pixels to crop pixels (continuous coordinates, pixel
        centres at +0.5), e.g. from `model.face.framing.crop_matrix_from_landmarks`.
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
