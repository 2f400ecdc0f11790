"""model/face/uv_layout.py: texel tables, detail mask, mirror texels and the dense grid mesh."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from model.face import FaceModel
from model.face.uv_layout import UVLayout, texel_centres

SIZE = 64


@pytest.fixture(scope="module")
def face_model():
    return FaceModel()


@pytest.fixture(scope="module")
def layout(face_model):
    return UVLayout(face_model, SIZE)


def run(fn, *arrays):
    with tf.Graph().as_default(), tf.Session() as session:
        return session.run(fn(*[tf.constant(np.asarray(a, np.float32)) for a in arrays]))


def test_uv_coordinates_interpolated_into_the_map_are_the_texel_centres(face_model, layout):
    # UV is linear on each triangle in UV space: interpolating it with the texel's triangle and
    # barycentrics must give back the texel centre exactly, on every covered texel.
    image = run(layout.vertices_to_uv, face_model.uv[None])[0]
    centres = texel_centres(SIZE)
    np.testing.assert_allclose(image[layout.covered], centres[layout.covered], atol=1e-5)
    assert not image[~layout.covered].any()
    assert layout.covered.mean() > 0.5


def test_texel_barycentrics_lie_inside_their_triangle(layout):
    b = layout.barycentrics[layout.covered]
    assert b.min() >= 0 and np.allclose(b.sum(axis=1), 1.0, atol=1e-6)


def test_a_linear_attribute_round_trips_through_the_map_to_the_dense_vertices(face_model, layout):
    attribute = face_model.mean_shape @ np.array([[0.3], [-1.2], [0.7]]) + 5.0      # [N, 1]
    via_map = run(lambda a: layout.uv_to_dense(layout.vertices_to_uv(a)), attribute[None])[0]
    direct = run(layout.dense_from_vertices, attribute[None])[0]
    dense_points = run(layout.dense_from_vertices, face_model.mean_shape[None])[0]
    np.testing.assert_allclose(via_map, direct, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(direct[:, 0], dense_points @ np.array([0.3, -1.2, 0.7]) + 5.0,
                               rtol=1e-5, atol=1e-3)


def test_mirror_of_the_mirror_texel_is_the_texel_and_stays_in_the_mask(layout):
    flat = layout.mirror_texel.ravel()
    np.testing.assert_array_equal(flat[flat], np.arange(SIZE * SIZE))
    mask = layout.mask.ravel()
    assert mask[flat[mask]].all()


def test_mirror_texels_lie_on_the_mirror_twins_triangles(face_model, layout):
    # The chart puts mirror twins at mirrored u, so the triangle under a texel's mirror is the
    # mirror image of the texel's triangle (texels on a shared edge may pick either side).
    flat = np.flatnonzero(layout.mask.ravel())
    ids = layout.triangle_id.ravel()
    corners = face_model.triangles[ids[flat]]
    mirrored = face_model.triangles[ids[layout.mirror_texel.ravel()[flat]]]
    same = [set(face_model.mirror[a]) == set(b) for a, b in zip(corners, mirrored)]
    assert np.mean(same) > 0.98


def test_detail_mask_holds_skin_nose_lips_and_brows_but_never_eyes_or_mouth_interior(face_model, layout):
    corners = face_model.triangles[layout.triangle_id[layout.mask]]
    regions = face_model.regions
    assert not regions["eyes"][corners].any()
    assert not regions["mouth_interior"][corners].any()
    for name in ("skin", "nose", "lips", "brows"):
        assert regions[name][corners].all(axis=1).sum() > 0, name


def test_dense_mesh_has_a_vertex_per_mask_texel_and_two_triangles_per_full_quad(layout):
    assert layout.num_dense_vertices == layout.mask.sum()
    m = layout.mask
    full_quads = (m[:-1, :-1] & m[1:, :-1] & m[1:, 1:] & m[:-1, 1:]).sum()
    assert len(layout.dense_triangles) == 2 * full_quads
    np.testing.assert_allclose(layout.dense_uv, texel_centres(SIZE).reshape(-1, 2)[layout.dense_texels])


def test_dense_mesh_at_zero_displacement_lies_on_the_coarse_surface(face_model, layout):
    with tf.Graph().as_default(), tf.Session() as session:
        v = tf.constant(face_model.mean_shape[None])
        dense = session.run(layout.displaced_dense_vertices(
            v, face_model.normals(v), tf.zeros([1, SIZE, SIZE])))[0]
    # Distance of each dense vertex to the plane of its texel's coarse triangle, and its
    # barycentric reconstruction.
    tri = face_model.triangles[layout.triangle_id.ravel()[layout.dense_texels]]
    p0, p1, p2 = (face_model.mean_shape[tri[:, k]].astype(np.float64) for k in range(3))
    n = np.cross(p1 - p0, p2 - p0)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    assert np.abs(np.sum((dense - p0) * n, axis=1)).max() < 1e-3
    b = layout.barycentrics.reshape(-1, 3)[layout.dense_texels]
    np.testing.assert_allclose(dense, b[:, :1] * p0 + b[:, 1:2] * p1 + b[:, 2:] * p2, atol=1e-3)


def test_displacement_moves_dense_vertices_along_the_unit_normal(face_model, layout):
    with tf.Graph().as_default(), tf.Session() as session:
        v = tf.constant(face_model.mean_shape[None])
        normals = face_model.normals(v)
        base = layout.displaced_dense_vertices(v, normals, tf.zeros([1, SIZE, SIZE]))
        moved = layout.displaced_dense_vertices(v, normals, tf.fill([1, SIZE, SIZE, 1], 2.0))
        direction = tf.math.l2_normalize(layout.dense_from_vertices(normals), axis=-1)
        base, moved, direction = session.run([base, moved, direction])
    np.testing.assert_allclose(moved - base, 2.0 * direction, atol=1e-4)
    assert np.mean(direction[0, :, 2] > 0) > 0.9  # outward: mostly towards the viewer


def test_dense_triangles_face_outward_like_the_coarse_surface(face_model, layout):
    from renderer import shading
    with tf.Graph().as_default(), tf.Session() as session:
        v = tf.constant(face_model.mean_shape[None])
        dense = layout.dense_from_vertices(v)
        own, smooth = session.run([shading.vertex_normals(dense, layout.dense_triangles),
                                   layout.dense_from_vertices(face_model.normals(v))])
    assert np.mean(np.sum(own[0] * smooth[0], axis=1) > 0.5) > 0.98


def test_map_to_dense_gradient_is_the_scatter_of_the_upstream_gradient(layout):
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(1, layout.num_dense_vertices, 1)).astype(np.float32)
    with tf.Graph().as_default(), tf.Session() as session:
        image = tf.zeros([1, SIZE, SIZE, 1])
        loss = tf.reduce_sum(layout.uv_to_dense(image) * weights)
        grad = session.run(tf.gradients(loss, image)[0])[0, ..., 0].ravel()
    expected = np.zeros(SIZE * SIZE, np.float32)
    expected[layout.dense_texels] = weights[0, :, 0]
    np.testing.assert_allclose(grad, expected, rtol=1e-6)


def test_vertices_to_map_gradient_matches_finite_differences(face_model):
    small = UVLayout(face_model, 16)
    rng = np.random.default_rng(1)
    values = rng.normal(size=(1, face_model.num_vertices, 1))
    probe = rng.normal(size=(1, 16, 16, 1))
    with tf.Graph().as_default(), tf.Session() as session:
        attribute = tf.constant(values, tf.float64)
        loss = tf.reduce_sum(small.vertices_to_uv(attribute) * probe)
        analytic = session.run(tf.gradients(loss, attribute)[0])
        # The op is linear: the loss at values + e_k minus the loss at values is the gradient.
        k = np.argsort(-np.abs(analytic.ravel()))[:5]
        bumped = values.copy()
        base_loss = session.run(loss)
        for index in k:
            bumped[...] = values
            bumped[0, index, 0] += 1.0
            moved = session.run(loss, {attribute: bumped})
            assert moved - base_loss == pytest.approx(analytic[0, index, 0], rel=1e-6, abs=1e-9)


def test_taper_is_zero_off_the_mask_and_one_inside_it(layout):
    assert not layout.taper[~layout.mask].any()
    assert layout.taper.max() == 1.0
    assert (layout.taper == 1.0).sum() > 0.5 * layout.mask.sum()


def test_coarse_triangles_outside_cover_eyes_and_mouth_interior(face_model, layout):
    outside = {tuple(t) for t in layout.coarse_triangles_outside}
    pocket = face_model.regions["eyes"] | face_model.regions["mouth_interior"]
    for t in face_model.triangles[pocket[face_model.triangles].any(axis=1)]:
        assert tuple(t) in outside


def test_too_small_a_layout_is_an_error(face_model):
    with pytest.raises(ValueError, match="at least 8"):
        UVLayout(face_model, 4)


def test_interpolation_to_texels_and_its_gradient_match_the_gather_formulation(face_model, layout):
    """The fused-op interpolation (dense vertices, the whole map) against the gather it replaced
    (tests/tf_reference.py), values and attribute gradients."""
    from tests.tf_reference import interpolate_at_texels_tf
    rng = np.random.default_rng(4)
    values = rng.normal(size=(2, face_model.num_vertices, 3)).astype(np.float32)
    texels = np.concatenate([layout.dense_texels, np.arange(SIZE * SIZE)])      # uncovered texels too
    probe = rng.normal(size=(2, len(texels), 3)).astype(np.float32)

    def outputs(fn):
        with tf.Graph().as_default(), tf.Session() as session:
            attributes = tf.constant(values)
            out = fn(attributes)
            return session.run([out, tf.gradients(tf.reduce_sum(out * probe), attributes)[0]])
    ours = outputs(lambda a: layout.interpolate_at_texels(a, texels))
    reference = outputs(lambda a: interpolate_at_texels_tf(layout, a, texels))
    np.testing.assert_allclose(ours[0], reference[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours[1], reference[1], rtol=1e-5, atol=1e-5)
    uncovered = ~layout.covered.ravel()[texels]
    assert uncovered.any() and np.all(ours[0][:, uncovered] == 0.0)
