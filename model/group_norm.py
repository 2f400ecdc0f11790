"""Group normalisation (Wu and He, "Group Normalization", ECCV 2018) of NHWC activations.

One fused C++ op and its gradient op (renderer/kernels/group_norm_core.cc, in the project's op
library): two passes over the activations each way, where the same normalisation written as
TensorFlow ops (tf.nn.moments on a [B, H, W, G, C/G] view and its broadcasts, kept in
tests/tf_reference.py as the oracle) took about as long as the encoder's convolutions
(bench/bench_encoder.py).
"""
import tensorflow.compat.v1 as tf

from renderer.rasterizer import load_op

EPSILON = 1e-5


def group_norm(x, gamma, beta, groups, epsilon=EPSILON, name=None):
    """y = (x - mean) / sqrt(variance + epsilon) * gamma + beta, statistics per image and group.

    Args:
      x: [B, H, W, C] float32; the groups are `groups` runs of C / groups consecutive channels.
      gamma, beta: [C] float32 scale and offset.
      groups: int dividing C.
    Returns:
      [B, H, W, C] float32, differentiable with respect to x, gamma and beta.
    Raises:
      ValueError: a static channel count that `groups` does not divide.
    """
    with tf.name_scope(name, "group_norm", [x, gamma, beta]):
        x = tf.convert_to_tensor(x, tf.float32, name="x")
        channels = x.shape[-1] if x.shape.rank is not None else None
        if channels is not None and channels % groups:
            raise ValueError("group_norm: %d channels do not split into %d groups" % (channels, groups))
        return load_op().fused_group_norm(x, gamma, beta, groups=groups, epsilon=epsilon)[0]


@tf.RegisterGradient("FusedGroupNorm")
def _group_norm_gradient(op, dy, d_mean, d_rstd):
    del d_mean, d_rstd  # the statistics are outputs for the gradient op only
    x, gamma, _ = op.inputs
    _, mean, rstd = op.outputs
    return list(load_op().fused_group_norm_grad(x, gamma, mean, rstd, dy, groups=op.get_attr("groups")))
