"""The fused crop-camera projection (CropProject: rotation, scale, shift, clip space) and vector
rotation (RotateVectors) ops: against the TensorFlow formulations they replaced in
model/face/forward.render_mesh (tests/tf_reference.py), against finite differences, and on bad input."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from model.face import FaceModel, forward
from renderer import camera
from tests.gradient_check import central_differences
from tests.tf_reference import crop_project_to_clip_tf, rotate_tf

tf.disable_eager_execution()

SIZE = 224


@pytest.fixture(scope="module")
def crop_camera():
    return FaceModel().camera


def random_inputs(rng, batch=3, count=400):
    vertices = (rng.normal(scale=60.0, size=(batch, count, 3))).astype(np.float32)
    pose = (rng.normal(size=(batch, 6)) * [0.3, 0.5, 0.2, 10.0, 10.0, 0.1]).astype(np.float32)
    return vertices, pose


def projection_outputs(project, vertices, pose, d_points, d_clip):
    """points, clip and the gradients of sum(points d_points) + sum(clip d_clip) wrt vertices and
    pose (either probe None: that output unused)."""
    with tf.Graph().as_default(), tf.Session() as session:
        v, p = tf.constant(vertices), tf.constant(pose)
        points, clip = project(v, p)
        loss = tf.zeros([])
        if d_points is not None:
            loss += tf.reduce_sum(points * d_points)
        if d_clip is not None:
            loss += tf.reduce_sum(clip * d_clip)
        return session.run([points, clip] + tf.gradients(loss, [v, p]))


@pytest.mark.parametrize("probes", ["both", "clip", "points"])
def test_crop_project_and_its_gradients_match_the_tensorflow_version(crop_camera, probes):
    rng = np.random.default_rng(3)
    vertices, pose = random_inputs(rng)
    d_points = rng.normal(size=vertices.shape).astype(np.float32) if probes != "clip" else None
    d_clip = rng.normal(size=vertices.shape[:2] + (4,)).astype(np.float32) if probes != "points" else None
    ours = projection_outputs(lambda v, p: crop_camera.project_to_clip(v, p, SIZE), vertices, pose, d_points, d_clip)
    reference = projection_outputs(lambda v, p: crop_project_to_clip_tf(crop_camera, v, p, SIZE), vertices, pose,
                                   d_points, d_clip)
    # Equal to rounding: only the order of the rotation's three-term sums differs.
    np.testing.assert_allclose(ours[0], reference[0], rtol=1e-6, atol=1e-4, err_msg="points")
    np.testing.assert_allclose(ours[1], reference[1], rtol=1e-6, atol=1e-6, err_msg="clip")
    np.testing.assert_array_equal(ours[1][..., 3], 1.0)
    for name, a, b in zip(("d_vertices", "d_pose"), ours[2:], reference[2:]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max(), err_msg=name)


def test_render_mesh_takes_the_fused_camera_and_equals_the_tensorflow_steps(crop_camera):
    """render_face's points_px, clip and camera-frame normals against the TensorFlow steps."""
    face_model = FaceModel()
    rng = np.random.default_rng(4)
    coeffs = np.zeros((2, face_model.coeff_size), np.float32)
    parts = face_model.coefficient_slices()
    coeffs[:, parts["pose"]] = [[0.1, -0.3, 0.05, 4.0, -3.0, 0.05], [-0.2, 0.4, -0.1, -6.0, 2.0, -0.1]]
    coeffs[:, parts["identity"]] = rng.normal(scale=0.5, size=(2, face_model.k_id))
    with tf.Graph().as_default(), tf.Session() as session:
        c = tf.constant(coeffs)
        outputs = forward.render_face(face_model, c, 64)
        pose = face_model.split_coefficients(c)["pose"]
        points, clip = crop_project_to_clip_tf(face_model.camera, outputs["vertices"], pose, 64)
        from renderer import shading
        normals = rotate_tf(shading.vertex_normals(outputs["vertices"], face_model.triangles),
                            face_model.camera.rotation(pose))
        ops = [op.type for op in tf.get_default_graph().get_operations()]
        ours, theirs = session.run([[outputs["points_px"], outputs["clip"], outputs["normals"]],
                                    [points, clip, normals]])
    assert "CropProject" in ops and "RotateVectors" in ops
    for name, a, b in zip(("points_px", "clip", "normals"), ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-5, err_msg=name)


def test_crop_project_gradients_match_finite_differences():
    """Gradients of every input, the centre's included, against central differences (float64
    inputs, fed to the float32 op)."""
    rng = np.random.default_rng(5)
    batch, count, size, depth_scale = 2, 5, 40, 160.0
    inputs = [rng.normal(scale=2.0, size=(batch, count, 3)),                     # vertices
              None,                                                              # rotation
              rng.normal(size=3),                                                # centre
              rng.uniform(2.0, 4.0, size=batch),                                 # scale
              rng.normal(scale=3.0, size=(batch, 2))]                            # shift
    # A rotation-like matrix, but any 3 x 3 works for the gradient.
    inputs[1] = np.linalg.qr(rng.normal(size=(batch, 3, 3)))[0] + 0.1 * rng.normal(size=(batch, 3, 3))
    d_points = rng.normal(size=(batch, count, 3))
    d_clip = rng.normal(size=(batch, count, 4))
    with tf.Graph().as_default(), tf.Session() as session:
        holders = [tf.placeholder(tf.float32, x.shape) for x in inputs]
        points, clip = camera.crop_project(*holders, image_size=size, depth_scale=depth_scale)
        # The pixel-space term scaled down so that both outputs weigh in the loss.
        loss = tf.reduce_sum(points * d_points) / size + tf.reduce_sum(clip * d_clip)
        feed = dict(zip(holders, inputs))
        analytic = session.run(tf.gradients(loss, holders), feed)
        for k, numeric in enumerate(central_differences(session, loss, holders, inputs, step=1e-2)):
            np.testing.assert_allclose(analytic[k], numeric, rtol=1e-2, atol=2e-3 * max(1.0, np.abs(numeric).max()),
                                       err_msg="input %d" % k)


def test_rotate_and_its_gradients_match_the_tensorflow_version_and_finite_differences():
    rng = np.random.default_rng(6)
    vectors = rng.normal(size=(3, 300, 3)).astype(np.float32)
    angles = rng.normal(scale=0.5, size=(3, 3)).astype(np.float32)
    probe = rng.normal(size=vectors.shape).astype(np.float32)

    def outputs(rotate):
        with tf.Graph().as_default(), tf.Session() as session:
            v, a = tf.constant(vectors), tf.constant(angles)
            out = rotate(v, camera.euler_rotation(a))
            return session.run([out] + tf.gradients(tf.reduce_sum(out * probe), [v, a]))

    ours, reference = outputs(camera.rotate), outputs(rotate_tf)
    np.testing.assert_allclose(ours[0], reference[0], rtol=1e-6, atol=1e-6)
    for a, b in zip(ours[1:], reference[1:]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max())

    small = rng.normal(size=(2, 4, 3))
    matrix = rng.normal(size=(2, 3, 3))
    weights = rng.normal(size=small.shape)
    with tf.Graph().as_default(), tf.Session() as session:
        v, r = tf.placeholder(tf.float32, small.shape), tf.placeholder(tf.float32, matrix.shape)
        loss = tf.reduce_sum(camera.rotate(v, r) * weights)
        analytic = session.run(tf.gradients(loss, [v, r]), {v: small, r: matrix})
        for k, numeric in enumerate(central_differences(session, loss, [v, r], [small, matrix], step=1e-2)):
            np.testing.assert_allclose(analytic[k], numeric, rtol=1e-2, atol=1e-3)


def run(build):
    with tf.Graph().as_default(), tf.Session() as session:
        return session.run(build())


def test_crop_project_rejects_shapes_that_disagree_when_the_graph_runs():
    vertices, rotation = np.zeros((2, 5, 3), np.float32), np.zeros((2, 3, 3), np.float32)
    centre, scale, shift = np.zeros(3, np.float32), np.ones(2, np.float32), np.zeros((2, 2), np.float32)

    def project(*args, **kwargs):
        holders = [tf.placeholder_with_default(x, [None] * x.ndim) for x in args]
        return camera.crop_project(*holders, image_size=kwargs.get("size", 8), depth_scale=10.0)

    for bad, message in (((vertices, rotation[:1], centre, scale, shift), "rotation must have shape"),
                         ((vertices, rotation, centre[:2], scale, shift), "centre must have shape"),
                         ((vertices, rotation, centre, scale[:1], shift), "scale must have shape"),
                         ((vertices, rotation, centre, scale, shift[:, :1]), "shift must have shape"),
                         ((vertices[..., :2], rotation, centre, scale, shift), "vertices must have shape")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            run(lambda: project(*bad))
    # The gradient op refuses a gradient of another shape (it takes an empty one as zeros).
    op = camera.load_op()
    with pytest.raises(tf.errors.InvalidArgumentError, match="d_clip must be empty or have shape"):
        run(lambda: op.crop_project_grad(vertices, rotation, centre, scale, shift, tf.zeros([0]),
                                         tf.zeros([2, 5, 3]), image_size=8, depth_scale=10.0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="depth_scale must be positive"):
        run(lambda: op.crop_project(vertices, rotation, centre, scale, shift, image_size=8, depth_scale=-1.0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="image_size must be positive"):
        run(lambda: op.crop_project(vertices, rotation, centre, scale, shift, image_size=0, depth_scale=1.0))
    with pytest.raises(ValueError, match="square"):
        camera.crop_project(vertices, rotation, centre, scale, shift, (8, 9), 10.0)
    with pytest.raises(ValueError, match="depth_scale"):
        camera.crop_project(vertices, rotation, centre, scale, shift, 8, 0.0)


def test_rotate_rejects_a_rotation_of_another_batch_and_bad_gradients():
    vectors = np.zeros((2, 5, 3), np.float32)
    op = camera.load_op()
    with pytest.raises(tf.errors.InvalidArgumentError, match="rotation must have shape"):
        run(lambda: camera.rotate(tf.placeholder_with_default(vectors, [None, None, 3]),
                                  tf.placeholder_with_default(np.zeros((3, 3, 3), np.float32), [None, 3, 3])))
    with pytest.raises(tf.errors.InvalidArgumentError, match="d_out must have the shape"):
        run(lambda: op.rotate_vectors_grad(vectors, np.zeros((2, 3, 3), np.float32), np.zeros((2, 4, 3), np.float32)))
    with pytest.raises(ValueError, match="rotation must have shape"):
        camera.rotate(vectors, np.zeros((2, 3), np.float32))


def test_crop_project_of_non_finite_and_empty_inputs_does_not_crash():
    with tf.Graph().as_default(), tf.Session() as session:
        vertices = tf.constant([[[np.nan, 0.0, 0.0], [np.inf, 1.0, 2.0]]], tf.float32)
        points, clip = camera.crop_project(vertices, tf.eye(3)[None], tf.zeros(3), tf.ones(1), tf.zeros([1, 2]),
                                           8, 10.0)
        grad = tf.gradients(tf.reduce_sum(clip), vertices)[0]
        session.run([points, clip, grad])
        empty = tf.zeros([0, 0, 3])
        out = camera.crop_project(empty, tf.zeros([0, 3, 3]), tf.zeros(3), tf.zeros([0]), tf.zeros([0, 2]), 8, 10.0)
        assert session.run(out)[1].shape == (0, 0, 4)
        assert session.run(camera.rotate(empty, tf.zeros([0, 3, 3]))).shape == (0, 0, 3)
