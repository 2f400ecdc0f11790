"""One call from clip-space mesh and per-vertex attributes to an image."""
import tensorflow.compat.v1 as tf

from renderer.rasterizer import interpolate, rasterize


def render(clip_vertices, triangles, attributes, image_size, background=None, cull_backfaces=False, name=None):
    """Renders per-vertex attributes (colours, or any other per-vertex values).

    Args:
      clip_vertices: [B, V, 4] float32 clip-space vertices (see renderer.rasterizer).
      triangles: [T, 3] int32, counter-clockwise in NDC is front-facing.
      attributes: [B, V, C] float32 per-vertex values to interpolate.
      image_size: (H, W) or an int for a square image.
      background: None (zeros) or [B, H, W, C] float32 shown where no triangle is.
      cull_backfaces: drop clockwise triangles.
    Returns:
      dict with image [B, H, W, C] (row 0 at the top), mask [B, H, W, 1] (1 covered,
      0 background) and rasterized (the `Rasterized` tuple, for further interpolation).
    """
    with tf.name_scope(name, "render", [clip_vertices, triangles, attributes]):
        rasterized = rasterize(clip_vertices, triangles, image_size, cull_backfaces=cull_backfaces)
        image = interpolate(attributes, triangles, rasterized)
        mask = rasterized.mask[..., tf.newaxis]
        if background is not None:
            background = tf.convert_to_tensor(background, tf.float32, name="background")
            image = image + (1.0 - mask) * background
        return dict(image=image, mask=mask, rasterized=rasterized)
