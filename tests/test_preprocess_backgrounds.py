"""preprocess/backgrounds.py: random backgrounds, deterministic per generator state."""
import numpy as np

from preprocess import backgrounds


def test_backgrounds_are_rgb_uint8_of_the_requested_size():
    for seed in range(6):
        image = backgrounds.random_background(np.random.default_rng(seed), 300)
        assert image.shape == (300, 300, 3) and image.dtype == np.uint8


def test_backgrounds_are_deterministic_for_a_seed():
    a = backgrounds.random_background(np.random.default_rng(3), 64)
    b = backgrounds.random_background(np.random.default_rng(3), 64)
    np.testing.assert_array_equal(a, b)


def test_packaged_photos_are_found_in_scikit_image():
    photos = backgrounds.packaged_photos()
    assert len(photos) >= len(backgrounds.PHOTO_FILES) // 2
    assert all(p.ndim == 3 and p.shape[2] == 3 and p.dtype == np.uint8 for p in photos)


def test_photo_patch_comes_from_the_photo():
    photo = np.zeros((100, 100, 3), np.uint8)
    photo[:, :, 1] = 200
    patch = backgrounds.photo_background(np.random.default_rng(0), 50, (photo,))
    assert np.all(patch[..., 0] == 0) and np.all(patch[..., 2] == 0)
    assert 140 <= patch[0, 0, 1] <= 255


def test_procedural_backgrounds_vary():
    images = [backgrounds.procedural_background(np.random.default_rng(s), 64) for s in range(4)]
    assert all(im.std() > 1 for im in images)
    assert len({im.tobytes() for im in images}) == 4
