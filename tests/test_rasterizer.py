"""Forward behaviour of renderer.rasterize / interpolate / render: known answers and bad input."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import renderer

tf.disable_eager_execution()


def run(build):
    """Builds fetches with `build()` in a fresh graph and evaluates them."""
    with tf.Graph().as_default(), tf.Session() as session:
        return session.run(build())


def rasterize_np(clip, triangles, image_size, cull_backfaces=False):
    return run(lambda: renderer.rasterize(
        tf.constant(clip, tf.float32), tf.constant(triangles, tf.int32), image_size, cull_backfaces))


def pixel_centres_ndc(height, width):
    """[H, W, 2] NDC (x, y) of pixel centres, row 0 at the top."""
    x = 2.0 * (np.arange(width) + 0.5) / width - 1.0
    y = 1.0 - 2.0 * (np.arange(height) + 0.5) / height
    return np.stack(np.meshgrid(x, y), axis=-1)


def oracle_barycentrics(clip_triangle, ndc_xy):
    """Perspective-correct barycentrics of NDC points in one clip-space triangle (float64).

    Solves M lambda = (x, y, 1) with M's columns the vertices' (x, y, w); b = lambda / sum.
    """
    m = np.asarray(clip_triangle, np.float64)[:, [0, 1, 3]].T
    points = np.concatenate([ndc_xy, np.ones(ndc_xy.shape[:-1] + (1,))], axis=-1)
    lam = np.einsum("ij,...j->...i", np.linalg.inv(m), points)
    return lam / lam.sum(axis=-1, keepdims=True)


# A counter-clockwise triangle (in NDC, y up) whose edges pass no pixel centre of a 16x16 image.
TRIANGLE = np.array([[-0.7, -0.6, 0.2, 1.0], [0.8, -0.45, 0.3, 1.0], [0.1, 0.75, -0.1, 1.0]], np.float32)


def test_single_triangle_covers_exactly_the_pixel_centres_inside_it():
    out = rasterize_np(TRIANGLE[None], [[0, 1, 2]], (16, 16))
    expected_bary = oracle_barycentrics(TRIANGLE, pixel_centres_ndc(16, 16))
    inside = np.all(expected_bary > 0, axis=-1)
    assert 40 < inside.sum() < 16 * 16 - 40
    np.testing.assert_array_equal(out.mask[0], inside.astype(np.float32))
    np.testing.assert_allclose(out.barycentrics[0][inside], expected_bary[inside], atol=1e-6)
    assert np.all(out.barycentrics[0][~inside] == 0)
    assert np.all(out.triangle_ids[0] == 0)


def test_row_zero_is_the_top_of_the_image():
    upper = np.array([[[-1, 0.1, 0, 1], [1, 0.1, 0, 1], [0, 1, 0, 1]]], np.float32)  # y > 0 only
    out = rasterize_np(upper, [[0, 1, 2]], (8, 8))
    assert out.mask[0, :4].sum() > 0 and out.mask[0, 4:].sum() == 0


def test_barycentrics_are_perspective_correct():
    clip = TRIANGLE.copy()
    clip[:, :3] *= np.array([[0.5], [2.0], [1.3]], np.float32)
    clip[:, 3] = [0.5, 2.0, 1.3]  # same NDC triangle, different depths along the rays
    out = rasterize_np(clip[None], [[0, 1, 2]], (16, 16))
    expected = oracle_barycentrics(clip, pixel_centres_ndc(16, 16))
    inside = np.all(expected > 0, axis=-1)
    np.testing.assert_array_equal(out.mask[0], inside)
    np.testing.assert_allclose(out.barycentrics[0][inside], expected[inside], atol=1e-6)
    expected_depth = (expected @ clip[:, 2].astype(np.float64)) / (expected @ clip[:, 3].astype(np.float64))
    np.testing.assert_allclose(out.depth[0][inside], expected_depth[inside], atol=1e-6)
    assert np.all(out.depth[0][~inside] == 1.0)


def test_interpolated_camera_points_project_back_to_their_pixel_centres():
    """Perspective-correct interpolation of camera-frame positions lands on each pixel's ray."""
    def build():
        points = tf.constant([[[-0.4, -0.3, 1.0], [0.5, -0.2, 3.0], [0.0, 0.5, 2.0]]], tf.float32)
        clip = renderer.camera.perspective_to_clip(points, 24.0, (8.0, 8.0), (16, 16), near=0.1, far=10.0)
        rasterized = renderer.rasterize(clip, [[0, 1, 2]], (16, 16))
        return rasterized.mask, renderer.interpolate(points, [[0, 1, 2]], rasterized)
    mask, surface = run(build)
    rows, cols = np.nonzero(mask[0])
    assert len(rows) > 20
    x, y, z = surface[0, rows, cols].T
    np.testing.assert_allclose(24.0 * x / z + 8.0, cols + 0.5, atol=1e-4)
    np.testing.assert_allclose(24.0 * y / z + 8.0, rows + 0.5, atol=1e-4)


def overlapping_pair(front_first):
    front = TRIANGLE.copy()
    front[:, 2] = -0.5
    back = TRIANGLE.copy()[[1, 2, 0]]
    back[:, 0] += 0.2
    back[:, 2] = 0.5
    clip = np.concatenate([front, back] if front_first else [back, front])[None]
    return clip, [[0, 1, 2], [3, 4, 5]]


@pytest.mark.parametrize("front_first", [True, False])
def test_the_nearer_of_two_overlapping_triangles_is_visible(front_first):
    clip, triangles = overlapping_pair(front_first)
    out = rasterize_np(clip, triangles, (16, 16))
    front_id = 0 if front_first else 1
    front_only = rasterize_np(clip[:, 3 * front_id:3 * front_id + 3], [[0, 1, 2]], (16, 16))
    covered_by_front = front_only.mask[0] == 1
    assert np.all(out.triangle_ids[0][covered_by_front] == front_id)
    np.testing.assert_allclose(out.depth[0][covered_by_front], -0.5, atol=1e-6)
    back_only = out.mask[0].astype(bool) & ~covered_by_front
    assert back_only.sum() > 0 and np.all(out.triangle_ids[0][back_only] == 1 - front_id)
    np.testing.assert_allclose(out.depth[0][back_only], 0.5, atol=1e-6)


def test_backface_culling_drops_clockwise_triangles_only():
    clockwise = TRIANGLE[[0, 2, 1]]
    ccw_culled = rasterize_np(TRIANGLE[None], [[0, 1, 2]], (16, 16), cull_backfaces=True)
    cw_culled = rasterize_np(clockwise[None], [[0, 1, 2]], (16, 16), cull_backfaces=True)
    cw_kept = rasterize_np(clockwise[None], [[0, 1, 2]], (16, 16), cull_backfaces=False)
    assert ccw_culled.mask.sum() > 40
    assert cw_culled.mask.sum() == 0
    np.testing.assert_array_equal(cw_kept.mask, ccw_culled.mask)


def grid_mesh(rows, cols):
    """A grid covering NDC [-1, 1]^2 whose lines pass through pixel centres and corners."""
    x, y = np.meshgrid(np.linspace(-1, 1, cols + 1), np.linspace(-1, 1, rows + 1))
    vertices = np.stack([x.ravel(), y.ravel(), np.zeros(x.size), np.ones(x.size)], axis=-1)
    index = np.arange(x.size).reshape(rows + 1, cols + 1)
    a, b, c, d = index[:-1, :-1].ravel(), index[:-1, 1:].ravel(), index[1:, :-1].ravel(), index[1:, 1:].ravel()
    triangles = np.concatenate([np.stack([a, b, d], -1), np.stack([a, d, c], -1)])
    return vertices.astype(np.float32), triangles.astype(np.int32)


def test_a_closed_mesh_leaves_no_cracks_even_where_edges_pass_through_pixel_centres():
    vertices, triangles = grid_mesh(8, 8)  # on 12 px, every other grid line passes through pixel centres
    centres = pixel_centres_ndc(12, 12)[0, :, 0]
    assert np.any(np.isclose(centres[:, None], vertices[None, :9, 0], atol=1e-7))
    out = rasterize_np(vertices[None], triangles, (12, 12))
    assert np.all(out.mask == 1)
    np.testing.assert_allclose(out.barycentrics.sum(-1), 1.0, atol=1e-6)


def test_pixels_outside_the_depth_range_are_clipped():
    clip = TRIANGLE.copy()
    clip[:, 2] = [-1.5, 0.0, 0.0]
    out = rasterize_np(clip[None], [[0, 1, 2]], (16, 16))
    expected = oracle_barycentrics(clip, pixel_centres_ndc(16, 16))
    depth = expected @ clip[:, 2].astype(np.float64)
    visible = np.all(expected > 0, axis=-1) & (depth >= -1)
    np.testing.assert_array_equal(out.mask[0], visible)
    assert 0 < visible.sum() < np.all(expected > 0, axis=-1).sum()


def test_a_triangle_crossing_the_eye_plane_draws_only_its_part_in_front():
    clip = TRIANGLE.copy()
    clip[1, :] *= -1.0  # w < 0: vertex 1 is behind the eye
    out = rasterize_np(clip[None], [[0, 1, 2]], (16, 16))
    lam = np.einsum("ij,...j->...i", np.linalg.inv(clip[:, [0, 1, 3]].astype(np.float64).T),
                    np.concatenate([pixel_centres_ndc(16, 16), np.ones((16, 16, 1))], -1))
    in_front = np.all(lam > 0, axis=-1)  # lambda = b / w >= 0 exactly where w > 0 and b >= 0
    assert in_front.sum() > 0
    np.testing.assert_array_equal(out.mask[0], in_front)


def test_a_triangle_reaching_far_outside_the_image_is_rasterized_exactly():
    clip = np.array([[-0.6, -0.7, 0.0, 1.0], [3e37, -0.1, 0.0, 1.0], [-0.2, 0.8, 0.0, 1.0]], np.float32)
    out = rasterize_np(clip[None], [[0, 1, 2]], (16, 16))
    expected = np.all(oracle_barycentrics(clip, pixel_centres_ndc(16, 16)) > 0, axis=-1)
    assert 0 < expected.sum() < 16 * 16
    np.testing.assert_array_equal(out.mask[0], expected)


def test_an_empty_batch_gives_empty_images():
    out = rasterize_np(np.zeros([0, 3, 4], np.float32), [[0, 1, 2]], (5, 7))
    assert out.mask.shape == (0, 5, 7) and out.barycentrics.shape == (0, 5, 7, 3)


def test_a_triangle_wholly_behind_the_eye_is_not_drawn():
    out = rasterize_np(-TRIANGLE[None], [[0, 1, 2]], (16, 16))
    assert out.mask.sum() == 0


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_non_finite_vertices_drop_their_triangles_only(bad_value):
    vertices, triangles = grid_mesh(4, 4)
    vertices[7, 0] = bad_value
    out = rasterize_np(vertices[None], triangles, (16, 16))
    kept = np.nonzero(~np.any(triangles == 7, axis=1))[0]
    expected = rasterize_np(vertices[None], triangles[kept], (16, 16))
    assert 0 < expected.mask.sum() < 16 * 16
    np.testing.assert_array_equal(out.mask, expected.mask)
    np.testing.assert_array_equal(out.triangle_ids[out.mask == 1], kept[expected.triangle_ids[expected.mask == 1]])


@pytest.mark.parametrize("bad_index", [-1, 3, 2 ** 31 - 1])
def test_out_of_range_triangle_index_is_invalid_argument(bad_index):
    with pytest.raises(tf.errors.InvalidArgumentError, match="outside"):
        rasterize_np(TRIANGLE[None], [[0, 1, 2], [0, bad_index, 2]], (8, 8))


@pytest.mark.parametrize("bad_id", [-1, 1])
def test_gradient_op_rejects_triangle_ids_outside_the_mesh(bad_id):
    def build():
        clip = tf.constant(TRIANGLE[None])
        triangles = tf.constant([[0, 1, 2]])
        out = renderer.rasterize(clip, triangles, (8, 8))
        projected = out.barycentrics.op.outputs[4]
        ids = tf.tensor_scatter_nd_update(out.triangle_ids, [[0, 5, 6]], [bad_id])
        return renderer.rasterizer.load_op().rasterize_clip_triangles_grad(
            clip, triangles, projected, ids, out.mask, tf.ones_like(out.barycentrics), tf.zeros([0]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="triangle_ids holds %d" % bad_id):
        run(build)


def test_empty_mesh_is_a_clear_error():
    with pytest.raises(ValueError, match="empty mesh"):
        rasterize_np(TRIANGLE[None], np.zeros([0, 3], np.int32), (8, 8))
    with pytest.raises(ValueError, match="empty mesh"):
        rasterize_np(np.zeros([1, 0, 4], np.float32), [[0, 1, 2]], (8, 8))


def test_empty_mesh_of_unknown_static_shape_is_invalid_argument():
    def build():
        triangles = tf.placeholder_with_default(np.zeros([0, 3], np.int32), [None, 3])
        return renderer.rasterize(tf.constant(TRIANGLE[None]), triangles, (8, 8)).mask
    with pytest.raises(tf.errors.InvalidArgumentError, match="empty mesh"):
        run(build)


@pytest.mark.parametrize("image_size", [(0, 8), (8, 0), (-2, 4), 0, np.int64(0)])
def test_zero_size_image_is_a_clear_error(image_size):
    with pytest.raises(ValueError, match="image_size must be positive"):
        rasterize_np(TRIANGLE[None], [[0, 1, 2]], image_size)


def test_wrong_ranks_are_clear_errors():
    with pytest.raises(ValueError, match=r"clip_vertices must have shape \[batch, vertices, 4\]"):
        rasterize_np(TRIANGLE, [[0, 1, 2]], (8, 8))
    with pytest.raises(ValueError, match=r"clip_vertices must have shape"):
        rasterize_np(TRIANGLE[None, :, :3], [[0, 1, 2]], (8, 8))
    with pytest.raises(ValueError, match=r"triangles must have shape \[triangles, 3\]"):
        rasterize_np(TRIANGLE[None], [0, 1, 2], (8, 8))


def test_wrong_rank_of_unknown_static_shape_is_invalid_argument():
    def build():
        clip = tf.placeholder_with_default(TRIANGLE, None)  # rank 2 at run time
        return renderer.rasterize(clip, [[0, 1, 2]], (8, 8)).mask
    with pytest.raises(tf.errors.InvalidArgumentError, match="clip_vertices must have shape"):
        run(build)


def test_each_batch_element_is_rasterized_independently():
    rng = np.random.default_rng(0)
    vertices, triangles = grid_mesh(5, 7)
    batch = np.repeat(vertices[None], 5, axis=0)
    batch[:, :, :2] += rng.uniform(-0.05, 0.05, batch[:, :, :2].shape).astype(np.float32)
    together = rasterize_np(batch, triangles, (24, 20))
    for b in range(5):
        alone = rasterize_np(batch[b:b + 1], triangles, (24, 20))
        for name in renderer.Rasterized._fields:
            np.testing.assert_array_equal(getattr(together, name)[b], getattr(alone, name)[0], err_msg=name)


def test_interpolate_reproduces_a_linear_attribute_and_is_zero_on_background():
    def build():
        clip = tf.constant(TRIANGLE[None])
        rasterized = renderer.rasterize(clip, [[0, 1, 2]], (16, 16))
        return rasterized.mask, renderer.interpolate(clip[..., :2], [[0, 1, 2]], rasterized)
    mask, ndc = run(build)
    covered = mask[0] == 1
    np.testing.assert_allclose(ndc[0][covered], pixel_centres_ndc(16, 16)[covered], atol=1e-6)
    assert np.all(ndc[0][~covered] == 0)


def test_render_shows_the_background_where_nothing_is_drawn():
    def build():
        colours = tf.constant([[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
        background = tf.fill([1, 16, 16, 3], 0.25)
        out = renderer.render(tf.constant(TRIANGLE[None]), [[0, 1, 2]], colours, (16, 16), background=background)
        return out["image"], out["mask"]
    image, mask = run(build)
    assert mask.shape == (1, 16, 16, 1)
    covered = mask[0, :, :, 0] == 1
    np.testing.assert_allclose(image[0][covered], np.broadcast_to([1.0, 0.0, 0.0], (covered.sum(), 3)), atol=1e-6)
    assert (~covered).sum() > 0
    np.testing.assert_allclose(image[0][~covered], 0.25)


def run_child(code, timeout=120):
    """Runs Python `code` in a child process (so that an abort cannot take pytest down)."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=root)


ABSURD_SIZE_CHILD = """
import numpy as np, tensorflow.compat.v1 as tf
tf.disable_eager_execution()
import renderer
clip = tf.constant(np.repeat(np.array(%r, np.float32)[None], 3, 0))
side = 2 ** 31 - 1
with tf.Session() as session:
    try:
        if %r == "forward":
            session.run(renderer.rasterize(clip, [[0, 1, 2]], (side, side)).mask)
        else:
            grad = renderer.rasterizer.load_op().rasterize_clip_triangles_grad(
                clip, tf.constant([[0, 1, 2]]), tf.zeros([3, 48], tf.int8), tf.zeros([0, side, side], tf.int32),
                tf.zeros([0, side, side]), tf.zeros([0]), tf.zeros([0]))
            session.run(grad)
    except tf.errors.InvalidArgumentError as error:
        print("InvalidArgument:", error.message)
"""


@pytest.mark.parametrize("op", ["forward", "gradient"])
def test_an_absurd_image_size_is_invalid_argument_not_an_abort(op):
    # (2^31 - 1)^2 pixels x 3 images x 3 barycentrics overflows int64: TensorShape would abort.
    result = run_child(ABSURD_SIZE_CHILD % (TRIANGLE.tolist(), op))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("InvalidArgument:"), result.stdout
    assert "barycentrics of shape [3, 2147483647, 2147483647, 3] (4-byte elements) is too large" in result.stdout


@pytest.mark.parametrize("scale", [1e36, 1e37, 1e38, 2e38, 1e-30, 1e-38, 1e-39, 1e-40])
def test_vertices_with_extreme_w_are_drawn_exactly(scale):
    # Scaling a clip-space vertex leaves its projection (and NDC depth) unchanged and changes
    # only its perspective weight; 1/w then is subnormal or zero (large w) or w itself
    # subnormal (small w): both must take the exact path.
    reference = rasterize_np(TRIANGLE[None], [[0, 1, 2]], (16, 16))
    for vertex in ([0], [1, 2], [0, 1, 2]):
        scaled = TRIANGLE.copy()
        scaled[vertex] *= scale
        out = rasterize_np(scaled[None], [[0, 1, 2]], (16, 16))
        assert np.all(np.isfinite(out.barycentrics)) and np.all(np.isfinite(out.depth))
        np.testing.assert_array_equal(out.mask, reference.mask)
        inside = reference.mask[0] == 1
        # Against float64 on the same (scaled) float32 inputs; subnormal inputs keep fewer
        # mantissa bits, so the vertices themselves moved a little from TRIANGLE's.
        expected = oracle_barycentrics(scaled, pixel_centres_ndc(16, 16))
        np.testing.assert_allclose(out.barycentrics[0][inside], expected[inside], atol=1e-5)
        np.testing.assert_allclose(out.depth, reference.depth, atol=2e-5)


def test_a_vertex_near_infinity_gets_the_oracle_barycentrics():
    # w = 3e38 at NDC (0.1, 0.7): 1/w is subnormal (flushed to zero, which put the vertex at
    # the image centre), and the vertex's perspective weight is ~1e-38 of the others'.
    clip = TRIANGLE.copy()
    clip[2] = [0.1 * 3e38, 0.7 * 3e38, 0.0, 3e38]
    out = rasterize_np(clip[None], [[0, 1, 2]], (16, 16))
    expected = oracle_barycentrics(clip, pixel_centres_ndc(16, 16))
    inside = np.all(expected > 0, axis=-1)
    assert inside.sum() > 20
    np.testing.assert_array_equal(out.mask[0], inside.astype(np.float32))
    assert np.all(np.isfinite(out.barycentrics))
    np.testing.assert_allclose(out.barycentrics[0][inside], expected[inside], atol=1e-5)


@pytest.mark.parametrize("triangles", [np.array([[0, 1, 2 + 2 ** 32]], np.int64), [[0, 1, -2 ** 31 - 1]]])
def test_indices_outside_int32_are_refused_not_wrapped(triangles):
    with pytest.raises(ValueError, match="outside int32"):
        run(lambda: renderer.rasterize(TRIANGLE[None], triangles, (8, 8)).mask)


def test_an_int64_index_tensor_is_checked_at_run_time():
    assert run(lambda: renderer.rasterize(TRIANGLE[None], tf.constant([[0, 1, 2]], tf.int64), 8).mask).sum() > 0
    with pytest.raises(tf.errors.InvalidArgumentError, match="outside int32"):
        run(lambda: renderer.rasterize(TRIANGLE[None], tf.constant([[0, 1, 2 + 2 ** 32]], tf.int64), 8).mask)


@pytest.mark.parametrize("triangles", [np.array([[0, 1, 2.7]]), [[0.0, 1.0, 2.0]], np.array([[0, 1, 1]], bool)])
def test_non_integer_indices_are_refused(triangles):
    with pytest.raises(TypeError, match="integer vertex indices"):
        run(lambda: renderer.rasterize(TRIANGLE[None], triangles, (8, 8)).mask)
    with pytest.raises(TypeError, match="integer vertex indices"):
        run(lambda: renderer.rasterize(TRIANGLE[None], tf.constant(np.asarray(triangles, np.float32)), 8).mask)


@pytest.mark.parametrize("image_size", ["64", "6x4", 64.0, (64.0, 64), (8, 8, 3), [8], True, None, 2 ** 31])
def test_image_size_must_be_one_or_two_ints(image_size):
    with pytest.raises(ValueError, match="image_size must be"):
        rasterize_np(TRIANGLE[None], [[0, 1, 2]], image_size)


EYE_PLANE_CHILD = """
import numpy as np, tensorflow.compat.v1 as tf
tf.disable_eager_execution()
import renderer
count, size, f, near, far = 30000, 224, 200.0, 0.1, 10.0
rng = np.random.default_rng(0)
behind = np.stack([rng.uniform(-0.3, 0.3, count), rng.uniform(-0.3, 0.3, count), np.full(count, -0.05)], -1)
front = np.stack([rng.uniform(-0.5, 0.5, count), rng.uniform(-0.5, 0.5, count), np.full(count, 0.3)], -1)
x, y, z = np.stack([behind, front, front + [0.0005, 0.0002, 0.0]], 1).reshape(-1, 3).T
clip = np.stack([2 * f / size * x, -2 * f / size * y, (far + near) / (far - near) * z
                 - 2 * far * near / (far - near), z], -1).astype(np.float32)
placeholder = tf.placeholder(tf.float32, [16, None, 4])
mask = renderer.rasterize(placeholder, np.arange(3 * count).reshape(count, 3), size).mask
with tf.Session() as session:
    print("covered", session.run(mask, {placeholder: np.repeat(clip[None], 16, 0)}).sum())
"""


def test_a_mesh_whose_triangles_all_cross_the_eye_plane_does_not_hang():
    # 16 images of 30,000 thin triangles, each with a vertex behind the eye. Testing every
    # pixel per triangle (as before) took 3.7 s of CPU per image here (60 s in all); the
    # clipped bounds and row spans take 0.04 s. The limit is a hang check with a wide
    # margin, not a speed figure.
    result = run_child(EYE_PLANE_CHILD, timeout=30)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(float(result.stdout.split()[-1])) > 1000
