"""Loading photos as RGB uint8 arrays (one clear error for every kind of bad file); encoding crops.

`load_image` accepts what cameras and the web produce (JPEG, PNG, BMP, TIFF, WebP, GIF first
frame), in any of Pillow's modes: grayscale, palette, RGBA (composited over white), CMYK, 16-bit
grayscale (scaled to 8 bit; Pillow already reduces 16-bit RGB PNGs to 8 bit). EXIF orientation is
applied, so the array is the photo as a viewer shows it.

Everything that cannot become such an array raises `ImageError` with the file name in the message:
empty files, non-images, truncated or corrupt data, and images over `max_pixels`. The size is read
from the header before any pixel is decoded, so a 10000 x 10000 photo is refused without
allocating its 300 MB.
"""
import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps

# 40 megapixels: larger than any ordinary camera photo, and dlib's detector on more pixels takes
# minutes per image. Callers that really want bigger images pass max_pixels.
DEFAULT_MAX_PIXELS = 40_000_000


class ImageError(ValueError):
    """A file that cannot be used as a photo. The message starts with the file name."""


def _to_rgb_array(image):
    """Pillow image of any mode -> RGB uint8 [H, W, 3]."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit grayscale: Pillow's convert('L') clips at 255 instead of scaling.
        gray = np.asarray(image, dtype=np.int64)
        gray = np.clip(gray >> 8, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "F":
        gray = np.asarray(image, dtype=np.float64)
        # Float images are conventionally in [0, 1]; anything larger is taken as 8-bit levels.
        if np.nanmax(gray, initial=0.0) <= 1.0:
            gray = gray * 255.0
        gray = np.clip(np.nan_to_num(gray), 0, 255).round().astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        # Transparent pixels carry arbitrary colours; a white backdrop is what viewers show.
        rgba = image.convert("RGBA")
        backdrop = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(backdrop, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))


def load_image(path, max_pixels=DEFAULT_MAX_PIXELS):
    """Reads a photo.

    Args:
      path: file name.
      max_pixels: images with more pixels (width x height) are refused before decoding.
    Returns:
      RGB uint8 [H, W, 3], origin top-left.
    Raises:
      ImageError: the file is missing, empty, not an image, corrupt or truncated, or too large.
    """
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
    except OSError as error:
        raise ImageError("%s: cannot read file (%s)" % (path, error.strerror or error)) from error
    if size == 0:
        raise ImageError("%s: empty file" % path)
    try:
        with warnings.catch_warnings():
            # Pillow warns from 89 MP on; our own limit (checked below) decides instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image_file = Image.open(path)
        with image_file as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError("%s: image too large (%d x %d = %.1f megapixels, limit %.1f)"
                                 % (path, width, height, width * height / 1e6, max_pixels / 1e6))
            if width == 0 or height == 0:
                raise ImageError("%s: image has zero size" % path)
            image.load()
            image = ImageOps.exif_transpose(image)
            array = _to_rgb_array(image)
    except ImageError:
        raise
    except Image.UnidentifiedImageError as error:
        raise ImageError("%s: not an image file (unrecognised format)" % path) from error
    except Image.DecompressionBombError as error:  # over 179 MP: Pillow refuses at open
        raise ImageError("%s: image too large (%s)" % (path, error)) from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError("%s: corrupt or truncated image (%s)" % (path, error)) from error
    return np.ascontiguousarray(array, dtype=np.uint8)


def encode_png(array):
    """uint8 [H, W] or [H, W, 3] -> PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def encode_jpeg(array, quality=95):
    """uint8 [H, W, 3] -> JPEG bytes (4:4:4, so colour edges stay where the landmarks are)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(
        buffer, format="JPEG", quality=quality, subsampling=0)
    return buffer.getvalue()


def encode_image(array, image_format):
    """uint8 [H, W, 3] -> bytes in `image_format`, "png" (lossless) or "jpeg" (quality 95)."""
    if image_format == "png":
        return encode_png(array)
    if image_format == "jpeg":
        return encode_jpeg(array)
    raise ValueError("image_format must be 'png' or 'jpeg', got %r" % (image_format,))
