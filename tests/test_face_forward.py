"""model/face/forward.py: the one forward path from coefficients to a rendered face."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from model.face import FaceModel, forward
from model.face.camera import CropCamera
from tests import face_model_oracle as oracle

tf.disable_eager_execution()


@pytest.fixture(scope="module")
def fm():
    return FaceModel()


def _coefficients(fm, batch=2, seed=0):
    coeffs = np.random.default_rng(seed).normal(size=(batch, fm.coeff_size)).astype(np.float32)
    coeffs[:, fm.coefficient_slices()["pose"]] = [[0.1, -0.2, 0.05, 3.0, -4.0, 0.1],
                                                  [-0.1, 0.3, -0.1, -2.0, 1.0, -0.2]][:batch]
    return coeffs


def _run(build):
    with tf.Graph().as_default(), tf.Session() as session:
        return session.run(build())


def test_render_face_agrees_with_the_numpy_oracle(fm):
    coeffs = _coefficients(fm)
    keys = ("vertices", "points_px", "landmarks", "albedo", "normals", "clip")
    got = _run(lambda: {k: v for k, v in forward.render_face(fm, tf.constant(coeffs), 224).items() if k in keys})
    parts = fm.split_coefficients(coeffs)
    vertices = oracle.shape(fm, parts["identity"], parts["expression"])
    points = oracle.project(fm, vertices, parts["pose"], image_size=224)
    assert np.allclose(got["vertices"], vertices, atol=1e-2)
    assert np.allclose(got["points_px"], points, atol=1e-2)
    assert np.allclose(got["landmarks"], oracle.landmarks(fm, points), atol=1e-2)
    assert np.allclose(got["albedo"], oracle.albedo(fm, parts["albedo"]), atol=1e-4)
    rotated_normals = oracle.normals(fm, vertices) @ np.swapaxes(oracle.euler_rotation(parts["pose"][:, :3]), 1, 2)
    assert np.allclose(got["normals"], rotated_normals, atol=1e-3)
    # Clip space: NDC x = 2u/W - 1, y = 1 - 2v/H, w = 1.
    assert np.allclose(got["clip"][..., 0], 2 * points[..., 0] / 224 - 1, atol=1e-4)
    assert np.allclose(got["clip"][..., 1], 1 - 2 * points[..., 1] / 224, atol=1e-4)
    assert np.all(got["clip"][..., 3] == 1) and np.all(np.abs(got["clip"][..., 2]) < 1)


def test_vertex_displacement_moves_the_vertices_along_the_coarse_normals(fm):
    coeffs = _coefficients(fm, batch=1)
    displacement = np.random.default_rng(1).uniform(-2.0, 2.0, (1, fm.num_vertices)).astype(np.float32)
    got = _run(lambda: forward.face_mesh(fm, tf.constant(coeffs), tf.constant(displacement))["vertices"])
    parts = fm.split_coefficients(coeffs)
    vertices = oracle.shape(fm, parts["identity"], parts["expression"])
    expected = vertices + displacement[..., None] * oracle.normals(fm, vertices)
    assert np.allclose(got, expected, atol=1e-2)


def test_the_builders_frontal_render_frames_the_mean_face_as_the_face_model_does(fm):
    # Two callers of the one path: the builder renders given vertices with a framing of its own,
    # render_face goes from coefficients; at the model's crop framing they must cover the same pixels.
    from resources.build_face_model import render_frontal
    _, _, frontal_mask, _ = render_frontal(fm.mean_shape.astype(np.float64), fm.triangles,
                                           np.ones((fm.num_vertices, 3)), 300, (fm.frame_scale, fm.frame_centre))
    mask = _run(lambda: forward.render_face(fm, tf.zeros([1, fm.coeff_size]), 300)["mask"])[0, ..., 0] > 0.5
    assert frontal_mask.sum() > 20000
    assert np.array_equal(frontal_mask, mask)


def test_extra_attributes_are_interpolated_on_the_same_rasterization(fm):
    # An attribute equal to the albedo renders the albedo image: same pixels, no background.
    coeffs = _coefficients(fm, batch=1)

    def build():
        face = forward.face_mesh(fm, tf.constant(coeffs))
        out = forward.render_mesh(fm.camera, face["vertices"], face["triangles"], face["pose"], 64,
                                  colours=face["albedo"], attributes=face["albedo"],
                                  background=tf.ones([1, 64, 64, 3]))
        return out["render"], out["attributes"], out["mask"]
    render, attributes, mask = _run(build)
    assert mask.sum() > 500
    assert np.allclose(attributes, render * mask, atol=1e-6)


def test_render_mesh_takes_either_colours_or_albedo_and_light():
    camera = CropCamera(1.0, np.zeros(3, np.float32))
    with tf.Graph().as_default():
        vertices, pose = tf.zeros([1, 3, 3]), tf.zeros([1, 6])
        with pytest.raises(ValueError, match="either colours or albedo and light"):
            forward.render_mesh(camera, vertices, [[0, 1, 2]], pose, 8)
        with pytest.raises(ValueError, match="either colours or albedo and light"):
            forward.render_mesh(camera, vertices, [[0, 1, 2]], pose, 8, colours=tf.zeros([1, 3, 3]),
                                albedo=tf.zeros([1, 3, 3]), light=tf.zeros([1, 27]))
