"""The coarse network: its starting point, its learning signal, and the VGG-Face backbone and loader."""
import collections

import numpy as np
import pytest
import scipy.io
import tensorflow.compat.v1 as tf

from model import coarse, vgg_face

tf.disable_eager_execution()

K_ID, K_EXP, K_TEX = 7, 5, 4
# A VGG-Face-shaped network with tiny widths: same layer names, kernel sizes, pools and fc6 7x7.
TINY_WIDTHS = [2, 2, 3, 3, 2, 2, 2, 3, 3, 3, 2, 2, 2]
TINY_FC = (5, 4)


def tiny_vgg_layers(rng):
    layers = collections.OrderedDict()
    channels_in = 3
    for name, width in zip(vgg_face.LAYER_NAMES[:13], TINY_WIDTHS):
        layers[name] = (rng.normal(0, 0.4, (3, 3, channels_in, width)).astype(np.float32),
                        rng.normal(0, 0.1, width).astype(np.float32))
        channels_in = width
    layers["fc6"] = (rng.normal(0, 0.2, (7, 7, channels_in, TINY_FC[0])).astype(np.float32),
                     rng.normal(0, 0.1, TINY_FC[0]).astype(np.float32))
    layers["fc7"] = (rng.normal(0, 0.4, (1, 1, TINY_FC[0], TINY_FC[1])).astype(np.float32),
                     rng.normal(0, 0.1, TINY_FC[1]).astype(np.float32))
    return layers


def write_matconvnet(path, layers, average_rgb, wrap_in_net=False, old_field_names=False):
    """Writes `layers` as MatConvNet simplenn does: a cell array of layer structs (with ReLU, pool and
    classifier layers in between, which the loader must skip) and meta.normalization.averageImage."""
    cells = []
    for name, (kernel, bias) in layers.items():
        if old_field_names:
            cells.append({"name": name, "type": "conv", "filters": kernel, "biases": bias[None, :],
                          "stride": np.array([1.0, 1.0]), "pad": np.array([1.0, 1.0, 1.0, 1.0])})
        else:
            weights = np.empty((1, 2), dtype=object)
            weights[0, 0], weights[0, 1] = kernel, bias[:, None]
            cells.append({"name": name, "type": "conv", "weights": weights,
                          "stride": np.array([1.0, 1.0]), "pad": np.array([1.0, 1.0, 1.0, 1.0])})
        cells.append({"name": "relu" + name[-3:], "type": "relu"})
        if name in vgg_face.POOL_AFTER:
            cells.append({"name": "pool" + name[4], "type": "pool", "method": "max"})
    cells.append({"name": "prob", "type": "softmax"})
    cell_array = np.empty((1, len(cells)), dtype=object)
    for index, cell in enumerate(cells):
        cell_array[0, index] = cell
    meta = {"normalization": {"averageImage": np.asarray(average_rgb, np.float64).reshape(1, 1, 3),
                              "imageSize": np.array([224.0, 224.0, 3.0])}}
    content = {"layers": cell_array, "meta": meta}
    scipy.io.savemat(path, {"net": content} if wrap_in_net else content)


def numpy_vgg(image, layers, average_rgb):
    """Reference relu7 of one [224, 224, 3] image in [0, 1], by direct correlation."""
    x = image.astype(np.float64) * 255.0 - average_rgb
    for name, (kernel, bias) in layers.items():
        kh = kernel.shape[0]
        if name == "fc6":
            padded, out_size = x, x.shape[0] - kh + 1
        else:
            padded, out_size = np.pad(x, ((kh // 2, kh // 2), (kh // 2, kh // 2), (0, 0))), x.shape[0]
        y = np.zeros((out_size, out_size, kernel.shape[3]))
        for i in range(kh):
            for j in range(kh):
                y += padded[i:i + out_size, j:j + out_size] @ kernel[i, j]
        x = np.maximum(y + bias, 0.0)
        if name in vgg_face.POOL_AFTER:
            n = x.shape[0] // 2
            x = x[:2 * n, :2 * n].reshape(n, 2, n, 2, -1).max(axis=(1, 3))
    return x.reshape(-1)


def test_fresh_network_predicts_zero_coefficients_the_mean_face_frontal_and_centred():
    with tf.Graph().as_default(), tf.Session() as session:
        net = coarse.CoarseNet(K_ID, K_EXP, K_TEX)
        images = tf.constant(np.random.default_rng(0).random((2, 224, 224, 3)), tf.float32)
        coeffs = net(images)
        session.run(tf.global_variables_initializer())
        value = session.run(coeffs)
    assert value.shape == (2, K_ID + K_EXP + K_TEX + 6 + 27)
    np.testing.assert_array_equal(value, 0.0)


def test_zero_initialised_heads_still_let_the_backbone_learn():
    """After one step the heads are non-zero, so the backbone receives a gradient."""
    with tf.Graph().as_default(), tf.Session() as session:
        net = coarse.CoarseNet(K_ID, K_EXP, K_TEX)
        images = tf.constant(np.random.default_rng(0).random((2, 224, 224, 3)), tf.float32)
        loss = tf.reduce_sum(tf.square(net(images) - 1.0))
        backbone = [v for v in tf.trainable_variables() if "/compact/" in v.name]
        backbone_gradient = tf.add_n([tf.reduce_sum(tf.abs(g)) for g in tf.gradients(loss, backbone)])
        step = tf.train.AdamOptimizer(1e-3).minimize(loss)
        session.run(tf.global_variables_initializer())
        before = session.run(backbone_gradient)
        session.run(step)
        after = session.run(backbone_gradient)
    assert before == 0.0 and after > 0.0


def test_compact_backbone_has_at_most_resnet18_parameters():
    with tf.Graph().as_default():
        coarse.CoarseNet(K_ID, K_EXP, K_TEX)(tf.zeros([1, 224, 224, 3]))
        count = sum(np.prod(v.shape.as_list()) for v in coarse.CoarseNet.variables())
    assert 0 < count < 11.7e6


def test_unknown_backbone_is_an_error_naming_the_choices():
    with pytest.raises(ValueError, match="compact, vgg_face"):
        coarse.CoarseNet(K_ID, K_EXP, K_TEX, backbone="resnet50")


@pytest.mark.parametrize("wrap_in_net, old_field_names", [(False, False), (True, False), (False, True)])
def test_matconvnet_file_loads_every_layer_and_the_mean_colour(tmp_path, wrap_in_net, old_field_names):
    layers = tiny_vgg_layers(np.random.default_rng(0))
    path = str(tmp_path / "vgg-face.mat")
    write_matconvnet(path, layers, [120.0, 100.0, 90.0], wrap_in_net, old_field_names)
    weights = vgg_face.load_vgg_face_mat(path)
    assert list(weights.layers) == list(vgg_face.LAYER_NAMES)
    for name, (kernel, bias) in layers.items():
        np.testing.assert_array_equal(weights.layers[name][0], kernel)
        np.testing.assert_array_equal(weights.layers[name][1], bias)
    np.testing.assert_allclose(weights.average_rgb, [120.0, 100.0, 90.0])


def test_vgg_face_network_with_loaded_weights_matches_a_direct_computation(tmp_path):
    rng = np.random.default_rng(1)
    layers = tiny_vgg_layers(rng)
    average = np.array([129.0, 105.0, 94.0])
    path = str(tmp_path / "vgg-face.mat")
    write_matconvnet(path, layers, average)
    image = rng.random((224, 224, 3)).astype(np.float32)
    with tf.Graph().as_default(), tf.Session() as session:
        weights = vgg_face.load_vgg_face_mat(path)
        network = vgg_face.VggFace.from_weights("frozen", weights, trainable=False)
        features = network(tf.constant(image[None]))
        session.run(tf.global_variables_initializer())
        network.load(session, weights)
        value = session.run(features)
        assert not tf.trainable_variables()
    expected = numpy_vgg(image, layers, average)
    assert value.shape == (1, TINY_FC[1])
    assert np.abs(expected).max() > 0.0
    np.testing.assert_allclose(value[0], expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())


def test_vgg_face_backbone_starts_from_the_loaded_weights(tmp_path):
    layers = tiny_vgg_layers(np.random.default_rng(2))
    path = str(tmp_path / "vgg-face.mat")
    write_matconvnet(path, layers, [0.0, 0.0, 0.0])
    weights = vgg_face.load_vgg_face_mat(path)
    with tf.Graph().as_default(), tf.Session() as session:
        net = coarse.CoarseNet(K_ID, K_EXP, K_TEX, backbone="vgg_face", vgg_weights=weights)
        coeffs = net(tf.zeros([1, 224, 224, 3]))
        session.run(tf.global_variables_initializer())
        net.init_from_vgg(session)
        fc7 = [v for v in coarse.CoarseNet.variables() if "fc7/kernel" in v.name]
        loaded = session.run(fc7[0])
        assert session.run(coeffs).shape == (1, K_ID + K_EXP + K_TEX + 33)
    np.testing.assert_array_equal(loaded, layers["fc7"][0])


def test_matconvnet_file_missing_a_layer_is_an_error_naming_it(tmp_path):
    layers = tiny_vgg_layers(np.random.default_rng(0))
    del layers["conv4_2"]
    path = str(tmp_path / "broken.mat")
    write_matconvnet(path, layers, [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match=r"broken\.mat.*conv4_2"):
        vgg_face.load_vgg_face_mat(path)


def test_missing_matconvnet_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.mat"):
        vgg_face.load_vgg_face_mat(str(tmp_path / "nowhere.mat"))


def test_overlay_panels_place_input_render_and_landmarks_side_by_side():
    image = np.full((30, 30, 3), 0.5, np.float32)
    render = np.zeros((30, 30, 3), np.float32)
    render[..., 2] = 1.0
    mask = np.zeros((30, 30, 1), np.float32)
    mask[10:20, 10:20] = 1.0
    points = np.array([[5.5, 25.5]] * 68)
    panels = coarse.overlay_panels(image, render, mask, points)
    assert panels.shape == (30, 90, 3) and panels.dtype == np.uint8
    np.testing.assert_array_equal(panels[:, :30], 128)
    np.testing.assert_array_equal(panels[15, 45], [0, 0, 255])
    np.testing.assert_array_equal(panels[5, 35], 128)
    np.testing.assert_array_equal(panels[25, 65], [255, 0, 0])
