"""Face detection and 68-point landmarks with dlib and the models of `face-recognition-models`.

Detectors: "hog" is dlib's frontal HOG + linear SVM detector (fast on CPU, frontal to ~30 degrees
of yaw); "cnn" is dlib's MMOD CNN detector (`mmod_human_face_detector.dat`; more poses, about
20x slower on CPU). Landmarks come from dlib's 68-point shape predictor
(`shape_predictor_68_face_landmarks.dat`, iBUG 300-W layout).

Models are loaded once per process and kept, so a worker pool loads them once per worker.

Coordinates: dlib reports integer pixel indices (a pixel's index is its top-left corner); this
module returns continuous coordinates with pixel centres at +0.5, the convention of the rest of
the project, by adding 0.5.
"""
import functools

import dlib
import face_recognition_models
import numpy as np

DETECTORS = ("hog", "cnn")

# Detection runs on a copy whose longer side is at most this; faces in larger photos are large
# enough to be found at this size, and the HOG pyramid on a 40 MP photo takes minutes.
MAX_DETECTION_SIDE = 1600
# dlib's detectors find faces from about 80 pixels up; doubling the image first finds 40-pixel
# faces at 4x the cost. By default only images up to this side are doubled, where 80 pixels
# would be a large part of the frame.
UPSAMPLE_MAX_SIDE = 800
# Spurious detections in textured backgrounds score far below a real face in the same photo
# (skimage's astronaut: 1.16 for her face, 0.12 for a patch of her suit), so detections below
# this fraction of the best score are dropped: they would otherwise win "largest face".
WEAK_DETECTION_FRACTION = 0.3


@functools.lru_cache(maxsize=None)
def _detector(name):
    if name == "hog":
        return dlib.get_frontal_face_detector()
    if name == "cnn":
        return dlib.cnn_face_detection_model_v1(
            face_recognition_models.cnn_face_detector_model_location())
    raise ValueError("detector must be one of %s, got %r" % (DETECTORS, name))


@functools.lru_cache(maxsize=None)
def _shape_predictor():
    return dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())


def _check_image(image):
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("image must be RGB uint8 [H, W, 3], got %s %s" % (image.dtype, image.shape))
    return np.ascontiguousarray(image)


def _downscaled(image, max_side):
    """(image, factor) with image's longer side <= max_side; factor = original / returned size."""
    height, width = image.shape[:2]
    factor = max(height, width) / float(max_side)
    if factor <= 1.0:
        return image, 1.0
    step = int(np.ceil(factor))
    # Box-average over step x step blocks: cheap, alias-free enough for detection.
    h, w = height // step * step, width // step * step
    small = image[:h, :w].reshape(h // step, step, w // step, step, 3).mean(axis=(1, 3))
    return np.ascontiguousarray(small.round().astype(np.uint8)), float(step)


def detect_faces(image, detector="hog", upsample=None):
    """All faces dlib finds.

    Args:
      image: RGB uint8 [H, W, 3].
      detector: "hog" or "cnn".
      upsample: number of times dlib doubles the image first (finds smaller faces, 4x slower
        each); None: 1 if the (downscaled) image's longer side is at most UPSAMPLE_MAX_SIDE, else 0.
    Returns:
      list of (left, top, right, bottom) float boxes in continuous pixels of `image`, without
      detections scoring below WEAK_DETECTION_FRACTION of the best one.
    """
    image = _check_image(image)
    find = _detector(detector)
    small, factor = _downscaled(image, MAX_DETECTION_SIDE)
    if upsample is None:
        upsample = 1 if max(small.shape[:2]) <= UPSAMPLE_MAX_SIDE else 0
    if detector == "cnn":
        found = find(small, upsample)
        rects, scores = [item.rect for item in found], [item.confidence for item in found]
    else:
        rects, scores, _ = find.run(small, upsample, 0.0)
    if not rects:
        return []
    best = max(scores)
    boxes = []
    for rect, score in zip(rects, scores):
        if score < WEAK_DETECTION_FRACTION * best:
            continue
        # dlib's right/bottom are inclusive pixel indices: the box ends one pixel further.
        boxes.append((rect.left() * factor, rect.top() * factor,
                      (rect.right() + 1) * factor, (rect.bottom() + 1) * factor))
    return boxes


def detect_largest_face(image, detector="hog", upsample=None):
    """The largest (by box area) face, or None.

    Returns:
      (left, top, right, bottom) floats, continuous pixels; None when no face is found.
    """
    return largest_box(detect_faces(image, detector=detector, upsample=upsample))


def largest_box(boxes):
    """The box of largest area among (left, top, right, bottom) boxes; None for no boxes."""
    if not boxes:
        return None
    return max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))


def largest_face_landmarks(image, detector="hog", upsample=None):
    """68 landmarks [68, 2] float32 (continuous pixels, dlib order) of the largest face, or None
    when no face is found (`detect_largest_face`, then `predict_landmarks`)."""
    box = detect_largest_face(image, detector=detector, upsample=upsample)
    return None if box is None else predict_landmarks(image, box)


def predict_landmarks(image, box):
    """68 landmarks of the face in `box`.

    Args:
      image: RGB uint8 [H, W, 3].
      box: (left, top, right, bottom), continuous pixels (as `detect_largest_face` returns).
    Returns:
      [68, 2] float32 (x, y) continuous pixels of `image`, dlib (iBUG) order.
    """
    image = _check_image(image)
    left, top, right, bottom = (float(v) for v in box)
    if not (right > left and bottom > top):
        raise ValueError("box must have right > left and bottom > top, got %s" % (box,))
    rect = dlib.rectangle(int(round(left)), int(round(top)),
                          int(round(right)) - 1, int(round(bottom)) - 1)
    shape = _shape_predictor()(image, rect)
    points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
    return points + np.float32(0.5)
