"""Cameras: rotations and the maps from camera-space points to clip space.

Two cameras produce the clip-space vertices that `renderer.rasterize` takes:
- `pixels_to_clip`: scaled orthographic (the paper's camera): points already in pixels.
- `perspective_to_clip`: pinhole camera with focal length and principal point in pixels.
Both map pixel (u, v) (x right, y down, origin at the image's top-left corner, pixel centres
at +0.5) to NDC x = 2u/W - 1, y = 1 - 2v/H, so image row 0 is the top (NDC y = +1).
"""
import tensorflow.compat.v1 as tf

from renderer.rasterizer import image_size_hw


def euler_rotation(angles, name=None):
    """Rotation matrices from Euler angles.

    Args:
      angles: [B, 3] float32 (pitch, yaw, roll) in radians: rotations about x, y and z.
    Returns:
      [B, 3, 3] float32 R = Rz(roll) Ry(yaw) Rx(pitch), applied to column vectors X' = R X
      (right-handed; a positive angle turns counter-clockwise looking down its axis).
    """
    with tf.name_scope(name, "euler_rotation", [angles]):
        angles = tf.convert_to_tensor(angles, tf.float32, name="angles")
        if angles.shape.rank is not None and (angles.shape.rank != 2 or angles.shape[-1] not in (None, 3)):
            raise ValueError("angles must have shape [batch, 3] (pitch, yaw, roll), got %s" % angles.shape)
        cos = tf.cos(angles)
        sin = tf.sin(angles)
        cp, cy, cr = tf.unstack(cos, axis=-1)
        sp, sy, sr = tf.unstack(sin, axis=-1)
        one = tf.ones_like(cp)
        zero = tf.zeros_like(cp)
        rx = tf.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], axis=-1)
        ry = tf.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], axis=-1)
        rz = tf.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], axis=-1)
        batch = tf.shape(angles)[0]
        rx, ry, rz = (tf.reshape(m, tf.stack([batch, 3, 3])) for m in (rx, ry, rz))
        return tf.matmul(rz, tf.matmul(ry, rx))


def pixels_to_clip(points_px, image_size, depth_scale, name=None):
    """Scaled-orthographic camera: points in pixel coordinates to clip space.

    Args:
      points_px: [B, V, 3] float32 (u, v, depth): u pixels to the right, v pixels down from
        the top-left image corner, depth larger = closer to the camera (any unit).
      image_size: (H, W) or an int for a square image.
      depth_scale: positive float; depths in (-depth_scale, depth_scale) are drawn, others
        are clipped by the near and far planes.
    Returns:
      [B, V, 4] float32 clip-space (2u/W - 1, 1 - 2v/H, -depth/depth_scale, 1).
    """
    height, width = image_size_hw(image_size)
    if not depth_scale > 0:
        raise ValueError("depth_scale must be positive, got %r" % (depth_scale,))
    with tf.name_scope(name, "pixels_to_clip", [points_px]):
        points_px = tf.convert_to_tensor(points_px, tf.float32, name="points_px")
        # x = 2u / W - 1, y = 1 - 2v / H, z = -depth / depth_scale as one multiply, divide and add
        # on [B, V, 3] (the same float operations, so the same bits, as per channel: negation and
        # the order of a two-term sum are exact), then w = 1 appended: no unstack / stack, whose
        # ops and gradients on the last axis cost more than the arithmetic (bench/bench_render.py).
        xyz = (points_px * tf.constant([2.0, -2.0, -1.0]) / tf.constant([float(width), float(height),
                                                                          float(depth_scale)])
               + tf.constant([-1.0, 1.0, 0.0]))
        return tf.concat([xyz, tf.ones_like(xyz[..., :1])], axis=-1)


def perspective_to_clip(points_cam, focal_px, principal_point_px, image_size, near, far, name=None):
    """Pinhole camera: camera-frame points to clip space.

    Args:
      points_cam: [B, V, 3] float32 in the OpenCV camera frame: x right, y down, z forward
        (distance in front of the camera, any unit).
      focal_px: focal length in pixels, a float or [B].
      principal_point_px: (cx, cy) in pixels, or [B, 2].
      image_size: (H, W) or an int for a square image.
      near, far: 0 < near < far, in the unit of z; points outside [near, far] are clipped.
    Returns:
      [B, V, 4] float32 clip-space vertices with w = z, so a point lands on pixel
      (f x / z + cx, f y / z + cy) and NDC z runs from -1 at `near` to 1 at `far`.
    """
    height, width = image_size_hw(image_size)
    if not 0 < near < far:
        raise ValueError("need 0 < near < far, got near=%r far=%r" % (near, far))
    with tf.name_scope(name, "perspective_to_clip", [points_cam, focal_px, principal_point_px]):
        points_cam = tf.convert_to_tensor(points_cam, tf.float32, name="points_cam")
        focal = tf.reshape(tf.cast(focal_px, tf.float32), [-1, 1])  # [B or 1, 1]
        principal = tf.reshape(tf.cast(principal_point_px, tf.float32), [-1, 2])  # [B or 1, 2]
        cx, cy = principal[:, 0:1], principal[:, 1:2]
        x, y, z = tf.unstack(points_cam, 3, axis=-1)
        clip_x = (2.0 * focal / width) * x + (2.0 * cx / width - 1.0) * z
        clip_y = -(2.0 * focal / height) * y + (1.0 - 2.0 * cy / height) * z
        clip_z = (far + near) / (far - near) * z - 2.0 * far * near / (far - near)
        return tf.stack([clip_x, clip_y, clip_z, z], axis=-1)
