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
