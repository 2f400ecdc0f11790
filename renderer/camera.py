"""Cameras: rotations and the maps from camera-space points to clip space.

Two cameras produce the clip-space vertices that `renderer.rasterize` takes:
- `pixels_to_clip`: scaled orthographic (the paper's camera): points already in pixels.
- `perspective_to_clip`: pinhole camera with focal length and principal point in pixels.
Both map pixel (u, v) (x right, y down, origin at the image's top-left corner, pixel centres
at +0.5) to NDC x = 2u/W - 1, y = 1 - 2v/H, so image row 0 is the top (NDC y = +1).
"""
import tensorflow.compat.v1 as tf

from renderer.rasterizer import image_size_hw, load_op


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


def crop_project(vertices, rotation, centre, scale, shift, image_size, depth_scale, name=None):
    """A scaled-orthographic crop camera and `pixels_to_clip` in one fused C++ op with its
    gradient (renderer/kernels/camera_core.cc): model/face/camera.py's CropCamera.project then
    to_clip, without the [B, V, 3] intermediates of the TensorFlow formulation and their gradients.

    Args:
      vertices: [B, V, 3] float32 model-frame points X.
      rotation: [B, 3, 3] float32 R (applied to column vectors).
      centre: [3] float32 c, subtracted before the rotation.
      scale: [B] float32 s, pixels per unit of X.
      shift: [B, 2] float32 (tx, ty) pixels.
      image_size: int W of the square W x W image.
      depth_scale: positive float, as `pixels_to_clip`'s.
    Returns:
      (points_px [B, V, 3], clip [B, V, 4]): with p = R (X - c), (u, v, depth) =
      (W/2 + s p_x + tx, W/2 - s p_y + ty, s p_z) and clip = pixels_to_clip(points_px, W,
      depth_scale); the same float operations as the TensorFlow formulation but for the order of
      the rotation's sums (equal to rounding). Differentiable with respect to vertices, rotation,
      centre, scale and shift.
    """
    height, width = image_size_hw(image_size)
    if height != width:
        raise ValueError("crop_project draws a square image, got %dx%d" % (height, width))
    if not depth_scale > 0:
        raise ValueError("depth_scale must be positive, got %r" % (depth_scale,))
    with tf.name_scope(name, "crop_project", [vertices, rotation, centre, scale, shift]):
        inputs = [tf.convert_to_tensor(x, tf.float32) for x in (vertices, rotation, centre, scale, shift)]
        for tensor, rank, last, what, dims in ((inputs[0], 3, 3, "vertices", "[batch, vertices, 3]"),
                                               (inputs[1], 3, 3, "rotation", "[batch, 3, 3]"),
                                               (inputs[2], 1, 3, "centre", "[3]"),
                                               (inputs[3], 1, None, "scale", "[batch]"),
                                               (inputs[4], 2, 2, "shift", "[batch, 2]")):
            shape = tensor.shape
            if shape.rank is not None and (shape.rank != rank or (last is not None and shape[-1] not in (None, last))):
                raise ValueError("%s must have shape %s, got %s" % (what, dims, tensor.shape))
        points, clip = load_op().crop_project(*inputs, image_size=width, depth_scale=float(depth_scale))
        return points, clip


@tf.RegisterGradient("CropProject")
def _crop_project_gradient(op, d_points, d_clip):
    # An empty tensor tells the kernel that an output received no gradient.
    empty = tf.zeros([0], tf.float32)
    d_vertices, d_rotation, d_scale, d_shift = load_op().crop_project_grad(
        *op.inputs, d_points if d_points is not None else empty, d_clip if d_clip is not None else empty,
        image_size=op.get_attr("image_size"), depth_scale=op.get_attr("depth_scale"))
    # d centre = -sum of d vertices (run only when the centre is a variable).
    return [d_vertices, d_rotation, -tf.reduce_sum(d_vertices, axis=[0, 1]), d_scale, d_shift]


def rotate(vectors, rotation, name=None):
    """vectors [B, V, 3] turned by rotation [B, 3, 3]: tf.matmul(vectors, rotation,
    transpose_b=True) (R x per row, equal to rounding) as a fused C++ op with its gradient
    (renderer/kernels/camera_core.cc)."""
    with tf.name_scope(name, "rotate", [vectors, rotation]):
        vectors = tf.convert_to_tensor(vectors, tf.float32, name="vectors")
        rotation = tf.convert_to_tensor(rotation, tf.float32, name="rotation")
        for tensor, what, dims in ((vectors, "vectors", "[batch, vertices, 3]"), (rotation, "rotation", "[batch, 3, 3]")):
            if tensor.shape.rank is not None and (tensor.shape.rank != 3 or tensor.shape[-1] not in (None, 3)):
                raise ValueError("%s must have shape %s, got %s" % (what, dims, tensor.shape))
        return load_op().rotate_vectors(vectors, rotation)


@tf.RegisterGradient("RotateVectors")
def _rotate_vectors_gradient(op, d_rotated):
    return list(load_op().rotate_vectors_grad(op.inputs[0], op.inputs[1], d_rotated))
