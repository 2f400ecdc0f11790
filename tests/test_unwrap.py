"""Unwrapping into UV: known textures come back, hidden texels are found and filled from their mirror."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import renderer

from model.face import FaceModel, forward, unwrap
from model.face.camera import DEPTH_RANGE_PER_PIXEL
from model.face.uv_layout import UVLayout, texel_centres

tf.disable_eager_execution()

UV_SIZE = 64
IMAGE_SIZE = 128
FALLBACK = 0.25


@pytest.fixture(scope="module")
def face_model():
    return FaceModel()


@pytest.fixture(scope="module")
def layout(face_model):
    return UVLayout(face_model, UV_SIZE)


def uv_colour(uv):
    """A texture linear in (u, v): a render interpolates it exactly inside every triangle."""
    return np.stack([uv[..., 0], uv[..., 1], 0.5 * np.ones_like(uv[..., 0])], axis=-1).astype(np.float32)


def unwrap_uv_texture(face_model, layout, yaw):
    """Renders the face with the UV texture at `yaw` and unwraps the render."""
    with tf.Graph().as_default(), tf.Session() as session:
        coeffs = np.zeros((1, face_model.coeff_size), np.float32)
        coeffs[0, face_model.coefficient_slices()["pose"].start + 1] = yaw
        outputs = forward.render_face(face_model, tf.constant(coeffs), IMAGE_SIZE)
        rendered = renderer.render(outputs["clip"], face_model.triangles,
                                   tf.constant(uv_colour(face_model.uv)[None]), IMAGE_SIZE)
        positions, visibility = unwrap.texel_visibility(
            layout, face_model.triangles, outputs["points_px"], rendered["rasterized"],
            DEPTH_RANGE_PER_PIXEL * IMAGE_SIZE)
        fallback = tf.fill([1, UV_SIZE, UV_SIZE, 3], FALLBACK)
        uv_image = unwrap.unwrap_to_uv(layout, rendered["image"], positions, visibility, fallback)
        return session.run(dict(uv=uv_image[0], visibility=visibility[0, ..., 0] > 0.5, positions=positions[0],
                                triangle_ids=rendered["rasterized"].triangle_ids[0],
                                depth=-DEPTH_RANGE_PER_PIXEL * IMAGE_SIZE * rendered["rasterized"].depth[0],
                                points_px=outputs["points_px"][0]))


@pytest.fixture(scope="module")
def frontal(face_model, layout):
    return unwrap_uv_texture(face_model, layout, yaw=0.0)


@pytest.fixture(scope="module")
def turned(face_model, layout):
    return unwrap_uv_texture(face_model, layout, yaw=0.9)


def test_bilinear_sample_hand_computed():
    image = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)     # value = 3 row + column
    positions = np.array([[[0.5, 0.5], [1.0, 0.5], [1.5, 1.25], [2.9, 2.9], [-4.0, 0.5]]], np.float32)
    with tf.Graph().as_default(), tf.Session() as session:
        values = session.run(unwrap.bilinear_sample(tf.constant(image), tf.constant(positions)))[0, :, 0]
    # Pixel centres at +0.5; beyond the outer centres the edge value (clamped).
    np.testing.assert_allclose(values, [0.0, 0.5, 3 * 0.75 + 1.0, 8.0, 0.0], atol=1e-6)


def test_unwrapping_a_render_of_a_uv_texture_returns_the_texture_on_visible_texels(layout, frontal):
    result = frontal
    visible = result["visibility"]
    assert visible.sum() > 0.9 * layout.mask.sum()
    error = np.abs(result["uv"] - uv_colour(texel_centres(UV_SIZE))).max(axis=-1)[visible]
    # Texels at the silhouette sample pixels that mix in the background; elsewhere exact.
    assert np.median(error) < 1e-3
    assert np.percentile(error, 90) < 0.01
    assert np.all(result["uv"][~layout.covered] == 0.0)


def test_a_texel_behind_the_nose_is_hidden_and_takes_its_mirror_texel(face_model, layout, frontal, turned):
    nose = face_model.regions["nose"]
    triangles = face_model.triangles
    # Oracle: mask texels off the nose, facing the camera, whose projected pixel shows a nose
    # triangle at least 5 mm (in depth) nearer than the texel.
    rows, cols = np.nonzero(layout.mask & ~nose[triangles[np.maximum(layout.triangle_id, 0)]].any(-1))
    texel_triangle = triangles[layout.triangle_id[rows, cols]]
    corners = turned["points_px"][texel_triangle]
    facing = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])[:, 2] < 0
    texel_depth = (corners[..., 2] * layout.barycentrics[rows, cols]).sum(-1)
    pixel = np.floor(turned["positions"][rows, cols]).astype(int)
    seen = turned["triangle_ids"][pixel[:, 1], pixel[:, 0]]
    nearer = turned["depth"][pixel[:, 1], pixel[:, 0]] - texel_depth
    px_per_mm = face_model.frame_scale * IMAGE_SIZE / 300.0
    behind_nose = facing & nose[triangles[seen]].all(-1) & (nearer > 5.0 * px_per_mm)
    hidden_rows, hidden_cols = rows[behind_nose], cols[behind_nose]
    assert len(hidden_rows) >= 3
    assert not turned["visibility"][hidden_rows, hidden_cols].any()
    assert frontal["visibility"][hidden_rows, hidden_cols].all()
    mirror = layout.mirror_texel[hidden_rows, hidden_cols]
    mirror_rows, mirror_cols = mirror // UV_SIZE, mirror % UV_SIZE
    assert turned["visibility"][mirror_rows, mirror_cols].all()
    np.testing.assert_array_equal(turned["uv"][hidden_rows, hidden_cols], turned["uv"][mirror_rows, mirror_cols])


def test_hidden_texels_without_a_visible_mirror_take_the_fallback(layout, turned):
    visible = turned["visibility"]
    mirror_visible = visible.ravel()[layout.mirror_texel]
    both_hidden = layout.covered & ~visible & ~mirror_visible
    assert both_hidden.sum() > 0
    assert np.all(turned["uv"][both_hidden] == FALLBACK)


@pytest.mark.parametrize("yaw", [0.0, 0.9])
def test_texel_visibility_matches_the_per_texel_gather_formulation(face_model, layout, yaw):
    """Interpolation by the fused op and planes per triangle give the same positions and
    visibility as the formulation they replaced (tests/tf_reference.py), turned face included."""
    from tests.tf_reference import texel_visibility_tf
    with tf.Graph().as_default(), tf.Session() as session:
        coeffs = np.zeros((2, face_model.coeff_size), np.float32)
        coeffs[:, face_model.coefficient_slices()["pose"].start + 1] = [yaw, -0.5 * yaw]
        outputs = forward.render_face(face_model, tf.constant(coeffs), IMAGE_SIZE)
        args = (layout, face_model.triangles, outputs["points_px"], outputs["rasterized"],
                DEPTH_RANGE_PER_PIXEL * IMAGE_SIZE)
        ours, reference = session.run([unwrap.texel_visibility(*args), texel_visibility_tf(*args)])
    np.testing.assert_allclose(ours[0], reference[0], rtol=0, atol=1e-4)
    np.testing.assert_array_equal(ours[1], reference[1])
    assert 0 < ours[1].sum() < ours[1].size


def test_texel_visibility_refuses_triangles_of_another_mesh(face_model, layout):
    with tf.Graph().as_default():
        outputs = forward.render_face(face_model, tf.zeros([1, face_model.coeff_size]), IMAGE_SIZE)
        with pytest.raises(ValueError, match="not those of the UV layout"):
            unwrap.texel_visibility(layout, face_model.triangles[::-1], outputs["points_px"], outputs["rasterized"],
                                    DEPTH_RANGE_PER_PIXEL * IMAGE_SIZE)


def test_a_chart_map_carried_into_the_image_and_unwrapped_back_is_itself_on_visible_texels(face_model, layout):
    """chart_map_to_image is the other direction of unwrapping: a map linear in (u, v), carried into
    a render of the turned face and unwrapped through the same face, comes back on the visible
    texels; the image is 0 off the face and, on it, the map at each pixel's surface point."""
    centres = texel_centres(UV_SIZE)
    chart_map = (centres[..., 0] + 2.0 * centres[..., 1])[None, :, :, None].astype(np.float32)
    with tf.Graph().as_default(), tf.Session() as session:
        coeffs = np.zeros((1, face_model.coeff_size), np.float32)
        coeffs[0, face_model.coefficient_slices()["pose"].start + 1] = 0.5
        outputs = forward.render_face(face_model, tf.constant(coeffs), IMAGE_SIZE)
        image = unwrap.chart_map_to_image(face_model, tf.constant(chart_map), outputs["rasterized"])
        positions, visibility = unwrap.texel_visibility(layout, face_model.triangles, outputs["points_px"],
                                                        outputs["rasterized"], DEPTH_RANGE_PER_PIXEL * IMAGE_SIZE)
        back = unwrap.unwrap_to_uv(layout, image, positions, visibility, tf.fill([1, UV_SIZE, UV_SIZE, 1], FALLBACK))
        uv_image = renderer.interpolate(tf.constant(face_model.uv[None]), face_model.triangles, outputs["rasterized"])
        result = session.run(dict(image=image[0, ..., 0], mask=outputs["mask"][0, ..., 0], back=back[0, ..., 0],
                                  visible=visibility[0, ..., 0], uv=uv_image[0]))
    on_face = result["mask"] > 0.5
    assert np.all(result["image"][~on_face] == 0.0)
    np.testing.assert_allclose(result["image"][on_face], (result["uv"][..., 0] + 2.0 * result["uv"][..., 1])[on_face],
                               atol=1e-4)
    visible = (result["visible"] > 0.5) & layout.mask
    assert visible.sum() > 0.5 * layout.mask.sum()
    error = np.abs(result["back"] - chart_map[0, ..., 0])[visible]
    # Texels at the silhouette sample pixels that mix in the background; elsewhere exact to rounding.
    assert np.median(error) < 1e-4
    assert np.percentile(error, 90) < 0.01


def test_own_chart_target_undoes_the_augmentation_of_the_crop(face_model):
    """own_chart_target(positions q in the augmented crop, flipped, scale) is the true face's
    chart map at the point of the un-augmented crop that model.data.augment_sample moved to q: the
    map carried into the crop, augmented as a training image is, and read at q gives the same
    values (times the augmentation's colour gain); ignoring the flip does not."""
    from model import data
    centres = texel_centres(UV_SIZE)
    # Positive, smooth and asymmetric in u (the chart's u runs across the face): mirroring changes it.
    chart_map = (0.2 + 0.6 * centres[..., 0] + 0.1 * centres[..., 1])[None, :, :, None].astype(np.float32)
    coeffs = np.zeros((1, face_model.coeff_size), np.float32)
    coeffs[0, face_model.coefficient_slices()["pose"].start + 1] = 0.4
    grid = (np.stack(np.meshgrid(np.arange(60, 240, 6.0), np.arange(60, 240, 6.0)), axis=-1) + 0.5)[None]
    grid = grid.astype(np.float32)
    found = None
    with tf.Graph().as_default(), tf.Session() as session:
        outputs = forward.render_face(face_model, tf.constant(coeffs), 300)
        image = unwrap.chart_map_to_image(face_model, tf.constant(chart_map), outputs["rasterized"])
        sample = dict(image=tf.tile(image[0], [1, 1, 3]), landmarks=tf.zeros([68, 2]),
                      segmentation=tf.zeros([300, 300], tf.int32), **{"gt/coefficients": tf.constant(coeffs[0]),
                                                                       "gt/displacement": tf.constant(chart_map[0, ..., 0])})
        for seed in range(40):
            augmented = data.augment_sample(sample, seed=seed, keep_ground_truth=True)
            # One run: each run of a seeded random op draws again.
            drawn = session.run(dict(image=augmented["image"], flipped=augmented[data.GT_FLIPPED],
                                     scale=augmented[data.GT_SCALE]))
            if drawn["flipped"] and abs(drawn["scale"] - 1.0) > 0.04:
                found = drawn
                break
        assert found is not None
        positions = tf.constant(grid)
        seen = unwrap.bilinear_sample(tf.constant(found["image"][None]), tf.reshape(positions, [1, -1, 2]))[..., 0]

        def target_of(flipped):
            return unwrap.own_chart_target(face_model, tf.constant(coeffs), tf.constant(chart_map), positions, 300,
                                           tf.constant([flipped]), tf.constant([found["scale"]]))
        target, inside = target_of(True)
        unflipped, _ = target_of(False)
        values = session.run(dict(seen=seen, target=tf.reshape(target, [1, -1]), inside=tf.reshape(inside, [1, -1]),
                                  unflipped=tf.reshape(unflipped, [1, -1])))
    inside = values["inside"][0] > 0.99
    assert inside.sum() > 200
    seen, target = values["seen"][0][inside], values["target"][0][inside]
    gain = np.median(seen / target)
    assert 0.7 < gain < 1.3          # the colour augmentation's range
    assert np.percentile(np.abs(seen - gain * target), 90) < 0.02
    assert np.percentile(np.abs(seen - gain * values["unflipped"][0][inside]), 90) > 0.05
