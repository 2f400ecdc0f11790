"""The fine stage: U-Net shapes and size, start and bounds of its output."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from model import fine

tf.disable_eager_execution()


@pytest.mark.parametrize("size", [64, 256])
def test_fine_net_maps_an_s_by_s_input_to_one_channel(size):
    with tf.Graph().as_default():
        net = fine.FineNet(size, max_channels=32)
        output = net(tf.zeros([2, size, size, fine.NUM_INPUT_CHANNELS]))
        assert output.shape.as_list() == [2, size, size, 1]
        # log2 S stride-2 levels below the full-resolution one.
        assert len(net.widths) == int(np.log2(size)) + 1


def test_paper_widths_give_about_22_million_parameters_at_512():
    assert fine.level_widths(512) == [16, 32, 64, 128, 256, 512, 512, 512, 512, 512]
    with tf.Graph().as_default():
        fine.FineNet(512)(tf.zeros([1, 512, 512, fine.NUM_INPUT_CHANNELS]))
        count = sum(int(np.prod(v.shape)) for v in fine.FineNet.variables())
    assert count == fine.parameter_count(512)
    assert 21.5e6 < count < 22.5e6


def test_channel_cap_limits_every_width_and_the_checkpoint_size():
    assert max(fine.level_widths(256, 128)) == 128
    assert fine.parameter_count(512, 320) * 4 <= 50 * 2 ** 20
    with pytest.raises(ValueError, match="power of two"):
        fine.level_widths(48)
    with pytest.raises(ValueError, match="max_channels"):
        fine.level_widths(64, 1024)


def test_first_prediction_is_zero_and_every_prediction_is_bounded():
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((2, 32, 32, fine.NUM_INPUT_CHANNELS)).astype(np.float32)
    with tf.Graph().as_default(), tf.Session() as session:
        net = fine.FineNet(32, max_channels=32, max_displacement=1.5)
        output = net(tf.constant(inputs))
        session.run(tf.global_variables_initializer())
        assert np.all(session.run(output) == 0.0)
        # Large weights everywhere: the tanh bound holds.
        session.run([v.assign(10.0 * tf.ones_like(v)) for v in net.variables()])
        value = session.run(output)
    assert np.all(np.abs(value) <= 1.5) and np.abs(value).max() > 1.0


def test_bfloat16_network_matches_float32_to_its_rounding_and_trains_the_same_float32_variables():
    rng = np.random.default_rng(1)
    inputs = rng.uniform(-1, 1, (2, 32, 32, fine.NUM_INPUT_CHANNELS)).astype(np.float32)
    with tf.Graph().as_default(), tf.Session() as session:
        precise = fine.FineNet(32, max_channels=16, max_displacement=1.0)
        low = fine.FineNet(32, max_channels=16, max_displacement=1.0, precision="bfloat16")
        x = tf.constant(inputs)
        outputs = [precise(x), low(x)]                 # the same variables (scope `fine`, reused)
        assert outputs[1].dtype == tf.float32
        # The full-resolution layers (conv0 and the output) stay float32; the inner ones are bfloat16.
        convolutions = [op for op in tf.get_default_graph().get_operations()
                        if op.type in ("Conv2D", "Conv2DBackpropInput") and op.name.startswith("fine_1/")]
        arithmetic = {op.name.split("/")[1]: op.outputs[0].dtype for op in convolutions}
        assert arithmetic.pop("conv0") == tf.float32 and arithmetic.pop("output") == tf.float32
        assert arithmetic and set(arithmetic.values()) == {tf.bfloat16}
        variables = fine.FineNet.variables()
        assert all(v.dtype.base_dtype == tf.float32 for v in variables)
        gradients = [tf.gradients(tf.reduce_sum(tf.square(y - 0.1)), variables) for y in outputs]
        session.run(tf.global_variables_initializer())
        # Non-zero output layer (it starts at zero) and a moderate scale so the tanh is not saturated.
        session.run([v.assign(0.2 * v + 0.01) for v in variables])
        (f32, b16), (g32, g16) = session.run([outputs, gradients])
    scale = np.abs(f32).max()
    assert scale > 0.05
    # bfloat16 keeps 8 significant bits: ~0.4% per rounding, a few % through the network's depth.
    assert np.abs(b16 - f32).max() < 0.05 * scale
    assert np.abs(b16 - f32).max() > 0.0             # it really is another arithmetic
    for a, b in zip(g32, g16):
        assert b is not None and a.shape == b.shape
        cosine = np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30)
        assert cosine > 0.98
    with pytest.raises(ValueError, match="precision"):
        fine.FineNet(32, precision="float16")


# ---------------------------------------------------------------------------- forward path

from model import coarse  # noqa: E402
from model.face import FaceModel  # noqa: E402
from model.face.uv_layout import UVLayout  # noqa: E402

UV_SIZE = 32
IMAGE_SIZE = 64


@pytest.fixture(scope="module")
def face_model():
    return FaceModel()


@pytest.fixture(scope="module")
def layout(face_model):
    return UVLayout(face_model, UV_SIZE)


def some_coefficients(face_model, batch=2):
    rng = np.random.default_rng(3)
    coeffs = np.zeros((batch, face_model.coeff_size), np.float32)
    parts = face_model.coefficient_slices()
    coeffs[:, parts["identity"]] = 0.5 * rng.standard_normal((batch, face_model.k_id))
    coeffs[:, parts["pose"].start + 1] = [0.0, 0.4][:batch]
    coeffs[:, parts["light"].start + 5] = 0.3
    return coeffs


def decode(face_model, layout, displacement, direction="normal"):
    with tf.Graph().as_default(), tf.Session() as session:
        coeffs = tf.constant(some_coefficients(face_model, len(displacement)))
        model = coarse.CoarseModel(face_model, None, render_size=IMAGE_SIZE)
        coarse_outputs = model.decode(coeffs, tf.zeros([len(displacement), 300, 300, 3]))
        fine_model = fine.FineModel(face_model, layout, None, direction)
        fine_outputs = fine_model.decode(coarse_outputs, tf.constant(displacement, tf.float32), IMAGE_SIZE)
        return session.run(dict(coarse=dict(vertices=coarse_outputs["vertices"], render=coarse_outputs["render"],
                                             mask=coarse_outputs["mask"]),
                                fine={k: v for k, v in fine_outputs.items() if k != "triangles"}))


def test_zero_displacement_puts_the_dense_mesh_on_the_coarse_surface(face_model, layout):
    result = decode(face_model, layout, np.zeros((2, UV_SIZE, UV_SIZE, 1), np.float32))
    dense = result["fine"]["dense_vertices"]
    # Oracle: distance of each dense vertex to the plane of its texel's coarse triangle, and
    # barycentric coordinates inside it.
    ids = layout.triangle_id.ravel()[layout.dense_texels]
    corners = result["coarse"]["vertices"][:, face_model.triangles[ids]]            # [B, M, 3, 3]
    normal = np.cross(corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0])
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    distance = np.abs(((dense - corners[:, :, 0]) * normal).sum(-1))
    assert distance.max() < 1e-3                                                     # mm
    np.testing.assert_allclose(dense, result["fine"]["dense_base"], atol=0)
    # The detailed face renders as the coarse one (shading differs only by where the normals are
    # interpolated: per texel instead of per pixel between vertex colours).
    both = (result["fine"]["mask"] * result["coarse"]["mask"])[..., 0] > 0
    assert both.sum() > 0.95 * (result["coarse"]["mask"][..., 0] > 0).sum()
    difference = np.abs(result["fine"]["render"] - result["coarse"]["render"]).max(-1)[both]
    assert np.median(difference) < 0.01


@pytest.mark.parametrize("direction", ["normal", "z"])
def test_a_constant_displacement_moves_the_dense_mesh_by_that_much(face_model, layout, direction):
    displacement = np.full((1, UV_SIZE, UV_SIZE, 1), 0.5, np.float32)
    result = decode(face_model, layout, displacement, direction)["fine"]
    step = result["dense_vertices"] - result["dense_base"]
    np.testing.assert_allclose(np.linalg.norm(step, axis=-1), 0.5, rtol=1e-5)
    if direction == "z":
        np.testing.assert_allclose(step[..., :2], 0.0, atol=1e-6)
    else:
        np.testing.assert_allclose(step / 0.5, result["dense_coarse_normals"], atol=1e-5)


def folds(size, amplitude=1.0, frequency=40.0):
    """A displacement map of criss-cross folds, mm."""
    rows, cols = np.mgrid[0:size, 0:size] / float(size)
    return (amplitude * np.sin(frequency * rows) * np.cos(frequency * cols)).astype(np.float32)[None, :, :, None]


@pytest.mark.slow
def test_fine_steps_lower_the_fine_loss_and_leave_the_coarse_network_alone(face_model, layout):
    with tf.Graph().as_default(), tf.Session() as session:
        tf.set_random_seed(0)
        coarse_net = coarse.CoarseNet(face_model.k_id, face_model.k_exp, face_model.k_tex)
        coarse_model = coarse.CoarseModel(face_model, coarse_net, render_size=IMAGE_SIZE)
        coarse_outputs = coarse_model.forward(tf.fill([2, 300, 300, 3], 0.5))
        fine_model = fine.FineModel(face_model, layout, fine.FineNet(UV_SIZE, max_channels=32, max_displacement=2.0))
        photos = tf.placeholder(tf.float32, [2, IMAGE_SIZE, IMAGE_SIZE, 3])
        fine_outputs = fine_model.forward(coarse_outputs, photos)
        terms = fine_model.losses(photos, coarse_outputs["mask"], coarse_outputs, fine_outputs, fine.PAPER_WEIGHTS)
        train_op = tf.train.AdamOptimizer(1e-3).minimize(terms["total"], var_list=fine.FineNet.variables())
        truth = fine_model.decode(coarse_outputs, tf.constant(folds(UV_SIZE) * layout.taper[None, :, :, None]),
                                  IMAGE_SIZE)
        session.run(tf.global_variables_initializer())
        # A "restored" coarse network: its light head lights the face from the side, so that the
        # detail shows in the shading.
        light = np.zeros((9, 3), np.float32)
        light[2], light[3] = 0.3, 0.5
        with tf.variable_scope(coarse.SCOPE, reuse=True):
            session.run(tf.get_variable("head_light/bias").assign(light.ravel()))
        # The photos: the coarse face with the detail layer, over grey.
        images = session.run(truth["render"] + (1.0 - truth["mask"]) * 0.5)
        feed = {photos: images}
        coarse_before = session.run(coarse.CoarseNet.variables())
        first = session.run(terms, feed)
        assert all(np.isfinite(v) for v in first.values())
        for _ in range(15):
            session.run(train_op, feed)
        last = session.run(terms, feed)
        coarse_after = session.run(coarse.CoarseNet.variables())
    assert last["photometric"] < 0.9 * first["photometric"]
    assert last["total"] < first["total"]
    for before, after in zip(coarse_before, coarse_after):
        np.testing.assert_array_equal(before, after)


def test_summary_panels_show_input_renders_uv_photo_and_displacement():
    image = np.full((8, 8, 3), 0.2, np.float32)
    render = np.full((8, 8, 3), 0.6, np.float32)
    mask = np.zeros((8, 8, 1), np.float32)
    mask[2:6, 2:6] = 1.0
    uv_photo = np.full((4, 4, 3), 1.0, np.float32)
    displacement = np.full((4, 4, 1), -2.0, np.float32)
    displacement[:, 2:] = 2.0
    panels = fine.summary_panels(image, render, mask, render, 0 * mask, uv_photo, displacement, 2.0)
    assert panels.shape == (8, 40, 3) and panels.dtype == np.uint8
    assert panels[0, 0, 0] == 51 and panels[3, 11, 0] == 153 and panels[0, 8, 0] == 51   # input, coarse over input
    assert panels[3, 19, 0] == 51                                                        # fine mask empty
    assert np.all(panels[:, 24:32] == 255)                                               # UV photo
    assert np.all(panels[:, 32:36] == 0) and np.all(panels[:, 36:40] == 255)             # -2 mm black, +2 mm white


def test_band_limited_fine_net_cannot_output_a_constant_map_and_keeps_its_detail():
    """highpass_sigma > 0: the map is the bounded output minus its blur, so a constant offset (the
    lowest frequency) is removed and a texel-scale pattern passes."""
    size = 16
    with tf.Graph().as_default(), tf.Session() as session:
        inputs = tf.placeholder(tf.float32, [1, size, size, fine.NUM_INPUT_CHANNELS])
        free = fine.FineNet(size, max_channels=8, max_displacement=1.0)(inputs)
        limited = fine.FineNet(size, max_channels=8, max_displacement=1.0, highpass_sigma=2.0)(inputs)
        session.run(tf.global_variables_initializer())
        with tf.variable_scope(fine.SCOPE, reuse=True):
            session.run(tf.get_variable("output/bias").assign([0.5]))
        feed = {inputs: np.zeros((1, size, size, fine.NUM_INPUT_CHANNELS), np.float32)}
        np.testing.assert_allclose(session.run(free, feed), np.tanh(0.5), rtol=1e-5)
        np.testing.assert_allclose(session.run(limited, feed), 0.0, atol=1e-5)
    with pytest.raises(ValueError):
        fine.FineNet(size, highpass_sigma=-1.0)
