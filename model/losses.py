"""Self-supervised losses of both stages: small pure functions, one formula each.

Notation: B batch, P pixels of one image, b image index, p pixel, k landmark.
All images are float32 RGB in [0, 1]; masks are float32 in {0, 1} (soft values allowed).
"""
import numpy as np
import tensorflow.compat.v1 as tf

from model.face import landmarks68
from model.face.model import clip_to_unit
from renderer.photometric import photometric_loss_per_image

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
    """Masked mean per-pixel colour distance of each image, averaged over the batch.

        L = 1/B sum_b [ sum_p M_{b,p} ||I_{b,p} - R_{b,p}||_2 / max(sum_p M_{b,p}, 1) ]

    with M = rendered coverage x face region of the segmentation (so background, hair, eyes and the
    mouth interior, which the face model does not explain, never pull on it). The per-pixel norm is
    not squared, as in the paper: it is less dominated by outliers such as specular highlights.
    Each image is normalised by its own mask, so every image counts the same and the loss of a
    batch is the mean of its samples' losses: the mean over equal slices of a batch (in-graph
    towers, model/training.py) is the whole batch's loss. (Before towers existed the normaliser was
    the whole batch's mask, which weighted faces by their area; identical for one image.)

    The norm is sqrt(||.||^2 + 1e-8) (finite gradient at zero difference). Computed by a fused C++ op
    with its gradient (renderer/photometric.py; sums in double): one pass over the pixels each way,
    where the same formula as TensorFlow ops (kept in tests/tf_reference.py as the oracle) was about
    a tenth of the whole face render's op time. Differentiable with respect to all three inputs (the
    mask carries the coverage's gradient where it has one).

    Args:
      images: [B, H, W, 3] the photos.
      renders: [B, H, W, 3] the rendered faces.
      mask: [B, H, W, 1] M.
    Returns:
      scalar float32, in colour units (0 when equal on the mask; an image with an empty mask adds 0).
    """
    return tf.reduce_mean(photometric_loss_per_image(images, renders, mask, _EPS))


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


def mirrored_vertices(vertices, mirror):
    """The mirror image of a face model's vertices [B, N, 3] (model frame, mm): vertex i of the
    mirrored face is vertex mirror[i] with x -> -x (mirror: the face model's twin index [N]). What
    a horizontally flipped crop shows (model/data.py augment_sample)."""
    return tf.gather(vertices, mirror, axis=1) * tf.constant([-1.0, 1.0, 1.0], vertices.dtype)


def supervised_shape_loss(predicted, target, present):
    """Synthetic supervision of the shape (NOT in the paper, which had no ground truth): the mean
    squared distance between predicted and ground-truth vertices in the face model's frame
    (identity and expression; pose, scale and light play no part), over the samples that carry
    ground truth.

        L = 1/B sum_b present_b * 1/N sum_i ||P_{b,i} - T_{b,i}||^2

    Divided by the batch size B, not by the samples present, so that the mean over equal slices
    of a batch (in-graph towers) is the whole batch's loss, as for the other terms.

    Args:
      predicted, target: [B, N, 3] mm (model frame).
      present: [B] 1 for a sample with ground truth, 0 for one without (a photo).
    Returns:
      scalar float32, mm^2 (0 at the ground truth).
    """
    per_sample = tf.reduce_mean(tf.reduce_sum(tf.square(predicted - target), axis=-1), axis=-1)
    return tf.reduce_mean(per_sample * tf.cast(present, per_sample.dtype))


def supervised_displacement_loss(predicted, target, mask, present):
    """Synthetic supervision of the detail (NOT in the paper): the mean squared difference of the
    predicted and ground-truth displacement maps over the detail mask, over the samples that
    carry ground truth, divided by the batch size (as supervised_shape_loss).

        L = 1/B sum_b present_b * sum_t M_{b,t} (D_{b,t} - G_{b,t})^2 / sum_t M_{b,t}

    Args:
      predicted, target: [B, S, S, 1] mm.
      mask: [1, S, S, 1] the detail mask (0/1), or [B, S, S, 1] a mask per sample (each sample's
        sum is over its own mask's texels).
      present: [B] 1 for a sample with ground truth, 0 for one without.
    Returns:
      scalar float32, mm^2.
    """
    per_sample = (tf.reduce_sum(mask * tf.square(predicted - target), axis=[1, 2, 3])
                  / tf.maximum(tf.reduce_sum(mask, axis=[1, 2, 3]), 1.0))
    return tf.reduce_mean(per_sample * tf.cast(present, per_sample.dtype))


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


# ---------------------------------------------------------------------------- fine stage
#
# The detail layer's losses (Chen et al. 2020, section III-C; weights and dead zones as in the
# paper's code, see train.py's flags). Notation beyond the above: M dense-mesh vertices m,
# F dense triangles f, E directed vertex neighbour pairs, c channel, S x S UV map with texels t.

# Cap of the squared displacement terms (mm^2): a few outliers (a texel dragged by a specular
# highlight) cannot dominate, as in the paper's code.
DISPLACEMENT_CAP = 10.0


def composite_render(images, renders, render_mask):
    """C = A clip(R, 0, 1) + (1 - A) I: a render over the photo, clipped to the photo's range.

    The SH shading is not clipped (it is negative on the far side of a strong directional light,
    and above 1 in highlights) while a photo is, by its 8 bits: comparing the unclipped render
    would make every such pixel a large residual (~65 levels on the shadowed half of a face, for
    the ground-truth face itself) that no geometry can explain, and the detail's gradient there
    would push the shading toward the clip. Clipped, those pixels compare equal and pass no
    gradient.
    """
    return render_mask * clip_to_unit(renders) + (1.0 - render_mask) * images


def fine_photometric_loss(images, renders, render_mask, skin_mask):
    """Photometric L2,1 of the fine render composited over the photo, on a 0-255 scale.

        C = A clip(R, 0, 1) + (1 - A) I                 (`composite_render`)
        L = 1 / B sum_b [ sum_p S_{b,p} ||255 (I_{b,p} - C_{b,p})||_2 / sum_p S_{b,p} ]

    A the fine render's coverage, S the skin mask (segmentation skin region, soft values allowed).
    Normalised per image, then averaged over the batch, as the paper's code; a pixel of S that the
    render does not cover compares the photo with itself (0), so the loss cannot be lowered by
    shrinking the render.

    Args:
      images: [B, H, W, 3] photos in [0, 1].
      renders: [B, H, W, 3] fine renders in [0, 1].
      render_mask: [B, H, W, 1] A.
      skin_mask: [B, H, W, 1] S.
    Returns:
      scalar float32, 0-255 colour units (0 where C = I on S; an image with an empty S adds 0).
    """
    composited = composite_render(images, renders, render_mask)
    distance = tf.sqrt(tf.reduce_sum(tf.square(255.0 * (images - composited)), axis=-1, keepdims=True) + _EPS)
    per_image = (tf.reduce_sum(skin_mask * distance, axis=[1, 2, 3])
                 / tf.maximum(tf.reduce_sum(skin_mask, axis=[1, 2, 3]), 1.0))
    return tf.reduce_mean(per_image)


def displacement_magnitude_loss(values, mask, cap=DISPLACEMENT_CAP):
    """Capped mean square of a displacement-like quantity over a mask.

        L = 1 / B sum_b [ sum_{i,c} M_{b,i} min(x_{b,i,c}^2, cap) / sum_i M_{b,i} ]

    The fine stage uses it four times (the paper's `disp_loss`): on the displacement map over the
    detail mask (`disp`), on the rendered depth difference fine - coarse over the fine render's
    coverage (`render_disp`), on the displacement inside eyes, nose and brows (`disp_eyebrow_nose`),
    and on the fine minus the coarse vertex normals (`disp_normal`, C = 3: |dn|^2 summed over xyz).

    Args:
      values: [B, ..., C] x (mm, or unitless for normals).
      mask: [B, ..., 1] M, same leading shape.
      cap: the clip of each squared element.
    Returns:
      scalar float32 (0 at x = 0; 0 for an empty mask).
    """
    values = tf.convert_to_tensor(values, tf.float32)
    mask = tf.convert_to_tensor(mask, tf.float32)
    axes = list(range(1, values.shape.ndims))
    squared = tf.minimum(tf.square(values), cap)
    per_image = tf.reduce_sum(mask * squared, axis=axes) / tf.maximum(tf.reduce_sum(mask, axis=axes), _EPS)
    return tf.reduce_mean(per_image)


def neighbour_pairs(triangles, num_vertices):
    """Directed vertex neighbour pairs of a triangle mesh (NumPy, built once per topology).

    Args:
      triangles: [F, 3] int vertex ids; num_vertices: V.
    Returns:
      int32 [E, 2] rows (vertex, neighbour), each undirected edge in both directions once,
      sorted by vertex.
    """
    triangles = np.asarray(triangles, dtype=np.int64)
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    both = np.concatenate([edges, edges[:, ::-1]])
    if len(both) and (both.min() < 0 or both.max() >= num_vertices):
        raise ValueError("triangle vertex ids out of range [0, %d)" % num_vertices)
    return np.unique(both, axis=0).astype(np.int32)


def adjacent_triangle_pairs(triangles):
    """Pairs of triangles sharing an edge (NumPy, built once per topology).

    Args:
      triangles: [F, 3] int vertex ids.
    Returns:
      int32 [P, 2] triangle ids (f, g), f < g, one row per shared edge of a manifold mesh (an edge
      of k > 2 triangles gives the pairs of consecutive ones).
    """
    triangles = np.asarray(triangles, dtype=np.int64)
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    edges = np.sort(edges, axis=1)
    owner = np.tile(np.arange(len(triangles)), 3)
    order = np.lexsort((owner, edges[:, 1], edges[:, 0]))
    edges, owner = edges[order], owner[order]
    same = np.all(edges[1:] == edges[:-1], axis=1)
    return np.stack([owner[:-1][same], owner[1:][same]], axis=1).astype(np.int32)


def laplacian_smoothness_loss(attributes, pairs, dead_zone):
    """Dead-zone Laplacian smoothness of per-vertex attributes (positions or normals).

        L = 1 / (B V C) sum_{b,v,c} max((mean_{u in N(v)} x_{b,u,c} - x_{b,v,c})^2 - dz, 0)

    The paper's code writes mean(max(e, dz)); this is that minus the constant dz (same gradient,
    0 at the minimum). Deviations below the dead zone are free, so detail at the scale the
    photometric loss asks for is not flattened; the paper uses dz = 0.2 mm^2 on dense vertices
    and dz = 1e-3 on vertex normals.

    Args:
      attributes: [B, V, C] x.
      pairs: int32 [E, 2] (vertex, neighbour) rows (`neighbour_pairs`); a vertex without neighbours
        compares with 0 neighbours' mean (0) and should not occur.
      dead_zone: dz, in squared attribute units.
    Returns:
      scalar float32 (0 when every vertex is within sqrt(dz) of its neighbours' mean per channel).
    """
    pairs = np.asarray(pairs, dtype=np.int32)
    attributes = tf.convert_to_tensor(attributes, tf.float32)
    num_vertices = int(attributes.shape[1])
    counts = np.maximum(np.bincount(pairs[:, 0], minlength=num_vertices), 1)
    # mean_neighbour - x = L x with the sparse L = D^-1 A - I (A the adjacency of `pairs`, D its
    # degrees), one sparse matmul over the vertices (forward and gradient) instead of a gather
    # and a segment sum (tests/test_fine_losses.py keeps that formulation as the oracle).
    diagonal = np.arange(num_vertices)
    laplacian = _sparse_matrix(np.concatenate([pairs[:, 0], diagonal]), np.concatenate([pairs[:, 1], diagonal]),
                               np.concatenate([1.0 / counts[pairs[:, 0]], -np.ones(num_vertices)]),
                               (num_vertices, num_vertices))
    difference = tf.sparse.sparse_dense_matmul(laplacian, _vertex_major(attributes))       # [V, B C]
    return tf.reduce_mean(tf.nn.relu(tf.square(difference) - dead_zone))


def _sparse_matrix(rows, cols, values, shape):
    """A constant float32 tf.SparseTensor of the given entries (duplicates summed), in row-major order."""
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    flat = rows * shape[1] + cols
    unique, inverse = np.unique(flat, return_inverse=True)
    summed = np.bincount(inverse.ravel(), weights=np.asarray(values, np.float64), minlength=len(unique))
    indices = np.stack([unique // shape[1], unique % shape[1]], axis=1)
    return tf.SparseTensor(indices, summed.astype(np.float32), shape)


def _vertex_major(values):
    """[B, N, C] -> [N, B C] (the layout a sparse matmul over the N rows takes)."""
    return tf.reshape(tf.transpose(values, [1, 0, 2]), [int(values.shape[1]), -1])


def triangle_smoothness_loss(triangle_attributes, pairs, dead_zone):
    """Dead-zone smoothness over edge-adjacent triangles (the paper's face-normal term).

        L = 1 / (B P C) sum_{b,(f,g),c} max((y_{b,f,c} - y_{b,g,c})^2 - dz, 0)

    As `laplacian_smoothness_loss`, the paper's mean(max(e, dz)) minus dz; dz = 1e-4 on unit
    triangle normals.

    Args:
      triangle_attributes: [B, F, C] y (unit face normals).
      pairs: int32 [P, 2] (`adjacent_triangle_pairs`).
      dead_zone: dz.
    Returns:
      scalar float32 (0 when all adjacent triangles agree within sqrt(dz) per channel).
    """
    pairs = np.asarray(pairs, dtype=np.int32)
    triangle_attributes = tf.convert_to_tensor(triangle_attributes, tf.float32)
    count = len(pairs)
    # y_f - y_g of every pair as one sparse matmul (a +1 and a -1 per row) over the triangles,
    # instead of two gathers and their scatter gradients (oracle in tests/test_fine_losses.py).
    difference_matrix = _sparse_matrix(np.repeat(np.arange(count), 2), pairs.ravel(), np.tile([1.0, -1.0], count),
                                       (count, int(triangle_attributes.shape[1])))
    difference = tf.sparse.sparse_dense_matmul(difference_matrix, _vertex_major(triangle_attributes))
    return tf.reduce_mean(tf.nn.relu(tf.square(difference) - dead_zone))


def uv_smoothness_loss(uv_map):
    """First-difference smoothness of a UV map, along rows, columns and both diagonals.

        L = mean (d_{r,c+1} - d_{r,c})^2 + mean (d_{r+1,c} - d_{r,c})^2
          + mean (d_{r+1,c+1} - d_{r,c})^2 + mean (d_{r+1,c-1} - d_{r,c})^2

    each mean over all texel pairs of that direction, batch and channels (the whole map, as the
    paper's code; outside the detail mask the map is tapered to 0 before it is used).

    Args:
      uv_map: [B, S, S, C] d (mm).
    Returns:
      scalar float32, mm^2 (0 for a constant map).
    """
    d = tf.convert_to_tensor(uv_map, tf.float32)
    channels = int(d.shape[-1])

    def difference(kernel):
        # Each difference as a VALID convolution with a +-1 kernel per channel: the same values as
        # slicing (two terms, exact signs), and a gradient ~3 x cheaper than StridedSliceGrad's
        # (bench/bench_render.py; the slicing formulation is the oracle in tests/tf_reference.py).
        weights = np.zeros(kernel.shape + (channels, channels), np.float32)
        for c in range(channels):
            weights[..., c, c] = kernel
        return tf.nn.conv2d(d, weights, 1, "VALID")
    return (tf.reduce_mean(tf.square(difference(np.array([[-1.0, 1.0]]))))
            + tf.reduce_mean(tf.square(difference(np.array([[-1.0], [1.0]]))))
            + tf.reduce_mean(tf.square(difference(np.array([[-1.0, 0.0], [0.0, 1.0]]))))
            + tf.reduce_mean(tf.square(difference(np.array([[0.0, -1.0], [1.0, 0.0]])))))


def symmetry_loss(uv_map, visibility, mirror_texel, mask):
    """Soft symmetry of the map on the side the camera does not see (DECA's detail symmetry term).

        L = sum_{b,t} W_{b,t} |d_{b,t} - d_{b,mirror(t)}| / sum_{b,t} W_{b,t},
        W = mask (1 - visibility)

    A hidden texel gets no photometric signal; this lets it copy its visible mirror twin's detail
    instead of whatever the smoothness terms leave there.

    Args:
      uv_map: [B, S, S, 1] d (mm).
      visibility: [B, S, S, 1] in [0, 1] (unwrapping's visibility mask).
      mirror_texel: int [S, S] flat index (r S + c) of each texel's mirror texel.
      mask: [S, S] or [B, S, S, 1] detail mask.
    Returns:
      scalar float32, mm (0 for a mirror-symmetric map; 0 when every masked texel is visible).
    """
    size = int(uv_map.shape[1])
    flat = tf.reshape(uv_map, [-1, size * size, 1])
    mirrored = tf.reshape(tf.gather(flat, np.asarray(mirror_texel).ravel(), axis=1), tf.shape(uv_map))
    mask = tf.convert_to_tensor(mask, tf.float32)
    if mask.shape.ndims == 2:
        mask = mask[tf.newaxis, :, :, tf.newaxis]
    weights = mask * (1.0 - visibility)
    return tf.reduce_sum(weights * tf.abs(uv_map - mirrored)) / tf.maximum(tf.reduce_sum(weights), _EPS)


# ---------------------------------------------------------------------------- band-limiting
# Not in the paper (see README "Fine stage"): the coarse render's misfit of a photo (shape, albedo
# and light errors) is smooth and ~20 x larger than what the detail changes, so a free
# displacement fitted by the paper's photometric loss spends its range on that misfit. These
# helpers take the low frequencies out of the map and out of the comparison.


def gaussian_kernel(sigma):
    """The normalised 1-D Gaussian g_k = exp(-k^2 / (2 sigma^2)) / sum, k = -ceil(3 sigma)..ceil(3 sigma)."""
    if not sigma > 0:
        raise ValueError("the blur's sigma must be positive, got %r" % (sigma,))
    radius = int(np.ceil(3.0 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / float(sigma)) ** 2)
    return (taps / taps.sum()).astype(np.float32)


def gaussian_blur(images, sigma, mask=None):
    """Normalised (masked) Gaussian blur of each channel, separable, zero outside the image.

        blur(x) = (G * (M x)) / (G * M),   G the 2-D Gaussian of standard deviation sigma (pixels)

    with M = 1 when mask is None, so a constant image stays that constant up to its borders
    (there the kernel is renormalised over the pixels inside), and pixels outside the mask do
    not leak in. Where G * M = 0 the result is 0.

    Args:
      images: [B, H, W, C] x.
      sigma: standard deviation in pixels (> 0).
      mask: None, or [B, H, W, 1] M >= 0.
    Returns:
      [B, H, W, C] float32, differentiable in x (and M).
    """
    images = tf.convert_to_tensor(images, tf.float32)
    if mask is None:
        mask = tf.ones_like(images[..., :1])
    mask = tf.convert_to_tensor(mask, tf.float32)
    taps = gaussian_kernel(sigma)
    return _normalised(_separable_blur(mask * images, taps), _separable_blur(mask, taps))


def _separable_blur(x, taps):
    """G * x per channel (zero padding): the 1-D taps down the rows, then along the columns."""
    channels = int(x.shape[-1])
    rows = tf.constant(np.tile(taps[:, None, None, None], [1, 1, channels, 1]))
    cols = tf.constant(np.tile(taps[None, :, None, None], [1, 1, channels, 1]))
    x = tf.nn.depthwise_conv2d(x, rows, [1, 1, 1, 1], "SAME")
    return tf.nn.depthwise_conv2d(x, cols, [1, 1, 1, 1], "SAME")


def _normalised(blurred, weight):
    """(G * (M x)) / (G * M), 0 where G * M <= _EPS (gaussian_blur's last step)."""
    return blurred / tf.maximum(weight, _EPS) * tf.cast(weight > _EPS, tf.float32)


def highpass(images, sigma, mask=None):
    """x - gaussian_blur(x, sigma, mask): the detail of x above a scale of ~sigma pixels (0 for a
    constant x, and for a linear ramp away from the borders)."""
    return tf.convert_to_tensor(images, tf.float32) - gaussian_blur(images, sigma, mask)


def gain_normalised_photometric_loss(images, renders, render_mask, skin_mask, sigma):
    """Photometric L2,1 (0-255) after a smooth per-pixel, per-channel gain matches the render to the photo.

        C = A clip(R, 0, 1) + (1 - A) I           (the fine render over the photo, `composite_render`)
        g = blur_S(I) / blur_S(C)                 (gaussian_blur over the skin mask S, sigma px)
        L = 1 / B sum_b [ sum_p S_{b,p} ||255 (I_{b,p} - g_{b,p} C_{b,p})||_2 / sum_p S_{b,p} ]

    The gain absorbs what varies slowly in the ratio photo / render: the coarse stage's albedo and
    light errors and the shading of its shape errors at scales above ~sigma, so only the local
    pattern of the shading (what a displacement of a few texels changes) is compared. Invariant
    to C -> k C for a constant k > 0 per channel (up to a 1e-3 guard added to both blurs of the
    ratio), nearly so for a smooth k(p).
    Not in the paper (README "Fine stage").

    Args:
      images, renders: [B, H, W, 3] in [0, 1]; render_mask: [B, H, W, 1] A; skin_mask: [B, H, W, 1] S.
      sigma: scale of the gain, pixels.
    Returns:
      scalar float32, 0-255 colour units (0 where C is the photo times a smooth gain).
    """
    images = tf.convert_to_tensor(images, tf.float32)
    skin_mask = tf.convert_to_tensor(skin_mask, tf.float32)
    composited = composite_render(images, renders, render_mask)
    # gaussian_blur(images, sigma, S) and gaussian_blur(composited, sigma, S), with the blurs that
    # need no gradient (the mask's and the photo's) in one pass and the mask's blurred once.
    taps = gaussian_kernel(sigma)
    constant = _separable_blur(tf.concat([skin_mask, skin_mask * images], axis=-1), taps)
    weight = constant[..., :1]
    photo_blur = _normalised(constant[..., 1:], weight)
    render_blur = _normalised(_separable_blur(skin_mask * composited, taps), weight)
    gain = (photo_blur + 1e-3) / (render_blur + 1e-3)
    difference = 255.0 * (images - gain * composited)
    distance = tf.sqrt(tf.reduce_sum(tf.square(difference), axis=-1, keepdims=True) + _EPS)
    per_image = (tf.reduce_sum(skin_mask * distance, axis=[1, 2, 3])
                 / tf.maximum(tf.reduce_sum(skin_mask, axis=[1, 2, 3]), 1.0))
    return tf.reduce_mean(per_image)
