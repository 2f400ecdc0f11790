"""The renderer's attribute interpolation, vertex normals and SH shading, the encoder's group
normalisation and the coarse photometric loss, as plain TensorFlow ops.

These were the implementations before the fused C++ ops (renderer/kernels/interpolate_core.cc,
normals_core.cc; triangle_normals_tf is model/fine.py's face normals before the fused op;
photometric_loss_tf is model/losses.py's photometric_loss before renderer/kernels/photometric_core.cc,
the oracle of tests/test_photometric_op.py; bilinear_sample_tf is model/face/unwrap.py's
bilinear_sample before renderer/kernels/sample_core.cc, the oracle of tests/test_sample_op.py); they stay here as the oracle of tests/test_fused_ops.py and as the
"tf_mesh_renderer user" pipeline of bench/bench_face_render.py (upstream's mesh_renderer.py
interpolates the same way: gather the vertex ids, gather the attributes, weight and sum).
"""
import tensorflow.compat.v1 as tf


def interpolate_tf(attributes, triangles, triangle_ids, barycentrics):
    """attributes [B, V, C], triangles [T, 3], triangle_ids [B, H, W], barycentrics [B, H, W, 3]
    -> [B, H, W, C] = sum_k barycentrics[..., k] * attributes[triangles[triangle_ids][k]]."""
    attributes = tf.convert_to_tensor(attributes, tf.float32)
    triangles = tf.convert_to_tensor(triangles, tf.int32)
    pixel_vertex_ids = tf.gather(triangles, triangle_ids)  # [B, H, W, 3]
    corners = tf.gather(attributes, pixel_vertex_ids, batch_dims=1)  # [B, H, W, 3, C]
    return tf.reduce_sum(corners * tf.convert_to_tensor(barycentrics, tf.float32)[..., tf.newaxis], axis=-2)


def vertex_normals_tf(vertices, triangles):
    """vertices [B, V, 3], triangles [T, 3] -> [B, V, 3] area-weighted unit normals
    (l2_normalize of the summed face normals (v1 - v0) x (v2 - v0), epsilon 1e-24)."""
    vertices = tf.convert_to_tensor(vertices, tf.float32)
    triangles = tf.convert_to_tensor(triangles, tf.int32)
    corners = tf.gather(vertices, triangles, axis=1)  # [B, T, 3 corners, 3 xyz]
    v0, v1, v2 = tf.unstack(corners, 3, axis=2)
    face_normals = tf.linalg.cross(v1 - v0, v2 - v0)
    per_corner = tf.transpose(tf.tile(face_normals[:, tf.newaxis], [1, 3, 1, 1]), [1, 2, 0, 3])  # [3, T, B, 3]
    summed = tf.math.unsorted_segment_sum(
        tf.reshape(per_corner, tf.stack([-1, tf.shape(vertices)[0], 3])),
        tf.reshape(tf.transpose(triangles), [-1]), num_segments=tf.shape(vertices)[1])  # [V, B, 3]
    return tf.math.l2_normalize(tf.transpose(summed, [1, 0, 2]), axis=-1, epsilon=1e-24)


def triangle_normals_tf(vertices, triangles):
    """vertices [B, V, 3], triangles [T, 3] -> [B, T, 3] unit face normals (l2_normalize of
    (v1 - v0) x (v2 - v0), epsilon 1e-24): model/fine.py's triangle_normals before the fused op."""
    corners = tf.gather(tf.convert_to_tensor(vertices, tf.float32), triangles, axis=1)
    return tf.math.l2_normalize(tf.linalg.cross(corners[:, :, 1] - corners[:, :, 0],
                                                corners[:, :, 2] - corners[:, :, 0]), axis=-1, epsilon=1e-24)


def group_norm_tf(x, gamma, beta, groups, epsilon=1e-5):
    """x [B, H, W, C] normalised per image and group of C / groups consecutive channels
    (tf.nn.moments over H, W and the group's channels), times gamma [C] plus beta [C]."""
    x = tf.convert_to_tensor(x, tf.float32)
    channels = int(x.shape[-1])
    shape = tf.shape(x)
    grouped = tf.reshape(x, [shape[0], shape[1], shape[2], groups, channels // groups])
    mean, variance = tf.nn.moments(grouped, axes=[1, 2, 4], keepdims=True)
    grouped = (grouped - mean) * tf.rsqrt(variance + epsilon)
    return tf.reshape(grouped, shape) * gamma + beta


def sh_shading_tf(normals, albedo, light):
    """normals, albedo [B, V, 3], light [B, 27] -> albedo * (sh_basis(normals) . (light + ambient)),
    in TensorFlow ops (einsum over the 9 bands)."""
    from renderer import shading
    ambient = tf.constant([[shading.DEFAULT_AMBIENT] * 3] + [[0.0] * 3] * 8, tf.float32)
    coefficients = tf.reshape(tf.convert_to_tensor(light, tf.float32), [-1, 9, 3]) + ambient
    irradiance = tf.einsum("bvk,bkc->bvc", shading.sh_basis(normals), coefficients)
    return tf.convert_to_tensor(albedo, tf.float32) * irradiance


def photometric_loss_per_image_tf(images, renders, mask, epsilon=1e-8):
    """images, renders [B, H, W, C], mask [B, H, W, 1] -> [B]
    sum_p M sqrt(sum_c (I - R)^2 + epsilon) / max(sum_p M, 1): model/losses.py's per-image term
    before the fused op."""
    distance = tf.sqrt(tf.reduce_sum(tf.square(images - renders), axis=-1, keepdims=True) + epsilon)
    return (tf.reduce_sum(mask * distance, axis=[1, 2, 3])
            / tf.maximum(tf.reduce_sum(mask, axis=[1, 2, 3]), 1.0))


def photometric_loss_tf(images, renders, mask):
    """model/losses.py's photometric_loss before the fused op: the batch mean of the above."""
    return tf.reduce_mean(photometric_loss_per_image_tf(images, renders, mask))


# ---------------------------------------------------------------------------- cameras
# renderer/camera.py's pixels_to_clip and model/face/camera.py's CropCamera.project channel by
# channel (unstack, arithmetic, stack), as they were written first: the oracle of tests/test_camera.py.

def pixels_to_clip_tf(points_px, height, width, depth_scale):
    u, v, depth = tf.unstack(tf.convert_to_tensor(points_px, tf.float32), 3, axis=-1)
    x = 2.0 * u / width - 1.0
    y = 1.0 - 2.0 * v / height
    z = -depth / float(depth_scale)
    return tf.stack([x, y, z, tf.ones_like(x)], axis=-1)


def crop_camera_project_tf(camera, vertices, pose, image_size):
    from model.face.framing import CROP_SIZE
    p = tf.matmul(vertices - camera.centre, camera.rotation(pose), transpose_b=True)
    w = float(image_size)
    s = (camera.scale * w / CROP_SIZE) * tf.exp(pose[:, 5])[:, None]
    t = pose[:, 3:5] * (w / CROP_SIZE)
    u = 0.5 * w + s * p[..., 0] + t[:, 0:1]
    v = 0.5 * w - s * p[..., 1] + t[:, 1:2]
    return tf.stack([u, v, s * p[..., 2]], axis=-1)


def crop_project_to_clip_tf(camera, vertices, pose, image_size):
    """model/face/forward.py's render_mesh camera steps before the fused CropProject op
    (renderer/kernels/camera_core.cc): CropCamera.project (rotation by matmul, the [B, V, 3]-at-once
    scale and shift) then CropCamera.to_clip (renderer.camera.pixels_to_clip). (points_px, clip)."""
    points_px = camera.project(vertices, pose, image_size)
    return points_px, camera.to_clip(points_px, image_size)


def rotate_tf(vectors, rotation):
    """render_mesh's rotation of the normals into the camera frame before the fused RotateVectors op."""
    return tf.matmul(vectors, rotation, transpose_b=True)


# ---------------------------------------------------------------------------- fine smoothness terms
# model/losses.py's laplacian_smoothness_loss and triangle_smoothness_loss as they were written
# before the sparse-matmul formulation: the oracle of tests/test_fine_losses.py.

def laplacian_smoothness_loss_tf(attributes, pairs, dead_zone):
    """mean over b, v, c of max((mean_{u in N(v)} x_{b,u,c} - x_{b,v,c})^2 - dz, 0), by gather and
    segment sum; pairs [E, 2] (vertex, neighbour)."""
    import numpy as np
    pairs = np.asarray(pairs, dtype=np.int32)
    attributes = tf.convert_to_tensor(attributes, tf.float32)
    num_vertices = attributes.shape[1]
    counts = np.maximum(np.bincount(pairs[:, 0], minlength=num_vertices), 1).astype(np.float32)
    neighbours = tf.gather(attributes, pairs[:, 1], axis=1)                          # [B, E, C]
    summed = tf.math.unsorted_segment_sum(tf.transpose(neighbours, [1, 0, 2]), pairs[:, 0], num_vertices)
    mean_neighbour = tf.transpose(summed, [1, 0, 2]) / counts[None, :, None]
    return tf.reduce_mean(tf.nn.relu(tf.square(mean_neighbour - attributes) - dead_zone))


def triangle_smoothness_loss_tf(triangle_attributes, pairs, dead_zone):
    """mean over b, (f, g), c of max((y_{b,f,c} - y_{b,g,c})^2 - dz, 0), by two gathers."""
    import numpy as np
    pairs = np.asarray(pairs, dtype=np.int32)
    first = tf.gather(triangle_attributes, pairs[:, 0], axis=1)
    second = tf.gather(triangle_attributes, pairs[:, 1], axis=1)
    return tf.reduce_mean(tf.nn.relu(tf.square(first - second) - dead_zone))


def uv_smoothness_loss_tf(uv_map):
    """model/losses.py's uv_smoothness_loss by slicing (before the convolution formulation)."""
    d = tf.convert_to_tensor(uv_map, tf.float32)
    return (tf.reduce_mean(tf.square(d[:, :, 1:] - d[:, :, :-1]))
            + tf.reduce_mean(tf.square(d[:, 1:] - d[:, :-1]))
            + tf.reduce_mean(tf.square(d[:, 1:, 1:] - d[:, :-1, :-1]))
            + tf.reduce_mean(tf.square(d[:, 1:, :-1] - d[:, :-1, 1:])))


# ---------------------------------------------------------------------------- UV layout and unwrapping
# model/face/uv_layout.py's interpolation to texels and model/face/unwrap.py's texel_visibility as
# they were before the fused interpolation op and the per-triangle planes (gathers of [B, K, 3, C]
# corners): the oracle of tests/test_uv_layout.py and tests/test_unwrap.py.

def interpolate_at_texels_tf(layout, attributes, flat_texels):
    """[B, N, C] -> [B, K, C], barycentric interpolation at the texels flat_texels (0 uncovered)."""
    import numpy as np
    flat_texels = np.asarray(flat_texels)
    corners = np.asarray(layout.triangles)[np.maximum(layout.triangle_id.ravel()[flat_texels], 0)]
    weights = layout.barycentrics.reshape(-1, 3)[flat_texels]
    gathered = tf.gather(tf.convert_to_tensor(attributes, tf.float32), corners, axis=1)     # [B, K, 3, C]
    return tf.reduce_sum(gathered * weights[None, :, :, None], axis=2)


def texel_visibility_tf(layout, triangles, points_px, rasterized, depth_scale):
    """unwrap.texel_visibility with every texel gathering its triangle's three corners."""
    import numpy as np
    from model.face import unwrap
    triangles = np.asarray(triangles, dtype=np.int32)
    height, width = int(rasterized.triangle_ids.shape[1]), int(rasterized.triangle_ids.shape[2])
    flat_ids, texel_triangle, weights = unwrap._covered_tables(layout, triangles)
    corners = tf.gather(points_px, triangles[texel_triangle], axis=1)               # [B, K, 3, 3]
    point = tf.reduce_sum(corners * weights[None, :, :, None], axis=2)              # [B, K, 3]
    plane = tf.linalg.cross(corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0])
    facing = plane[..., 2] < 0.0
    slope = tf.minimum(tf.norm(plane[..., :2], axis=-1) / tf.maximum(tf.abs(plane[..., 2]), 1e-12),
                       unwrap.MAX_SLOPE)
    column = tf.cast(tf.floor(point[..., 0]), tf.int32)
    row = tf.cast(tf.floor(point[..., 1]), tf.int32)
    inside = (column >= 0) & (column < width) & (row >= 0) & (row < height)
    pixel = tf.clip_by_value(row, 0, height - 1) * width + tf.clip_by_value(column, 0, width - 1)
    batch = tf.shape(points_px)[0]

    def at_pixel(image):
        return tf.gather(tf.reshape(image, [batch, height * width]), pixel, batch_dims=1)   # [B, K]
    covered = at_pixel(rasterized.mask) > 0.5
    seen_corners = tf.gather(triangles, at_pixel(rasterized.triangle_ids))          # [B, K, 3]
    own_corners = triangles[texel_triangle]                                          # [K, 3]
    same_surface = tf.reduce_any(tf.equal(seen_corners[..., :, None], own_corners[None, :, None, :]),
                                 axis=[2, 3])
    nearest_depth = -float(depth_scale) * at_pixel(rasterized.depth)
    not_occluded = (nearest_depth - point[..., 2]
                    <= unwrap.SLOPE_BIAS_PIXELS * slope + unwrap.DEPTH_BIAS_PIXELS)
    visible = facing & inside & covered & (same_surface | not_occluded)
    visible = tf.cast(visible, tf.float32)[..., tf.newaxis]
    return (unwrap._scatter_to_map(layout, point[..., :2], flat_ids),
            unwrap._scatter_to_map(layout, visible, flat_ids))


def bilinear_sample_tf(images, positions):
    """model/face/unwrap.py's bilinear_sample before the fused BilinearSample op
    (renderer/kernels/sample_core.cc): clamp to the image, pixel centres at +0.5, the last row and
    column interpolate from their upper / left neighbour with weight 1; four batched gathers from the
    flattened images and the weighted sums. images [B, H, W, C] (static H, W, C; H, W >= 2),
    positions [B, K, 2] (x, y) pixels -> [B, K, C]: the oracle of tests/test_sample_op.py."""
    images = tf.convert_to_tensor(images, tf.float32)
    positions = tf.convert_to_tensor(positions, tf.float32)
    height, width = int(images.shape[1]), int(images.shape[2])
    x = tf.clip_by_value(positions[..., 0] - 0.5, 0.0, width - 1.0)
    y = tf.clip_by_value(positions[..., 1] - 0.5, 0.0, height - 1.0)
    # The last row and column interpolate from their left / upper neighbour with weight 1.
    x0 = tf.minimum(tf.floor(x), width - 2.0)
    y0 = tf.minimum(tf.floor(y), height - 2.0)
    fx, fy = (x - x0)[..., tf.newaxis], (y - y0)[..., tf.newaxis]
    flat = tf.reshape(images, [tf.shape(images)[0], height * width, int(images.shape[3])])
    ix0, iy0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    ix1, iy1 = ix0 + 1, iy0 + 1

    def at(iy, ix):
        return tf.gather(flat, iy * width + ix, batch_dims=1)
    top = (1.0 - fx) * at(iy0, ix0) + fx * at(iy0, ix1)
    bottom = (1.0 - fx) * at(iy1, ix0) + fx * at(iy1, ix1)
    return (1.0 - fy) * top + fy * bottom
