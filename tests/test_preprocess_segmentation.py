"""preprocess/segmentation.py: labels from landmarks, refined by the skin-colour model."""
import numpy as np
import pytest
import skimage.data

from model.face import landmarks68 as lm
from preprocess import photo, schema, segmentation


@pytest.fixture(scope="module")
def astronaut_crop():
    return photo.crop_face(skimage.data.astronaut())


def _label_at(labels, point):
    x, y = point
    return labels[int(y), int(x)]


@pytest.fixture(scope="module")
def flat_face(astronaut_crop):
    """A uniformly skin-coloured crop with the astronaut's landmarks: labels come from geometry."""
    image = np.empty((300, 300, 3), np.uint8)
    image[:] = (210, 160, 130)
    return image, astronaut_crop.landmarks


def test_parts_get_their_labels(flat_face):
    image, points = flat_face
    labels = segmentation.segment_face(image, points)
    assert _label_at(labels, points[lm.RIGHT_EYE].mean(0)) == schema.EYES
    assert _label_at(labels, points[lm.LEFT_EYE].mean(0)) == schema.EYES
    assert _label_at(labels, points[19]) == schema.BROWS
    assert _label_at(labels, 0.5 * (points[30] + points[33])) == schema.NOSE
    assert _label_at(labels, 0.5 * (points[50] + points[61])) == schema.LIPS
    assert _label_at(labels, 0.5 * (points[4] + points[48])) == schema.SKIN


def test_outside_the_face_is_background(flat_face):
    image, points = flat_face
    labels = segmentation.segment_face(image, points)
    assert labels[2, 2] == schema.BACKGROUND and labels[297, 150] == schema.BACKGROUND


def test_forehead_above_the_brows_is_face(flat_face):
    image, points = flat_face
    labels = segmentation.segment_face(image, points)
    above_brows = points[lm.RIGHT_BROW].mean(0) - np.array([0.0, 15.0])
    assert _label_at(labels, above_brows) == schema.SKIN


def test_non_skin_colour_inside_the_face_is_other(flat_face):
    image, points = flat_face
    image = image.copy()
    patch_centre = points[lm.LEFT_BROW].mean(0) - np.array([0.0, 25.0])  # forehead
    x, y = patch_centre.astype(int)
    image[y - 5:y + 5, x - 5:x + 5] = (20, 40, 200)
    labels = segmentation.segment_face(image, points)
    assert labels[y, x] == schema.OTHER
    assert _label_at(labels, 0.5 * (points[4] + points[48])) == schema.SKIN


def test_open_mouth_is_mouth_interior(flat_face):
    image, points = flat_face
    points = points.copy()
    points[[65, 66, 67], 1] += 8    # open the lower inner lip
    points[[55, 56, 57, 58, 59], 1] += 8
    labels = segmentation.segment_face(image, points)
    assert _label_at(labels, 0.5 * (points[62] + points[66])) == schema.MOUTH_INTERIOR


def test_pixels_outside_the_photo_are_background(flat_face):
    image, points = flat_face
    valid = np.ones((300, 300), bool)
    valid[:, :150] = False
    labels = segmentation.segment_face(image, points, valid=valid)
    assert np.all(labels[:, :150] == schema.BACKGROUND)
    assert _label_at(labels, points[lm.LEFT_EYE].mean(0)) == schema.EYES


def test_astronaut_face_is_mostly_skin(astronaut_crop):
    labels = astronaut_crop.segmentation
    face = labels != schema.BACKGROUND
    assert 0.25 < face.mean() < 0.7
    assert (labels == schema.SKIN).sum() > 0.6 * face.sum()
    assert set(np.unique(labels)) <= set(schema.SEGMENTATION_LABELS)


def test_wrong_landmark_count_is_an_error(flat_face):
    image, points = flat_face
    with pytest.raises(ValueError, match=r"\[68, 2\]"):
        segmentation.segment_face(image, points[:60])
