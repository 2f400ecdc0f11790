"""renderer.camera: rotations and the two cameras' maps to clip space."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from scipy.spatial.transform import Rotation

import renderer
from renderer import camera

tf.disable_eager_execution()


def run(build):
    with tf.Graph().as_default(), tf.Session() as session:
        return session.run(build())


def test_euler_rotation_is_rz_ry_rx_of_roll_yaw_pitch():
    angles = np.random.default_rng(0).uniform(-np.pi, np.pi, (5, 3)).astype(np.float32)
    rotations = run(lambda: camera.euler_rotation(angles))
    # scipy's extrinsic "xyz" rotates about x, then y, then z: Rz Ry Rx.
    expected = Rotation.from_euler("xyz", angles.astype(np.float64)).as_matrix()
    np.testing.assert_allclose(rotations, expected, atol=1e-6)


def test_positive_yaw_turns_the_x_axis_towards_minus_z():
    rotation = run(lambda: camera.euler_rotation([[0.0, np.pi / 2, 0.0]]))[0]
    np.testing.assert_allclose(rotation @ [1.0, 0.0, 0.0], [0.0, 0.0, -1.0], atol=1e-6)


def test_euler_rotation_rejects_a_wrong_shape():
    with pytest.raises(ValueError, match=r"angles must have shape \[batch, 3\]"):
        camera.euler_rotation(tf.zeros([4]))


def test_pixels_to_clip_follows_the_documented_formula():
    points = np.array([[[10.0, 20.0, 3.0], [0.0, 0.0, -1.0], [64.0, 48.0, 0.0]]], np.float32)
    clip = run(lambda: camera.pixels_to_clip(points, (48, 64), depth_scale=10.0))
    expected = np.array([[[2 * 10 / 64 - 1, 1 - 2 * 20 / 48, -0.3, 1], [-1, 1, 0.1, 1], [1, -1, 0, 1]]])
    np.testing.assert_allclose(clip, expected, atol=1e-6)


def tiny_triangle_around(u, v):
    """Clip vertices of a 0.2-pixel triangle around pixel position (u, v), via pixels_to_clip."""
    return np.array([[[u - 0.1, v + 0.1, 0.0], [u + 0.1, v + 0.1, 0.0], [u, v - 0.1, 0.0]]], np.float32)


@pytest.mark.parametrize("row, col", [(0, 0), (3, 7), (11, 4)])
def test_a_point_at_a_pixel_centre_in_pixel_coordinates_lands_on_that_pixel(row, col):
    def build():
        clip = camera.pixels_to_clip(tiny_triangle_around(col + 0.5, row + 0.5), (12, 9), depth_scale=1.0)
        return renderer.rasterize(clip, [[0, 1, 2]], (12, 9)).mask
    mask = run(build)
    assert mask.sum() == 1 and mask[0, row, col] == 1


def test_larger_depth_is_nearer_under_pixels_to_clip():
    near = tiny_triangle_around(4.5, 4.5) * [1, 1, 0] + [0, 0, 5.0]
    far = tiny_triangle_around(4.5, 4.5) * [1, 1, 0] + [0, 0, -5.0]

    def build():
        clip = camera.pixels_to_clip(np.concatenate([near, far], axis=1), (9, 9), depth_scale=10.0)
        return renderer.rasterize(clip, [[0, 1, 2], [3, 4, 5]], (9, 9)).triangle_ids
    ids = run(build)
    assert ids[0, 4, 4] == 0


def test_perspective_projection_lands_points_on_f_x_over_z_plus_c():
    rng = np.random.default_rng(1)
    points = np.concatenate([rng.uniform(-1, 1, (2, 6, 2)), rng.uniform(1, 5, (2, 6, 1))], -1).astype(np.float32)
    focal = np.array([30.0, 45.0], np.float32)
    principal = np.array([[20.0, 14.0], [18.0, 17.0]], np.float32)
    clip = run(lambda: camera.perspective_to_clip(points, focal, principal, (30, 40), near=0.5, far=10.0))
    ndc = clip[..., :3] / clip[..., 3:]
    u = (ndc[..., 0] + 1) * 40 / 2
    v = (1 - ndc[..., 1]) * 30 / 2
    np.testing.assert_allclose(u, focal[:, None] * points[..., 0] / points[..., 2] + principal[:, :1], rtol=1e-5)
    np.testing.assert_allclose(v, focal[:, None] * points[..., 1] / points[..., 2] + principal[:, 1:], rtol=1e-5)
    assert np.all(clip[..., 3] == points[..., 2])


def test_perspective_depth_runs_from_minus_one_at_near_to_one_at_far():
    points = np.array([[[0.0, 0.0, 0.5], [0.0, 0.0, 10.0], [0.0, 0.0, 2.0]]], np.float32)
    clip = run(lambda: camera.perspective_to_clip(points, 10.0, (5.0, 5.0), 10, near=0.5, far=10.0))
    ndc_z = clip[0, :, 2] / clip[0, :, 3]
    np.testing.assert_allclose(ndc_z[:2], [-1.0, 1.0], atol=1e-6)
    assert -1 < ndc_z[2] < 1


@pytest.mark.parametrize("near, far", [(0.0, 1.0), (2.0, 1.0), (-1.0, 3.0)])
def test_perspective_rejects_bad_clipping_planes(near, far):
    with pytest.raises(ValueError, match="near"):
        camera.perspective_to_clip(tf.zeros([1, 3, 3]), 10.0, (5.0, 5.0), 10, near=near, far=far)


def test_pixels_to_clip_rejects_a_non_positive_depth_scale():
    with pytest.raises(ValueError, match="depth_scale"):
        camera.pixels_to_clip(tf.zeros([1, 3, 3]), 10, depth_scale=0.0)


def _values_and_gradient(fn, inputs, probe):
    with tf.Graph().as_default(), tf.Session() as session:
        tensors = [tf.constant(x) for x in inputs]
        out = fn(*tensors)
        return session.run([out, tf.gradients(tf.reduce_sum(out * probe), tensors)])


def test_pixels_to_clip_and_crop_projection_are_bit_identical_to_the_per_channel_formulas():
    """The [B, V, 3]-at-once arithmetic against the unstack / stack formulation it replaced
    (tests/tf_reference.py): the same bits, and gradients to rounding."""
    from model.face import FaceModel
    from tests.tf_reference import crop_camera_project_tf, pixels_to_clip_tf
    rng = np.random.default_rng(7)
    points = (rng.normal(size=(3, 500, 3)) * [80.0, 80.0, 300.0] + [150.0, 120.0, 0.0]).astype(np.float32)
    probe = rng.normal(size=(3, 500, 4)).astype(np.float32)
    ours = _values_and_gradient(lambda p: camera.pixels_to_clip(p, (240, 300), 1200.0), [points], probe)
    reference = _values_and_gradient(lambda p: pixels_to_clip_tf(p, 240, 300, 1200.0), [points], probe)
    np.testing.assert_array_equal(ours[0], reference[0])
    np.testing.assert_allclose(ours[1][0], reference[1][0], rtol=1e-6)

    crop_camera = FaceModel().camera
    vertices = rng.normal(scale=60.0, size=(3, 400, 3)).astype(np.float32)
    pose = (rng.normal(size=(3, 6)) * [0.3, 0.5, 0.2, 10.0, 10.0, 0.1]).astype(np.float32)
    probe = rng.normal(size=(3, 400, 3)).astype(np.float32)
    ours = _values_and_gradient(lambda v, p: crop_camera.project(v, p, 224), [vertices, pose], probe)
    reference = _values_and_gradient(lambda v, p: crop_camera_project_tf(crop_camera, v, p, 224), [vertices, pose],
                                     probe)
    np.testing.assert_array_equal(ours[0], reference[0])
    for a, b in zip(ours[1], reference[1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())
