"""bench/real_photos.py: the reference-point files evaluate.py reads and the crop geometry."""
import numpy as np

import evaluate
from bench import real_photos


def test_pts_written_are_read_back_by_evaluate(tmp_path):
    points = np.random.default_rng(1).uniform(0, 480, (68, 2))
    real_photos.write_pts(str(tmp_path / "face.pts"), points)
    np.testing.assert_allclose(evaluate.read_pts(str(tmp_path / "face.pts")), points, atol=1e-3)


def test_crop_centres_the_box_at_the_face_size_and_pads_by_edge_replication():
    image = np.zeros((300, 400, 3), np.uint8)
    image[100:140, 350:400] = 255       # white from a 40 px "face" box (350..390) to the right edge
    crop = real_photos.crop_face(image, (350, 100, 390, 140))
    side = int(round(real_photos.CROP_FACTOR * real_photos.FACE_PIXELS))
    assert crop.shape == (side, side, 3)
    white = np.argwhere(crop[..., 0] > 128)
    # The box lands in the middle at FACE_PIXELS per side; the crop's columns right of the image
    # repeat its last column (white in the box's rows), so the white reaches the crop's right edge.
    centre_rows = white[:, 0]
    assert abs(centre_rows.min() - (side - real_photos.FACE_PIXELS) / 2) <= 2
    assert abs(centre_rows.max() + 1 - (side + real_photos.FACE_PIXELS) / 2) <= 2
    assert abs(white[:, 1].min() - (side - real_photos.FACE_PIXELS) / 2) <= 2
    assert white[:, 1].max() == side - 1


def test_the_repository_photo_is_among_the_samples():
    samples = real_photos.sample_images()
    assert samples["astronaut"].shape == (512, 512, 3)
