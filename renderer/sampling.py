"""Bilinear sampling of images at continuous pixel positions, by a fused C++ op with its gradient
(renderer/kernels/sample_core.cc): model/face/unwrap.py's bilinear_sample.

Written as TensorFlow ops (kept in tests/tf_reference.py as the oracle) a sample took two clamps,
two floors, four batched gathers from the flattened images and the weighted sums, each a
[B, K, C] intermediate, and the gradient scattered four IndexedSlices back into the images: a hot
spot of the fine stage, which unwraps B x 300 x 300 x 6 images at 256^2 texels. The op makes one
pass over the samples each way (bench/bench_sampling.py).
"""
import tensorflow.compat.v1 as tf

from renderer.rasterizer import load_op


def bilinear_sample(images, positions, name=None):
    """Bilinear samples of images at continuous pixel positions, clamped to the image.

    For a position (x, y): x' = clamp(x - 0.5, 0, W - 1), x0 = min(floor(x'), W - 2),
    fx = x' - x0 (y alike) and

        out = (1 - fy) ((1 - fx) I[y0, x0] + fx I[y0, x0 + 1])
              + fy ((1 - fx) I[y0 + 1, x0] + fx I[y0 + 1, x0 + 1]),

    in that order of float operations: bit-identical to the TensorFlow ops formula
    (tests/tf_reference.py's bilinear_sample_tf).

    Args:
      images: [B, H, W, C] float32, H, W >= 2; pixel (r, c) has its centre at (x, y) = (c + 0.5, r + 0.5).
      positions: [B, K, 2] float32 (x, y) pixels, x right, y down (the points_px convention).
    Returns:
      [B, K, C] float32, differentiable in images and positions (piecewise, as bilinear is: the
      position gradient is zero where a coordinate is clamped, tf.clip_by_value's convention,
      the borders included in the range). +-inf positions clamp to the border; a NaN coordinate
      gives NaN in every channel of its sample, a NaN position gradient, and no image gradient.
    Raises:
      ValueError: for wrong static ranks or static images smaller than 2 x 2. Shapes that disagree
      when the graph runs are an InvalidArgumentError.
    """
    with tf.name_scope(name, "bilinear_sample", [images, positions]):
        images = tf.convert_to_tensor(images, tf.float32, name="images")
        positions = tf.convert_to_tensor(positions, tf.float32, name="positions")
        if images.shape.rank is not None:
            if images.shape.rank != 4:
                raise ValueError("images must have shape [batch, height, width, channels], got %s" % images.shape)
            if any(d is not None and d < 2 for d in images.shape[1:3]):
                raise ValueError("images must be at least 2 x 2 pixels, got %s" % images.shape)
        if positions.shape.rank is not None and (positions.shape.rank != 3 or positions.shape[-1] not in (None, 2)):
            raise ValueError("positions must have shape [batch, samples, 2], got %s" % positions.shape)
        return load_op().bilinear_sample(images, positions)


@tf.RegisterGradient("BilinearSample")
def _bilinear_sample_gradient(op, d_output):
    d_images, d_positions = load_op().bilinear_sample_grad(op.inputs[0], op.inputs[1], d_output)
    return [d_images, d_positions]
