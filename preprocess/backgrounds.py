"""Random backgrounds for synthetic faces: procedural fields and patches of packaged photos.

Photo patches come from images that ship inside scikit-image (`skimage/data/`, no download):
scenes, textures and objects without faces (PHOTO_FILES). Files missing from an installation
are skipped; with none left, every background is procedural.

Procedural backgrounds are a colour gradient plus multi-octave value noise, sometimes blurred
stripes, so the network cannot learn a shortcut from "background = photo statistics".
"""
import functools
import os

import numpy as np
from PIL import Image
from scipy import ndimage

# Images of skimage.data without faces (astronaut, camera and the LFW subset show people).
PHOTO_FILES = ("coffee.png", "chelsea.png", "rocket.jpg", "hubble_deep_field.jpg",
               "motorcycle_left.png", "ihc.png", "brick.png", "grass.png", "gravel.png",
               "moon.png", "retina.jpg", "coins.png", "page.png", "horse.png")
PHOTO_PROBABILITY = 0.5


@functools.lru_cache(maxsize=None)
def packaged_photos():
    """RGB uint8 arrays of the PHOTO_FILES found in the installed scikit-image (cached)."""
    import skimage.data
    folder = os.path.dirname(skimage.data.__file__)
    photos = []
    for name in PHOTO_FILES:
        path = os.path.join(folder, name)
        if os.path.exists(path):
            with Image.open(path) as image:
                photos.append(np.asarray(image.convert("RGB")))
    return tuple(photos)


def procedural_background(rng, size):
    """uint8 [size, size, 3]: a random gradient, value noise and optional stripes."""
    rows, cols = np.mgrid[0:size, 0:size] / float(size)
    corners = rng.uniform(0, 255, (2, 2, 3))
    gradient = ((1 - rows)[..., None] * ((1 - cols)[..., None] * corners[0, 0]
                                         + cols[..., None] * corners[0, 1])
                + rows[..., None] * ((1 - cols)[..., None] * corners[1, 0]
                                     + cols[..., None] * corners[1, 1]))
    noise = np.zeros((size, size, 3))
    for octave in range(rng.integers(1, 5)):
        cells = 2 ** (octave + 1)
        coarse = rng.uniform(-1, 1, (cells, cells, 3)).astype(np.float32)
        for channel in range(3):
            smooth = Image.fromarray(coarse[..., channel], "F").resize((size, size), Image.BICUBIC)
            noise[..., channel] += np.asarray(smooth) / (octave + 1)
    image = gradient + rng.uniform(10, 60) * noise
    if rng.uniform() < 0.3:
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(0.05, 0.3)
        phase = (np.cos(angle) * cols + np.sin(angle) * rows) / period
        image += rng.uniform(10, 50) * np.sign(np.sin(2 * np.pi * phase))[..., None]
        image = ndimage.gaussian_filter(image, sigma=(1.5, 1.5, 0))
    return np.clip(image, 0, 255).astype(np.uint8)


def photo_background(rng, size, photos):
    """uint8 [size, size, 3]: a random square patch of a random photo, resized, maybe mirrored,
    colour-scaled."""
    photo = photos[rng.integers(len(photos))]
    height, width = photo.shape[:2]
    side = int(rng.uniform(0.3, 1.0) * min(height, width))
    top = rng.integers(0, height - side + 1)
    left = rng.integers(0, width - side + 1)
    patch = Image.fromarray(photo[top:top + side, left:left + side]).resize(
        (size, size), Image.BILINEAR)
    patch = np.asarray(patch, dtype=np.float64)
    if rng.uniform() < 0.5:
        patch = patch[:, ::-1]
    patch = patch * rng.uniform(0.7, 1.3, 3)
    return np.clip(patch, 0, 255).astype(np.uint8)


def random_background(rng, size):
    """uint8 [size, size, 3] background; a photo patch with probability PHOTO_PROBABILITY."""
    photos = packaged_photos()
    if photos and rng.uniform() < PHOTO_PROBABILITY:
        return photo_background(rng, size, photos)
    return procedural_background(rng, size)
