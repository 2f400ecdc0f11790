"""Unwrapping an image into the face's UV space through a rendered mesh (the fine stage's input).

    texel t of the UV layout --its triangle T(t), barycentrics w(t)--> projected position
      p_t = sum_k w_k points_px[T_k]  --bilinear sample of the image at p_t-->  UV value
    visible(t) = T(t) faces the camera, and the z-buffer at the pixel of p_t shows T(t), a
                 triangle sharing a vertex with it, or nothing nearer than t (`texel_visibility`)
    hidden texels: the value of the mirror texel where that one is visible, else a fallback
                   (the coarse face's own colour at t: `unwrap_to_uv`'s `fallback`)

The photo and the coarse render are unwrapped by the same call (channels stacked), so their
difference, the fine network's input, is zero wherever the photo has nothing to say.

Where this differs from the paper's code (Chen et al. 2020), and why:
  * Sampling. The paper gives each model vertex the colour of the pixel it projects to (integer
    truncation), then rasterizes the vertex colours into UV: the map has the vertex mesh's
    resolution, and detail finer than the triangles (which is what the fine stage is for) is
    averaged away. Here every texel samples the image at its own projected position, bilinearly:
    the image's resolution, and differentiable in the image and in the projected vertices.
  * Visibility. The paper computes a visibility mask and never uses it, so a texel hidden behind
    the nose takes the nose's colour and the network is asked to explain the nose's shading on
    the cheek. Here the mask decides what a texel takes, and it is the network's fourth input.
    The issue asked for "the z-buffer shows the texel's triangle"; alone, that marks 7% of the
    frontal mean face's detail texels hidden at 128 pixels (2% at 300), because triangles are a
    pixel or two wide and a texel's pixel often shows a neighbour; the depth test with a
    slope-scaled bias (`texel_visibility`) keeps those and still rejects occluders.
  * Fill. Hidden texels take their mirror texel's value where that one is visible (faces are
    nearly symmetric; DECA relies on the same prior), else the fallback, not the occluder's colour.
"""
import numpy as np
import tensorflow.compat.v1 as tf

from renderer import sampling
from renderer.rasterizer import interpolate

# Depth bias of the visibility test: a texel whose z-buffer pixel is nearer than its own depth by
# less than its triangle's depth change over SLOPE_BIAS_PIXELS pixels plus DEPTH_BIAS_PIXELS is
# on the surface the pixel shows (sampling offsets are below one pixel).
SLOPE_BIAS_PIXELS = 1.0
DEPTH_BIAS_PIXELS = 0.5
# Cap of the slope (depth per pixel, ~72 degrees from the view direction) in that bias: a
# triangle seen edge-on would otherwise excuse any occluder.
MAX_SLOPE = 3.0


def bilinear_sample(images, positions):
    """Bilinear samples of images at continuous pixel positions, clamped to the image.

    The fused C++ op renderer.sampling.bilinear_sample (renderer/kernels/sample_core.cc), one pass
    over the samples each way; bit-identical to the TensorFlow ops formula it replaced
    (tests/tf_reference.py's bilinear_sample_tf, whose gradient it matches to rounding). The last
    row and column interpolate from their left / upper neighbour with weight 1.

    Args:
      images: [B, H, W, C] float32, H, W >= 2; pixel (r, c) has its centre at (x, y) = (c + 0.5, r + 0.5).
      positions: [B, K, 2] float32 (x, y) pixels, x right, y down (the points_px convention).
    Returns:
      [B, K, C] float32, differentiable in images and positions (piecewise, as bilinear is; zero
      position gradient where a coordinate is clamped). A NaN position gives a NaN sample.
    """
    return sampling.bilinear_sample(images, positions)


def _covered_tables(layout, triangles):
    """Flat ids [K] of the covered texels, their triangles [K] and barycentrics [K, 3] (NumPy)."""
    flat_ids = np.flatnonzero(layout.covered.ravel())
    triangle_of_texel = layout.triangle_id.ravel()[flat_ids]
    weights = layout.barycentrics.reshape(-1, 3)[flat_ids]
    return flat_ids, triangle_of_texel, weights


def _scatter_to_map(layout, values, flat_ids):
    """[B, K, C] values of the covered texels -> [B, S, S, C], 0 on uncovered texels."""
    lookup = np.full(layout.size * layout.size, len(flat_ids), dtype=np.int32)
    lookup[flat_ids] = np.arange(len(flat_ids))
    padded = tf.concat([values, tf.zeros_like(values[:, :1])], axis=1)
    return tf.reshape(tf.gather(padded, lookup, axis=1), [-1, layout.size, layout.size, int(values.shape[-1])])


def texel_visibility(layout, triangles, points_px, rasterized, depth_scale):
    """Which texels the camera sees, and where.

    A covered texel t is visible when its triangle T(t) faces the camera, its projection p_t falls
    on a covered pixel, and that pixel's z-buffer shows T(t), a triangle sharing a vertex with it,
    or a surface no nearer than the texel's own depth plus a slope-scaled bias (the depth T(t)'s
    plane changes over SLOPE_BIAS_PIXELS, its slope capped at MAX_SLOPE, plus DEPTH_BIAS_PIXELS): with triangles of a pixel or
    two, the pixel of p_t often shows a triangle a few rings away on the same surface, whereas an
    occluder (the nose over the far cheek) is many pixels of depth nearer.

    Args:
      layout: model.face.uv_layout.UVLayout.
      triangles: [T, 3] int32, the face model's triangles (the layout's and the rasterizer's).
      points_px: [B, N, 3] (u, v, depth) of the vertices in the rasterized image's pixels, depth
        larger = closer (model.face.FaceModel.project).
      rasterized: renderer.Rasterized of that mesh in that image.
      depth_scale: the depth range given to renderer.camera.pixels_to_clip (its NDC z is
        -depth / depth_scale).
    Returns:
      positions [B, S, S, 2] (u, v) pixels of each texel's projection (0 on uncovered texels),
      visibility [B, S, S, 1] float32 in {0, 1} (0 on uncovered texels).
    """
    triangles = np.asarray(triangles, dtype=np.int32)
    height, width = int(rasterized.triangle_ids.shape[1]), int(rasterized.triangle_ids.shape[2])
    if not np.array_equal(triangles, layout.triangles):
        raise ValueError("texel_visibility: the triangles are not those of the UV layout's face model")
    flat_ids, texel_triangle, _ = _covered_tables(layout, triangles)
    point = layout.interpolate_at_texels(points_px, flat_ids)                           # [B, K, 3]
    # Plane of T(t) in (u, v, depth): its normal's z < 0 is front-facing (counter-clockwise in NDC,
    # y up, is clockwise in pixels, y down); |grad depth| = |n_xy| / |n_z| depth per pixel.
    # Computed once per triangle, then read per texel.
    corners = tf.gather(points_px, triangles, axis=1)                                  # [B, T, 3, 3]
    plane = tf.linalg.cross(corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0])
    facing = tf.gather(plane[..., 2] < 0.0, texel_triangle, axis=1)
    slope = tf.gather(tf.minimum(tf.norm(plane[..., :2], axis=-1) / tf.maximum(tf.abs(plane[..., 2]), 1e-12),
                                 MAX_SLOPE), texel_triangle, axis=1)
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
    not_occluded = nearest_depth - point[..., 2] <= SLOPE_BIAS_PIXELS * slope + DEPTH_BIAS_PIXELS
    visible = facing & inside & covered & (same_surface | not_occluded)
    visible = tf.cast(visible, tf.float32)[..., tf.newaxis]
    return _scatter_to_map(layout, point[..., :2], flat_ids), _scatter_to_map(layout, visible, flat_ids)


def unwrap_to_uv(layout, images, positions, visibility, fallback):
    """Images unwrapped into UV at the texels' projected positions; hidden texels filled.

        value(t) = sample(p_t)                 where t is visible,
                   sample(p_mirror(t))         where t is hidden and mirror(t) is visible,
                   fallback(t)                 elsewhere (covered texels), 0 on uncovered ones.

    Args:
      layout: model.face.uv_layout.UVLayout (its mirror_texel table and coverage).
      images: [B, H, W, C] float32 (the photo, the coarse render, or both stacked on channels),
        the pixels `positions` refer to.
      positions, visibility: `texel_visibility`.
      fallback: [B, S, S, C] float32, e.g. layout.vertices_to_uv of the coarse vertex colours.
    Returns:
      [B, S, S, C] float32.
    """
    size = layout.size
    channels = int(images.shape[-1])
    batch = tf.shape(images)[0]
    sampled = bilinear_sample(images, tf.reshape(positions, [batch, size * size, 2]))
    sampled = tf.reshape(sampled, [batch, size, size, channels])
    mirror = layout.mirror_texel.ravel()

    def mirrored(x):
        flat = tf.reshape(x, [batch, size * size, int(x.shape[-1])])
        return tf.reshape(tf.gather(flat, mirror, axis=1), [batch, size, size, int(x.shape[-1])])
    mirror_visible = mirrored(visibility)
    covered = layout.covered.astype(np.float32)[None, :, :, None]
    hidden_value = mirror_visible * mirrored(sampled) + (1.0 - mirror_visible) * fallback
    return covered * (visibility * sampled + (1.0 - visibility) * hidden_value)


def chart_map_to_image(face_model, maps, rasterized):
    """UV maps carried into an image through a rendered face: the other direction of unwrapping.

    Each pixel the face covers takes the maps' bilinear value at the chart position (u, v) of the
    surface point it shows: the face model's per-vertex UVs interpolated with the rasterized
    barycentrics, exact inside each triangle since the chart is linear there. With the ground-truth
    face and its displacement map this is the detail as the photo shows it, pixel by pixel; unwrapped
    again through another face (`texel_visibility`, `unwrap_to_uv`) it is that detail in the other
    face's chart, where a network reading the photo through that face would have to put it
    (bench/fine_chart_transfer.py).

    Args:
      face_model: model.face.FaceModel (its uv and triangles: the rasterized mesh's).
      maps: [B, S, S, C] float32 in the face model's chart (a UV layout's maps).
      rasterized: renderer.Rasterized of the face model's mesh (its triangles) in the image.
    Returns:
      [B, H, W, C] float32, 0 where the face does not cover.
    """
    size = int(maps.shape[1])
    batch = tf.shape(maps)[0]
    uv = tf.tile(tf.constant(np.asarray(face_model.uv, np.float32))[None], [batch, 1, 1])
    chart = interpolate(uv, np.asarray(face_model.triangles, np.int32), rasterized)       # [B, H, W, 2]
    height, width = int(chart.shape[1]), int(chart.shape[2])
    # The map's texel coordinates: x = u S, y = (1 - v) S, texel centres at +0.5 (bilinear_sample's pixels).
    positions = tf.stack([chart[..., 0] * size, (1.0 - chart[..., 1]) * size], axis=-1)
    sampled = bilinear_sample(maps, tf.reshape(positions, [batch, height * width, 2]))
    return tf.reshape(sampled, [batch, height, width, int(maps.shape[-1])]) * rasterized.mask[..., tf.newaxis]


# Oversampling of the true face's render in `own_chart_target`: the ground-truth detail is carried
# into an image of OWN_CHART_OVERSAMPLE x the fine render's side, so that the texels (about 0.9
# pixels apart at 300, UV 256) are not averaged by the image's own resampling.
OWN_CHART_OVERSAMPLE = 2


def own_chart_target(face_model, true_coeffs, true_maps, positions, image_size, flipped=None, scale=None,
                     crop_size=300, oversample=OWN_CHART_OVERSAMPLE):
    """The ground-truth detail in the chart of another face: what a reader of the photo must predict.

    The synthetic ground-truth map lives in the chart of the TRUE face. A fine network reads the
    photo unwrapped through the face it is given (the coarse network's), a few millimetres off: a
    wrinkle the photo shows at pixel p lands on the texel t of that face's chart whose projection
    p_t is p, not on the wrinkle's texel in the true chart. The target of t is therefore the true
    surface's detail at p_t:

        target(t) = D(a^-1(p_t)),   D = chart_map_to_image(true_maps, rasterization of the true face)

    where a is the sample's augmentation (mirror x -> crop - x, then scale s about the crop's
    centre: model/data.py), undone because the true face (gt/coefficients) describes the crop
    before it. D is rendered at `oversample` x the crop's resolution and sampled bilinearly.

    Args:
      face_model: model.face.FaceModel (the chart's and the true face's).
      true_coeffs: [B, C] gt/coefficients of the un-augmented crop.
      true_maps: [B, S, S, K] float32 maps in the face model's chart (gt/displacement[..., None]).
      positions: [B, S2, S2, 2] (u, v) pixels, in an image of side image_size, of the texels of
        the other face (texel_visibility's positions; S2 need not be S).
      image_size: side of the image `positions` refer to (the fine render, the crop's frame).
      flipped: None or [B] bool, the samples that were mirrored (gt/flipped).
      scale: None or [B] float32 (gt/scale), their magnification about the crop's centre.
      crop_size: side of the un-augmented crop the pose refers to.
      oversample: the true face's render side in units of crop_size.
    Returns:
      (target [B, S2, S2, K], inside [B, S2, S2, 1]): inside is the true face's coverage sampled
      at the same point (1 deep inside it; a texel whose point the true face does not cover, or
      only partly, has no ground truth there).
    """
    from model.face import forward
    batch = tf.shape(true_coeffs)[0]
    side = int(positions.shape[1])
    render_size = int(round(oversample * crop_size))
    parts = face_model.split_coefficients(true_coeffs)
    mesh = forward.face_mesh(face_model, true_coeffs)
    vertices = mesh["vertices"]
    rendered = forward.render_mesh(face_model.camera, vertices, mesh["triangles"], parts["pose"], render_size,
                                   colours=tf.zeros_like(vertices[..., :1]))
    image = chart_map_to_image(face_model, true_maps, rendered["rasterized"])
    both = tf.concat([image, rendered["mask"]], axis=-1)
    crop = tf.reshape(positions, [batch, side * side, 2]) * (float(crop_size) / image_size)
    centre = 0.5 * crop_size
    if scale is not None:
        crop = centre + (crop - centre) / tf.reshape(tf.cast(scale, tf.float32), [-1, 1, 1])
    if flipped is not None:
        mirror = tf.reshape(tf.cast(flipped, tf.float32), [-1, 1])
        x = mirror * (crop_size - crop[..., 0]) + (1.0 - mirror) * crop[..., 0]
        crop = tf.stack([x, crop[..., 1]], axis=-1)
    sampled = bilinear_sample(both, crop * (render_size / float(crop_size)))
    sampled = tf.reshape(sampled, [batch, side, side, int(both.shape[-1])])
    return sampled[..., :-1], sampled[..., -1:]
