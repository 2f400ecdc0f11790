"""The masked photometric distance of each image, by a fused C++ op with its gradient
(renderer/kernels/photometric_core.cc): model/losses.py's photometric_loss.

Written as TensorFlow ops (kept in tests/tf_reference.py as the oracle) the distance took a
difference, square, sum, sqrt, two masked sums and their broadcast gradients over [B, H, W, 3],
about a tenth of the whole face render's op time (bench/bench_face_render.py --top 16); the op
makes one pass over the pixels each way.
"""
import tensorflow.compat.v1 as tf

from renderer.rasterizer import load_op


def photometric_loss_per_image(images, renders, mask, epsilon, name=None):
    """Masked mean per-pixel colour distance of each image:

        L_b = sum_p M_{b,p} sqrt(||I_{b,p} - R_{b,p}||^2 + epsilon) / max(sum_p M_{b,p}, 1)

    Sums run in double, in a fixed order (the same whatever the thread count).

    Args:
      images: [B, H, W, C] float32 I.
      renders: [B, H, W, C] float32 R.
      mask: [B, H, W, 1] float32 M (soft values allowed).
      epsilon: positive float; guards the square root's derivative at I = R.
    Returns:
      [B] float32 L_b (0 for an image with an empty mask), differentiable with respect to
      images, renders and mask (d/dM_{b,p} = (dist_{b,p} - [sum_p M_{b,p} >= 1] L_b) / N_b, with
      tf.maximum's convention on the tie at 1).
    Raises:
      ValueError: for static shapes that disagree or a non-positive epsilon. Shapes that disagree
      when the graph runs are an InvalidArgumentError naming the input.
    """
    epsilon = float(epsilon)
    if not epsilon > 0.0:
        raise ValueError("epsilon must be positive, got %r" % epsilon)
    with tf.name_scope(name, "photometric_loss_per_image", [images, renders, mask]):
        images = tf.convert_to_tensor(images, tf.float32, name="images")
        renders = tf.convert_to_tensor(renders, tf.float32, name="renders")
        mask = tf.convert_to_tensor(mask, tf.float32, name="mask")
        return load_op().photometric_loss(images, renders, mask, epsilon=epsilon)[0]


@tf.RegisterGradient("PhotometricLoss")
def _photometric_loss_gradient(op, d_per_image, d_mask_total):
    del d_mask_total  # an output for the gradient op only
    images, renders, mask = op.inputs
    per_image, mask_total = op.outputs
    d_renders, d_mask = load_op().photometric_loss_grad(
        images, renders, mask, per_image, mask_total, d_per_image, epsilon=op.get_attr("epsilon"))
    # Only computed when asked for (the photos usually are no variable).
    return [tf.negative(d_renders), d_renders, d_mask]
