"""One photo -> one 300 x 300 face crop with landmarks and segmentation (no TensorFlow here).

The steps of the paper's preprocessing: detect the face (the largest if several), find its 68
landmarks, crop the square that `model.face.framing` defines around them (padding outside the
photo), move the landmarks into the crop, and segment the crop.
"""
import collections

import numpy as np

from model.face import framing
from preprocess import crop, faces, images, segmentation

FaceCrop = collections.namedtuple("FaceCrop", [
    "image",          # uint8 [300, 300, 3]
    "landmarks",      # float32 [68, 2] crop pixels
    "segmentation",   # uint8 [300, 300] labels
    "matrix",         # float64 [2, 3] photo pixels -> crop pixels
    "num_faces",      # faces the detector found (the largest was kept)
])


class SkippedPhoto(Exception):
    """A photo that yields no crop. `reason` is a short category for the summary."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


def crop_face(image, detector="hog"):
    """Crops the largest face of a photo.

    Args:
      image: RGB uint8 [H, W, 3].
      detector: "hog" or "cnn" (see `preprocess.faces`).
    Returns:
      FaceCrop, or None when no face is found.
    """
    boxes = faces.detect_faces(image, detector=detector)
    if not boxes:
        return None
    box = faces.largest_box(boxes)
    landmarks = faces.predict_landmarks(image, box)
    matrix = framing.crop_matrix_from_landmarks(landmarks)
    cropped = crop.warp_to_crop(image, matrix)
    inside = crop.inside_photo(matrix, image.shape)
    crop_landmarks = framing.apply_affine(matrix, landmarks).astype(np.float32)
    labels = segmentation.segment_face(cropped, crop_landmarks, valid=inside)
    return FaceCrop(cropped, crop_landmarks, labels, matrix, len(boxes))


def crop_photo_file(path, detector="hog", max_pixels=images.DEFAULT_MAX_PIXELS):
    """Loads and crops one photo file.

    Returns:
      FaceCrop.
    Raises:
      SkippedPhoto: with reason "unreadable" (see `images.load_image`) or "no face".
    """
    try:
        image = images.load_image(path, max_pixels=max_pixels)
    except images.ImageError as error:
        raise SkippedPhoto("unreadable", str(error)) from error
    result = crop_face(image, detector=detector)
    if result is None:
        raise SkippedPhoto("no face", "%s: no face found (detector %s)" % (path, detector))
    return result
