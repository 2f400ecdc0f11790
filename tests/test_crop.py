"""preprocess/crop.py: `warp_to_crop` (the crop rule is tested in test_face_framing.py)."""
import numpy as np
import pytest

from model.face.framing import apply_affine, crop_matrix
from preprocess import crop


def _brightness_centroid(image):
    weight = image[..., 0].astype(np.float64)
    rows, cols = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    return np.array([(weight * (cols + 0.5)).sum(), (weight * (rows + 0.5)).sum()]) / weight.sum()


def test_warp_to_crop_moves_a_pixel_where_the_matrix_says():
    image = np.zeros((400, 500, 3), np.uint8)
    image[210, 330] = 255                      # centre (330.5, 210.5)
    matrix = crop_matrix(cx=300.0, cy=200.0, side=300.0)  # scale 1, shift (-150, -50)
    warped = crop.warp_to_crop(image, matrix)
    assert warped.shape == (300, 300, 3)
    np.testing.assert_array_equal(np.argwhere(warped[..., 0] == 255), [[160, 180]])


@pytest.mark.parametrize("side", [100.0, 1500.0])  # 3x magnification; 5x reduction
def test_warp_to_crop_keeps_a_blob_centre_at_its_mapped_position(side):
    image = np.zeros((2000, 2000, 3), np.uint8)
    image[900:950, 1000:1030] = 200            # centre (1015, 925)
    matrix = crop_matrix(cx=1010.0, cy=930.0, side=side)
    expected = apply_affine(matrix, [1015.0, 925.0])
    np.testing.assert_allclose(_brightness_centroid(crop.warp_to_crop(image, matrix)), expected,
                               atol=0.05 * 300 / side + 0.05)


def test_warp_to_crop_pads_outside_the_photo():
    image = np.full((100, 100, 3), 200, np.uint8)
    matrix = crop_matrix(cx=0.0, cy=50.0, side=100.0)  # left half of the crop is off-photo
    warped = crop.warp_to_crop(image, matrix, fill=0)
    assert np.all(warped[:, :140] == 0) and np.all(warped[:, 160:] == 200)


def test_warp_to_crop_rejects_non_rgb_input():
    with pytest.raises(ValueError, match="RGB uint8"):
        crop.warp_to_crop(np.zeros((10, 10), np.uint8), crop_matrix(5, 5, 10))
