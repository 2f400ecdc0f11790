"""Fine stage: the UV displacement map that carries the detail a morphable model cannot.

    photo, coarse render --unwrap (model/face/unwrap.py)--> UV photo, UV coarse render, visibility
      --`network_input`--> [B, S, S, 4] --FineNet (U-Net)--> displacement [B, S, S, 1] mm

The network (`FineNet`) is the paper's U-Net (Chen et al. 2020; its code's layout) for any map size
S = 2^L: all 3 x 3 kernels with biases and no normalisation; a stride-1 convolution to 16
channels, then L stride-2 convolutions (32, 64, 128, 256, 512, 512, ...) down to 1 x 1, each
followed by ReLU; L stride-2 transposed convolutions back up, each followed by ReLU and then
ADDED (not concatenated) to the encoder activation of the same resolution; a final stride-1
transposed convolution to one channel, then tanh, times max_displacement mm. Channel widths are
min(paper width, max_channels): max_channels = PAPER_MAX_CHANNELS gives the paper's ~22 M
parameters at S = 512 (84 MB of float32); the default keeps a checkpoint small enough for a CPU
and for the repository (`parameter_count`).

Differences from the paper, and why:
  * the input has a fourth channel, the unwrapping's visibility mask, so the network can tell a
    texel it sees from one filled from its mirror or the coarse render;
  * the output is scaled by max_displacement (the paper's has no scale: +-1 mm);
  * the last layer starts at zero weights, so the first prediction is exactly 0 (the fine surface
    starts on the coarse one).
"""
import math

import numpy as np
import tensorflow.compat.v1 as tf

SCOPE = "fine"
PAPER_MAX_CHANNELS = 512
# Widths of the paper's layout: level 0 (full resolution) 16, doubling per level up to 512.
_BASE_CHANNELS = 16
NUM_INPUT_CHANNELS = 4


def level_widths(uv_size, max_channels=PAPER_MAX_CHANNELS):
    """Channels of the encoder activation at each level 0..L (level l has side S / 2^l).

    Raises ValueError unless uv_size is a power of two >= 2 and 1 <= max_channels <= 512.
    """
    levels = int(round(math.log2(uv_size))) if uv_size > 0 else 0
    if uv_size < 2 or 2 ** levels != uv_size:
        raise ValueError("the fine network's UV size must be a power of two >= 2, got %r" % (uv_size,))
    if not 1 <= max_channels <= PAPER_MAX_CHANNELS:
        raise ValueError("max_channels must be in [1, %d], got %r" % (PAPER_MAX_CHANNELS, max_channels))
    return [min(_BASE_CHANNELS * 2 ** level, PAPER_MAX_CHANNELS, max_channels) for level in range(levels + 1)]


def parameter_count(uv_size, max_channels=PAPER_MAX_CHANNELS):
    """Number of float parameters of FineNet(uv_size, max_channels) (4 bytes each in a checkpoint)."""
    widths = level_widths(uv_size, max_channels)
    count = 9 * NUM_INPUT_CHANNELS * widths[0] + widths[0]
    for low, high in zip(widths[:-1], widths[1:]):
        count += 2 * 9 * low * high + high + low     # stride-2 conv low->high and its transpose
    return count + 9 * widths[0] + 1


def network_input(uv_photo, uv_coarse, visibility):
    """The network's input: [B, S, S, 4] = (2 P - 1) - (2 R - 1) per RGB channel, then V.

    Args:
      uv_photo: [B, S, S, 3] P, the photo unwrapped, in [0, 1].
      uv_coarse: [B, S, S, 3] R, the coarse render unwrapped the same way, in [0, 1].
      visibility: [B, S, S, 1] V in {0, 1}.
    """
    return tf.concat([2.0 * (uv_photo - uv_coarse), visibility], axis=-1)


def _weights(name, shape, zero=False):
    initializer = (tf.zeros_initializer() if zero
                   else tf.variance_scaling_initializer(2.0, distribution="truncated_normal"))
    return tf.get_variable(name, shape, initializer=initializer)


def _conv(x, channels, stride, name):
    with tf.variable_scope(name):
        kernel = _weights("kernel", [3, 3, int(x.shape[-1]), channels])
        bias = tf.get_variable("bias", [channels], initializer=tf.zeros_initializer())
        return tf.nn.bias_add(tf.nn.conv2d(x, kernel, stride, "SAME"), bias)


def _deconv(x, channels, stride, name, zero=False):
    with tf.variable_scope(name):
        kernel = _weights("kernel", [3, 3, channels, int(x.shape[-1])], zero=zero)
        bias = tf.get_variable("bias", [channels], initializer=tf.zeros_initializer())
        side = int(x.shape[1]) * stride
        shape = tf.stack([tf.shape(x)[0], side, side, channels])
        y = tf.nn.conv2d_transpose(x, kernel, shape, stride, "SAME")
        return tf.nn.bias_add(tf.reshape(y, [-1, side, side, channels]), bias)


class FineNet(object):
    """The U-Net of the module docstring; variables under the scope `fine`.

    Args:
      uv_size: S, a power of two.
      max_channels: cap of every layer's width (PAPER_MAX_CHANNELS: the paper's widths).
      max_displacement: output bound, mm.
    """

    def __init__(self, uv_size, max_channels=PAPER_MAX_CHANNELS, max_displacement=1.0):
        if not max_displacement > 0:
            raise ValueError("max_displacement must be positive, got %r" % (max_displacement,))
        self.uv_size = uv_size
        self.widths = level_widths(uv_size, max_channels)
        self.max_displacement = float(max_displacement)

    def __call__(self, inputs):
        """Displacement map of `network_input`s.

        Args:
          inputs: [B, S, S, 4] float32.
        Returns:
          [B, S, S, 1] float32 in (-max_displacement, max_displacement) mm, outward positive.
        """
        if inputs.shape[1] != self.uv_size or inputs.shape[2] != self.uv_size:
            raise ValueError("fine network built for %d x %d maps, got input %s"
                             % (self.uv_size, self.uv_size, inputs.shape))
        with tf.variable_scope(SCOPE, reuse=tf.AUTO_REUSE):
            x = tf.nn.relu(_conv(inputs, self.widths[0], 1, "conv0"))
            skips = [x]
            for level, channels in enumerate(self.widths[1:], start=1):
                x = tf.nn.relu(_conv(x, channels, 2, "conv%d" % level))
                skips.append(x)
            for level in range(len(self.widths) - 1, 0, -1):
                x = tf.nn.relu(_deconv(x, self.widths[level - 1], 2, "deconv%d" % level)) + skips[level - 1]
            x = _deconv(x, 1, 1, "output", zero=True)
        return self.max_displacement * tf.tanh(x)

    @staticmethod
    def variables():
        """The network's variables (what a fine checkpoint holds)."""
        return tf.global_variables(SCOPE + "/")
