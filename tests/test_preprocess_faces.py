"""preprocess/faces.py and preprocess/photo.py on a real photo (skimage's astronaut, public domain)."""
import numpy as np
import pytest
import skimage.data
from PIL import Image

from model.face import landmarks68 as lm
from preprocess import faces, photo, schema


@pytest.fixture(scope="module")
def astronaut():
    return skimage.data.astronaut()


def _inside(points, box):
    left, top, right, bottom = box
    return np.all((points[:, 0] >= left) & (points[:, 0] <= right)
                  & (points[:, 1] >= top) & (points[:, 1] <= bottom))


def two_faces(astronaut):
    """A 900 x 900 canvas with the astronaut's face at full size and at half size."""
    canvas = np.full((900, 900, 3), 128, np.uint8)
    canvas[380:892, 380:892] = astronaut
    small = np.asarray(Image.fromarray(astronaut).resize((256, 256), Image.BILINEAR))
    canvas[0:256, 0:256] = small
    return canvas


def test_hog_detector_finds_the_astronaut_face(astronaut):
    box = faces.detect_largest_face(astronaut)
    # Her face spans roughly x 180-270, y 80-175 in the 512 x 512 photo.
    assert box is not None
    assert _inside(np.array([[225.0, 125.0]]), box)
    assert 60 < box[2] - box[0] < 140


def test_cnn_detector_finds_the_astronaut_face(astronaut):
    boxes = faces.detect_faces(astronaut, detector="cnn", upsample=0)
    assert any(_inside(np.array([[225.0, 125.0]]), b) for b in boxes)


def test_unknown_detector_is_an_error(astronaut):
    with pytest.raises(ValueError, match="detector must be one of"):
        faces.detect_largest_face(astronaut, detector="haar")


def test_photo_without_a_face_gives_none():
    assert faces.detect_largest_face(skimage.data.coffee()) is None


def test_largest_of_two_faces_is_kept(astronaut):
    box = faces.detect_largest_face(two_faces(astronaut))
    assert box is not None and box[0] > 380 and box[1] > 380


def test_landmarks_have_the_ibug_layout(astronaut):
    box = faces.detect_largest_face(astronaut)
    points = faces.predict_landmarks(astronaut, box)
    assert points.shape == (68, 2) and points.dtype == np.float32
    right_eye, left_eye = points[lm.RIGHT_EYE].mean(0), points[lm.LEFT_EYE].mean(0)
    mouth, nose_tip, chin = points[lm.OUTER_LIPS].mean(0), points[30], points[8]
    assert right_eye[0] < nose_tip[0] < left_eye[0]     # subject's right eye is on the image left
    assert max(right_eye[1], left_eye[1]) < nose_tip[1] < mouth[1] < chin[1]


def test_detection_downscales_large_photos_and_reports_full_size_boxes(astronaut):
    big = np.asarray(Image.fromarray(astronaut).resize((2048, 2048), Image.BILINEAR))
    box = faces.detect_largest_face(big)
    small_box = faces.detect_largest_face(astronaut)
    # The same face, in 4x the pixels: within a few pixels of 4x the box found at 512.
    np.testing.assert_allclose(box, 4 * np.array(small_box), atol=40)


def test_crop_face_puts_the_landmarks_where_the_crop_rule_says(astronaut):
    result = photo.crop_face(astronaut)
    assert result.image.shape == schema.IMAGE_SHAPE and result.image.dtype == np.uint8
    lo, hi = result.landmarks.min(0), result.landmarks.max(0)
    # The rule makes the crop 1.6 x the landmark extent, centred (shifted up 10% of the height).
    np.testing.assert_allclose(max(hi - lo), 300 / 1.6, rtol=1e-4)
    np.testing.assert_allclose(0.5 * (lo[0] + hi[0]), 150, atol=1e-3)


def test_crop_face_of_a_faceless_photo_is_none():
    assert photo.crop_face(skimage.data.coffee()) is None


def test_weak_spurious_detections_are_dropped(astronaut):
    # At upsample 1 dlib's HOG also fires, weakly, on her suit; only the face is kept.
    boxes = faces.detect_faces(astronaut, upsample=1)
    assert len(boxes) == 1 and _inside(np.array([[225.0, 125.0]]), boxes[0])
