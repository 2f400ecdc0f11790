"""Self-supervised losses of the coarse stage: small pure functions, one formula each.

Notation: B batch, P pixels of one image, b image index, p pixel, k landmark.
All images are float32 RGB in [0, 1]; masks are float32 in {0, 1} (soft values allowed).
"""
import numpy as np
import tensorflow.compat.v1 as tf

from model.face import landmarks68

# Guards sqrt at zero difference (its derivative is infinite there) and empty masks.
_EPS = 1e-8


def region_mask(segmentation, labels):
    """Pixels whose segmentation label is one of `labels`.

    Args:
      segmentation: [B, H, W] int32 labels (schema of preprocess/schema.py).
      labels: iterable of int labels to keep (the face: skin, nose, brows, lips).
    Returns:
      [B, H, W, 1] float32, 1 where the label is in `labels`.
    """
    segmentation = tf.convert_to_tensor(segmentation, tf.int32)
    keep = tf.zeros_like(segmentation, dtype=tf.bool)
    for label in labels:
        keep = tf.logical_or(keep, tf.equal(segmentation, int(label)))
    return tf.cast(keep, tf.float32)[..., tf.newaxis]


def photometric_loss(images, renders, mask):
    """Masked mean per-pixel colour distance.

        L = sum_{b,p} M_{b,p} ||I_{b,p} - R_{b,p}||_2 / sum_{b,p} M_{b,p}

    with M = rendered coverage x face region of the segmentation (so background, hair, eyes and the
    mouth interior, which the face model does not explain, never pull on it). The per-pixel norm is
    not squared, as in the paper: it is less dominated by outliers such as specular highlights.

    Args:
      images: [B, H, W, 3] the photos.
      renders: [B, H, W, 3] the rendered faces.
      mask: [B, H, W, 1] M.
    Returns:
      scalar float32, in colour units (0 when equal on the mask; 0 when the mask is empty).
    """
    distance = tf.sqrt(tf.reduce_sum(tf.square(images - renders), axis=-1, keepdims=True) + _EPS)
    return tf.reduce_sum(mask * distance) / tf.maximum(tf.reduce_sum(mask), 1.0)


def landmark_weights():
    """Per-point weights w_k of the 68 iBUG landmarks (dlib order), [68] float32.

    1 everywhere except 20 on the nose (points 27-35) and the inner lip contour (60-67): those
    points are precise in both detection and the model and fix the rotation and the mouth opening,
    whereas the jaw contour (0-16) slides along the silhouette with the pose.
    """
    weights = np.ones(landmarks68.NUM_LANDMARKS, dtype=np.float32)
    for group in (landmarks68.NOSE_BRIDGE, landmarks68.NOSE_BASE, landmarks68.INNER_LIPS):
        weights[group] = 20.0
    return weights


def landmark_loss(predicted, target, weights):
    """Weighted mean squared landmark distance.

        L = 1 / (B K) sum_b sum_k w_k ||p_{b,k} - q_{b,k}||^2

    Args:
      predicted: [B, K, 2] projected model landmarks, pixels.
      target: [B, K, 2] detected (or ground-truth) landmarks, same pixels.
      weights: [K] w_k (see `landmark_weights`).
    Returns:
      scalar float32, pixels^2.
    """
    squared = tf.reduce_sum(tf.square(predicted - target), axis=-1)
    return tf.reduce_mean(squared * tf.convert_to_tensor(weights, tf.float32))


def coefficient_regularization(identity, expression, albedo, id_weight, exp_weight, tex_weight):
    """Gaussian prior on the morphable-model coefficients (which are in standard deviations).

        L = 1 / B sum_b (w_id ||alpha_b||^2 + w_exp ||beta_b||^2 + w_tex ||delta_b||^2)

    Args:
      identity: [B, K_id] alpha; expression: [B, K_exp] beta; albedo: [B, K_tex] delta.
      id_weight, exp_weight, tex_weight: float w_id, w_exp, w_tex.
    Returns:
      scalar float32.
    """
    def mean_squared_norm(x):
        return tf.reduce_mean(tf.reduce_sum(tf.square(x), axis=-1))
    return (id_weight * mean_squared_norm(identity) + exp_weight * mean_squared_norm(expression)
            + tex_weight * mean_squared_norm(albedo))


def perceptual_loss(features_a, features_b):
    """Facial perceptual loss: mean cosine distance of deep face features.

        L = 1 / B sum_b (1 - <f_b, g_b> / (||f_b|| ||g_b||))

    Args:
      features_a: [B, F] features of the photos (frozen VGG-Face relu7).
      features_b: [B, F] features of the renders composited over the photos.
    Returns:
      scalar float32 in [0, 2].
    """
    dot = tf.reduce_sum(features_a * features_b, axis=-1)
    norms = tf.norm(features_a, axis=-1) * tf.norm(features_b, axis=-1)
    return tf.reduce_mean(1.0 - dot / (norms + _EPS))
