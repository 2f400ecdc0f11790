"""preprocess/images.py: every kind of photo file becomes RGB uint8, every bad file a named error."""
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from preprocess import images


def _png_chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def write_png_16bit_rgb(path, array):
    """Pillow cannot write 48-bit PNGs, so the file is assembled here (filter 0 on every row)."""
    height, width, _ = array.shape
    raw = b"".join(b"\x00" + array[r].astype(">u2").tobytes() for r in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
                     + _png_chunk(b"IDAT", zlib.compress(raw)) + _png_chunk(b"IEND", b""))


def write_huge_gray_png(path, side):
    """A valid side x side 8-bit grayscale PNG, compressed row by row (never held in memory)."""
    compressor = zlib.compressobj(1)
    row = b"\x00" * (side + 1)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
                     + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b""))


def test_rgb_png_loads_unchanged(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "a.png")
    np.testing.assert_array_equal(images.load_image(tmp_path / "a.png"), array)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
    Image.fromarray(gray).save(tmp_path / "g.png")
    loaded = images.load_image(tmp_path / "g.png")
    assert loaded.shape == (4, 5, 3) and loaded.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(loaded[:, :, channel], gray)


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (200, 10, 10, 255)   # opaque red stays
    rgba[0, 1] = (0, 0, 0, 0)         # transparent black becomes white
    rgba[1, :] = (0, 0, 0, 128)       # half-transparent black becomes mid grey
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    loaded = images.load_image(tmp_path / "a.png").astype(int)
    np.testing.assert_array_equal(loaded[0, 0], (200, 10, 10))
    np.testing.assert_array_equal(loaded[0, 1], (255, 255, 255))
    assert np.all(np.abs(loaded[1] - 127) <= 1)


def test_16bit_grayscale_is_scaled_not_clipped(tmp_path):
    gray16 = np.array([[0, 256 * 100, 65535]], dtype=np.uint16)
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    loaded = images.load_image(tmp_path / "g16.png")
    np.testing.assert_array_equal(loaded[0, :, 0], (0, 100, 255))


def test_16bit_rgb_is_reduced_to_8bit(tmp_path):
    rgb16 = np.zeros((3, 4, 3), np.uint16)
    rgb16[..., 0] = 65535
    rgb16[..., 1] = 256 * 100 + 17
    write_png_16bit_rgb(tmp_path / "c16.png", rgb16)
    loaded = images.load_image(tmp_path / "c16.png")
    np.testing.assert_array_equal(loaded[1, 2], (255, 100, 0))


@pytest.mark.parametrize("name, content, words", [
    ("empty.jpg", b"", "empty file"),
    ("notes.jpg", b"this is a text file, not a photo\n", "not an image"),
])
def test_non_images_raise_an_error_naming_the_file(tmp_path, name, content, words):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(images.ImageError, match=words) as error:
        images.load_image(tmp_path / name)
    assert name in str(error.value)


def test_truncated_jpeg_raises_an_error_naming_the_file(tmp_path):
    array = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "full.jpg", quality=90)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(images.ImageError, match="cut.jpg: corrupt or truncated"):
        images.load_image(tmp_path / "cut.jpg")


def test_missing_file_raises_an_error_naming_it(tmp_path):
    with pytest.raises(images.ImageError, match="nothere.png: cannot read"):
        images.load_image(tmp_path / "nothere.png")


def test_huge_image_is_refused_before_decoding(tmp_path):
    write_huge_gray_png(tmp_path / "huge.png", 10000)
    with pytest.raises(images.ImageError, match=r"huge.png: image too large \(10000 x 10000"):
        images.load_image(tmp_path / "huge.png")


def test_max_pixels_is_the_limit(tmp_path):
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "a.png")
    assert images.load_image(tmp_path / "a.png", max_pixels=100).shape == (10, 10, 3)
    with pytest.raises(images.ImageError, match="too large"):
        images.load_image(tmp_path / "a.png", max_pixels=99)


def test_exif_orientation_is_applied(tmp_path):
    array = np.zeros((2, 3, 3), np.uint8)
    array[0, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(array).save(tmp_path / "o.png", exif=exif)
    loaded = images.load_image(tmp_path / "o.png")
    assert loaded.shape == (3, 2, 3)
    np.testing.assert_array_equal(loaded[0, 1], (255, 255, 255))


def test_png_encoding_round_trips(tmp_path):
    labels = np.random.default_rng(2).integers(0, 8, (6, 9), dtype=np.uint8)
    (tmp_path / "l.png").write_bytes(images.encode_png(labels))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "l.png")), labels)
