"""Fine stage: the UV displacement map that carries the detail a morphable model cannot.

    photo, coarse render --unwrap (model/face/unwrap.py)--> UV photo, UV coarse render, visibility
      --`network_input`--> [B, S, S, 4] --FineNet (U-Net)--> displacement [B, S, S, 1] mm
      x taper --dense UV-grid mesh (model/face/uv_layout.py), displaced along the coarse normal
      (or model z)--> detailed face = coarse triangles outside the mask + dense mesh
      --coarse albedo, SH light, pose--> fine render                      (`FineModel`)

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
import collections
import math

import numpy as np
import tensorflow.compat.v1 as tf

from model import coarse, losses, training
from model.data import GT_FLIPPED, GT_PRESENT, GT_SCALE, DataError, SkippedCounter, make_dataset, training_batch
from model.face import forward, unwrap
from model.face.camera import DEPTH_RANGE_PER_PIXEL
from model.face.framing import CROP_SIZE, ENCODER_SIZE
from model.face.uv_layout import UVLayout
from preprocess import schema
from renderer import shading

SCOPE = "fine"
PAPER_MAX_CHANNELS = 512
# Arithmetic of the U-Net's convolutions (FineNet's precision, train.py --fine_precision): its
# variables, input and output stay float32; bfloat16 casts the activations and weights of the
# inner layers (all but the full-resolution conv0, its skip and the output layer) to bfloat16
# (oneDNN's bfloat16 kernels, on CPUs with AVX512-BF16 or AMX). Measured 2026-12-04
# (README, bench/bench_render.py --stage fine --fine_precision bfloat16): the U-Net's op time 1.2 x
# less, a whole fine step 1.04-1.16 x faster (bench/bench_train_fine.py); the
# supervised control learns as in float32, but with the full-resolution layers in bfloat16 too it
# learned nothing (the detail is a small part of the input there).
PRECISIONS = ("float32", "bfloat16")
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


def parameter_count(uv_size, max_channels=PAPER_MAX_CHANNELS, in_channels=NUM_INPUT_CHANNELS):
    """Number of float parameters of FineNet(uv_size, max_channels) on in_channels input channels
    (4 bytes each in a checkpoint)."""
    widths = level_widths(uv_size, max_channels)
    count = 9 * in_channels * widths[0] + widths[0]
    for low, high in zip(widths[:-1], widths[1:]):
        count += 2 * 9 * low * high + high + low     # stride-2 conv low->high and its transpose
    return count + 9 * widths[0] + 1


def network_input(uv_photo, uv_coarse, visibility, cue=None, ratio=False):
    """The network's input: [B, S, S, 4] = (2 P - 1) - (2 R - 1) per RGB channel, then V (then
    the 2 channels of the shading cue, [B, S, S, 6], when one is given).

    Args:
      uv_photo: [B, S, S, 3] P, the photo unwrapped, in [0, 1].
      uv_coarse: [B, S, S, 3] R, the coarse render unwrapped the same way, in [0, 1].
      visibility: [B, S, S, 1] V in {0, 1}.
      cue: None, or [B, S, S, 2] `shading_cue`.
      ratio: the first 3 channels are (P - R) / (max(R, 0) + RATIO_FLOOR) instead: the photo
        relative to the coarse render, so a detail's shading reads the same on dark and light
        skin, and an albedo level the coarse face misses is a smooth offset.
    """
    if ratio:
        residual = (uv_photo - uv_coarse) / (tf.maximum(uv_coarse, 0.0) + RATIO_FLOOR)
    else:
        residual = 2.0 * (uv_photo - uv_coarse)
    parts = [residual, visibility] + ([cue] if cue is not None else [])
    return tf.concat(parts, axis=-1)


def _weights(name, shape, zero=False):
    initializer = (tf.zeros_initializer() if zero
                   else tf.variance_scaling_initializer(2.0, distribution="truncated_normal"))
    return tf.get_variable(name, shape, initializer=initializer)


def _conv(x, channels, stride, name):
    with tf.variable_scope(name):
        # Variables are float32 whatever x's dtype; they are cast to it (bfloat16: FineNet's precision).
        kernel = tf.cast(_weights("kernel", [3, 3, int(x.shape[-1]), channels]), x.dtype)
        bias = tf.cast(tf.get_variable("bias", [channels], initializer=tf.zeros_initializer()), x.dtype)
        return tf.nn.bias_add(tf.nn.conv2d(x, kernel, stride, "SAME"), bias)


def _deconv(x, channels, stride, name, zero=False):
    with tf.variable_scope(name):
        kernel = tf.cast(_weights("kernel", [3, 3, channels, int(x.shape[-1])], zero=zero), x.dtype)
        bias = tf.cast(tf.get_variable("bias", [channels], initializer=tf.zeros_initializer()), x.dtype)
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
      highpass_sigma: 0, or band-limit the map: m - gaussian_blur(m, highpass_sigma texels)
        (model/losses.py) of the bounded output m, so the map has no content at scales above
        ~highpass_sigma texels and cannot absorb the coarse face's smooth misfit (not in the
        paper; bound then 2 max_displacement).
      precision: one of PRECISIONS, the arithmetic of the convolutions (variables, input and
        output are float32 either way, so checkpoints do not depend on it).
    """

    def __init__(self, uv_size, max_channels=PAPER_MAX_CHANNELS, max_displacement=1.0, highpass_sigma=0.0,
                 precision="float32"):
        if precision not in PRECISIONS:
            raise ValueError("precision must be one of %s, got %r" % (", ".join(PRECISIONS), precision))
        self.precision = precision
        if not max_displacement > 0:
            raise ValueError("max_displacement must be positive, got %r" % (max_displacement,))
        if not highpass_sigma >= 0:
            raise ValueError("highpass_sigma must be >= 0, got %r" % (highpass_sigma,))
        self.highpass_sigma = float(highpass_sigma)
        self.uv_size = uv_size
        self.widths = level_widths(uv_size, max_channels)
        self.max_displacement = float(max_displacement)

    def __call__(self, inputs):
        """Displacement map of `network_input`s.

        Args:
          inputs: [B, S, S, 4] float32.
        Returns:
          [B, S, S, 1] float32 in (-max_displacement, max_displacement) mm (2 x that with
          highpass_sigma), outward positive.
        """
        if inputs.shape[1] != self.uv_size or inputs.shape[2] != self.uv_size:
            raise ValueError("fine network built for %d x %d maps, got input %s"
                             % (self.uv_size, self.uv_size, inputs.shape))
        with tf.variable_scope(SCOPE, reuse=tf.AUTO_REUSE):
            # The full-resolution layers (conv0, its skip and the output) stay float32 whatever the
            # precision: the detail is a small part of the input (PRECISIONS).
            x = tf.nn.relu(_conv(inputs, self.widths[0], 1, "conv0"))
            skips = [x]
            x = tf.cast(x, self.precision)
            for level, channels in enumerate(self.widths[1:], start=1):
                x = tf.nn.relu(_conv(x, channels, 2, "conv%d" % level))
                skips.append(x)
            for level in range(len(self.widths) - 1, 0, -1):
                x = tf.nn.relu(_deconv(x, self.widths[level - 1], 2, "deconv%d" % level))
                x = tf.cast(x, skips[level - 1].dtype) + skips[level - 1]
            x = _deconv(x, 1, 1, "output", zero=True)
        bounded = self.max_displacement * tf.tanh(x)
        if self.highpass_sigma > 0:
            return losses.highpass(bounded, self.highpass_sigma)
        return bounded

    @staticmethod
    def variables():
        """The network's variables (what a fine checkpoint holds)."""
        return tf.global_variables(SCOPE + "/")


# ---------------------------------------------------------------------------- forward path and losses

DISPLACEMENT_DIRECTIONS = ("normal", "z")
# Charts of the synthetic detail supervision (FineModel.losses' gt_chart).
GT_CHARTS = ("own", "true")
# Coverage of the true face (bilinear, 0..1) above which a texel's point is on it (own chart).
OWN_CHART_INSIDE = 0.99
# Regions whose displacement the paper penalises more (its `disp_eyebrow_nose` term): folds there
# are mostly shading of the coarse shape's errors, not skin detail. The eyes are outside the
# detail mask already (model/face/uv_layout.py).
STIFF_REGIONS = ("nose", "brows")
# Dead zones of the smoothness terms (the paper's code): dense vertices mm^2, vertex normals,
# triangle normals (squared unit-vector components).
LAPLACIAN_DEAD_ZONE = 0.2
VERTEX_NORMAL_DEAD_ZONE = 1e-3
TRIANGLE_NORMAL_DEAD_ZONE = 1e-4

FineWeights = collections.namedtuple("FineWeights", [
    "photo", "disp", "render_disp", "disp_eyebrow_nose", "disp_normal", "smooth", "smooth_normal",
    "smooth_uv", "symmetry", "photo_gain", "gt_disp"], defaults=[0.0])
FineWeights.__doc__ = """Weights of the fine losses (train.py's flags of the same names, the paper's defaults).
gt_disp weighs the synthetic supervision of the map (losses.supervised_displacement_loss, mm^2; not
in the paper; 0 = off, and it only acts on samples that carry ground truth)."""
# photo_gain (losses.gain_normalised_photometric_loss) is not the paper's: 0 there.
PAPER_WEIGHTS = FineWeights(photo=1.0, disp=1e-3, render_disp=2e-3, disp_eyebrow_nose=2e-3, disp_normal=1e-3,
                            smooth=1.0, smooth_normal=1.0, smooth_uv=1e-2, symmetry=0.0, photo_gain=0.0)
# train.py's defaults (not the paper's; README "Fine stage" has the measurements): the paper's
# photometric term replaced by the gain-normalised one, which the coarse face's smooth misfit
# (albedo, light, shape errors ~20 x the detail's effect on the render) cannot drive.
DEFAULT_WEIGHTS = PAPER_WEIGHTS._replace(photo=0.0, photo_gain=1.0)
# Scale (pixels of the render) of the smooth gain of the gain-normalised photometric term.
DEFAULT_PHOTO_GAIN_SIGMA = 4.0


def triangle_normals(vertices, triangles):
    """Unit face normals [B, F, 3] of vertices [B, V, 3] and counter-clockwise triangles [F, 3]
    (renderer.shading.triangle_normals, the fused op; its TensorFlow oracle: tests/tf_reference.py)."""
    return shading.triangle_normals(vertices, triangles)


def region_texels(face_model, layout, names):
    """float32 [S, S]: detail-mask texels whose triangle has a vertex in one of the regions `names`."""
    n = face_model.num_vertices
    in_region = np.zeros(n, dtype=bool)
    for name in names:
        in_region |= face_model.regions.get(name, np.zeros(n, dtype=bool))
    touches = in_region[face_model.triangles].any(axis=1)[np.maximum(layout.triangle_id, 0)]
    return (layout.mask & touches).astype(np.float32)


# The shading cue (FineModel.shading_cue): tilt of the coarse normal (radians) of its central
# difference, and the factor that brings the cue to about unit RMS on the synthetic faces.
SHADING_CUE_TILT = 0.05
SHADING_CUE_SCALE = 1.0
NUM_SHADING_CUE_CHANNELS = 2
# Floor of the shade a ratio divides by (`network_input`'s ratio form, the relative shading cue).
RATIO_FLOOR = 0.05


def input_channels(shading_cue=False):
    """Channels of the fine network's input: `network_input`'s 4, plus the shading cue's 2."""
    return NUM_INPUT_CHANNELS + (NUM_SHADING_CUE_CHANNELS if shading_cue else 0)


def shading_cue(face_model, layout, coarse_outputs, relative=False):
    """How the coarse render's shading answers a displacement slope, per texel: [B, S, S, 2].

    A displacement d along the normal tilts the surface normal by about -grad d, so the detail's
    shading is, to first order, -(g_col dd/ds_col + g_row dd/ds_row), with g the derivative of the
    shaded colour (grey: mean of RGB) with respect to a tilt of the normal along the map's column
    (row) direction on the coarse surface, under the coarse albedo and SH light. The photo's
    residual alone cannot tell a furrow under a light from one side from a ridge under a light from
    the other (the sign of the shading flips with the light's direction), so without g a network
    can only learn the detail's average (results/README.md, "fine stage"). Channel k is
    SHADING_CUE_SCALE x g_k / h_k, h_k the texel spacing (mm) in that direction: the change of
    shade per mm of displacement difference between neighbouring texels. 0 where a neighbour is
    uncovered. No gradient flows through it (an input, like the photo).

    Args:
      face_model: model.face.FaceModel; layout: UVLayout.
      coarse_outputs: dict with vertices [B, N, 3] mm (model frame), albedo [B, N, 3], coeffs [B, C].
      relative: divide by the grey shade of the untilted normal (+ RATIO_FLOOR): the change
        relative to the shade, free of the albedo's level (with `network_input`'s ratio form).
    """
    vertices = tf.stop_gradient(coarse_outputs["vertices"])
    albedo = tf.stop_gradient(coarse_outputs["albedo"])
    parts = face_model.split_coefficients(tf.stop_gradient(coarse_outputs["coeffs"]))
    rotation = face_model.camera.rotation(parts["pose"])
    size = layout.size
    ones = tf.ones_like(vertices[..., :1])
    maps = layout.vertices_to_uv(tf.concat([vertices, face_model.normals(vertices), albedo, ones], axis=-1))
    flat = tf.reshape(maps, [-1, size * size, 10])
    positions = tf.matmul(flat[..., 0:3], rotation, transpose_b=True)
    normals = tf.math.l2_normalize(tf.matmul(flat[..., 3:6], rotation, transpose_b=True), axis=-1)
    texel_albedo, covered = flat[..., 6:9], tf.reshape(flat[..., 9:], [-1, size, size, 1])
    positions = tf.reshape(positions, [-1, size, size, 3])
    padded = tf.pad(positions, [[0, 0], [1, 1], [1, 1], [0, 0]])
    inside = tf.pad(tf.cast(covered > 0.5, tf.float32), [[0, 0], [1, 1], [1, 1], [0, 0]])
    channels = []
    if relative:
        level = tf.maximum(tf.reduce_mean(shading.sh_shading(normals, texel_albedo, parts["light"]), axis=-1,
                                          keepdims=True), 0.0) + RATIO_FLOOR
    for axis in (2, 1):                          # along a row (column direction), then a column
        if axis == 2:
            ahead, behind = padded[:, 1:-1, 2:], padded[:, 1:-1, :-2]
            valid = inside[:, 1:-1, 2:] * inside[:, 1:-1, :-2]
        else:
            ahead, behind = padded[:, 2:, 1:-1], padded[:, :-2, 1:-1]
            valid = inside[:, 2:, 1:-1] * inside[:, :-2, 1:-1]
        step = tf.reshape(ahead - behind, [-1, size * size, 3])
        spacing = 0.5 * tf.norm(step, axis=-1, keepdims=True) + 1e-6
        tangent = step - tf.reduce_sum(step * normals, axis=-1, keepdims=True) * normals
        tangent = tf.math.l2_normalize(tangent, axis=-1)
        shades = [tf.reduce_mean(shading.sh_shading(
            tf.math.l2_normalize(normals + sign * SHADING_CUE_TILT * tangent, axis=-1), texel_albedo,
            parts["light"]), axis=-1, keepdims=True) for sign in (1.0, -1.0)]
        slope = (shades[0] - shades[1]) / (2.0 * SHADING_CUE_TILT) / spacing
        if relative:
            slope = slope / level
        channels.append(tf.reshape(slope, [-1, size, size, 1]) * valid)
    return tf.stop_gradient(SHADING_CUE_SCALE * tf.concat(channels, axis=-1))


class FineModel(object):
    """The fine stage as one object: unwrap, predict, displace, render; and its losses.

    Args:
      face_model: model.face.FaceModel.
      layout: model.face.uv_layout.UVLayout of the map size the network predicts.
      net: FineNet of that size (None for a model that only decodes given displacement maps).
      displacement_direction: "normal" (along the coarse surface's interpolated normal) or "z"
        (model-space z, the paper's choice).
      photo_gain_sigma: scale (render pixels) of the gain-normalised photometric term (used when
        its weight is > 0).
      gt_chart: "own" | "true", the chart the gt_disp supervision compares in (`losses`).
      shading_cue: give the network `shading_cue`'s 2 channels besides the 4 of `network_input`.
      ratio_input: `network_input`'s ratio form (and a relative shading cue).
    """

    def __init__(self, face_model, layout, net, displacement_direction="normal",
                 photo_gain_sigma=DEFAULT_PHOTO_GAIN_SIGMA, gt_chart="own", shading_cue=False, ratio_input=False):
        self.shading_cue = bool(shading_cue)
        self.ratio_input = bool(ratio_input)
        if gt_chart not in GT_CHARTS:
            raise ValueError("gt_chart must be one of %s, got %r" % (", ".join(GT_CHARTS), gt_chart))
        self.gt_chart = gt_chart
        self.photo_gain_sigma = float(photo_gain_sigma)
        if displacement_direction not in DISPLACEMENT_DIRECTIONS:
            raise ValueError("displacement_direction must be one of %s, got %r"
                             % (", ".join(DISPLACEMENT_DIRECTIONS), displacement_direction))
        if net is not None and net.uv_size != layout.size:
            raise ValueError("fine network predicts %d x %d maps, the UV layout is %d x %d"
                             % (net.uv_size, net.uv_size, layout.size, layout.size))
        self.face_model = face_model
        self.layout = layout
        self.net = net
        self.displacement_direction = displacement_direction
        n = face_model.num_vertices
        # The detailed face: the coarse triangles the dense mesh does not replace, then the dense
        # mesh, whose vertices follow the N coarse ones.
        self.triangles = np.concatenate([layout.coarse_triangles_outside, layout.dense_triangles + n]).astype(np.int32)
        self.dense_pairs = losses.neighbour_pairs(layout.dense_triangles, layout.num_dense_vertices)
        self.dense_triangle_pairs = losses.adjacent_triangle_pairs(layout.dense_triangles)
        self.stiff_texels = region_texels(face_model, layout, STIFF_REGIONS)

    def unwrap(self, coarse_outputs, images):
        """The photo and the coarse render in UV.

        Args:
          coarse_outputs: the coarse stage's `decode` at the images' size (points_px, rasterized,
            render, colours).
          images: [B, H, W, 3] the photos the coarse render is compared with.
        Returns:
          dict: uv_photo, uv_coarse [B, S, S, 3], visibility [B, S, S, 1] (model/face/unwrap.py;
          hidden texels without a visible mirror take the coarse colour, so their input is 0),
          texel_positions [B, S, S, 2] (u, v) image pixels of each texel on the coarse face.
        """
        size = int(images.shape[1])
        positions, visibility = unwrap.texel_visibility(
            self.layout, self.face_model.triangles, coarse_outputs["points_px"], coarse_outputs["rasterized"],
            DEPTH_RANGE_PER_PIXEL * size)
        fallback = self.layout.vertices_to_uv(coarse_outputs["colours"])
        both = unwrap.unwrap_to_uv(self.layout, tf.concat([images, coarse_outputs["render"]], axis=-1),
                                   positions, visibility, tf.concat([fallback, fallback], axis=-1))
        return dict(uv_photo=both[..., :3], uv_coarse=both[..., 3:], visibility=visibility,
                    texel_positions=positions)

    def predict(self, coarse_outputs, images):
        """(displacement [B, S, S, 1] mm, tapered to 0 at the detail mask's edge; `unwrap`'s maps):
        the network on the unwrapped photo, without building the detailed face."""
        uv = self.unwrap(coarse_outputs, images)
        cue = (shading_cue(self.face_model, self.layout, coarse_outputs, relative=self.ratio_input)
               if self.shading_cue else None)
        displacement = self.net(network_input(uv["uv_photo"], uv["uv_coarse"], uv["visibility"], cue,
                                              self.ratio_input))
        return displacement * self.layout.taper[None, :, :, None], uv

    def forward(self, coarse_outputs, images):
        """Photos and their coarse reconstruction -> `decode` of the predicted displacement, plus
        `unwrap`'s maps."""
        displacement, uv = self.predict(coarse_outputs, images)
        outputs = self.decode(coarse_outputs, displacement, int(images.shape[1]))
        outputs.update(uv)
        return outputs

    def decode(self, coarse_outputs, displacement, image_size):
        """The detailed face of a coarse reconstruction and a displacement map, rendered.

        Args:
          coarse_outputs: dict with vertices [B, N, 3] mm (model frame), albedo [B, N, 3] and coeffs
            [B, C] (pose and light) of the coarse stage.
          displacement: [B, S, S, 1] mm (outward positive), 0 outside the detail mask.
          image_size: side of the render in pixels.
        Returns:
          dict: displacement; dense_base, dense_vertices [B, M, 3] mm (model frame, before and
          after the displacement); dense_normals, dense_coarse_normals [B, M, 3] (model frame, of
          the detailed and of the coarse surface); dense_triangle_normals,
          dense_base_triangle_normals [B, F, 3] (after and before the displacement); vertices
          [B, N + M, 3] and triangles of the detailed face; render [B, H, W, 3], mask [B, H, W, 1],
          rasterized, points_px [B, N + M, 3] of the detailed face.
        """
        layout, face_model = self.layout, self.face_model
        vertices = coarse_outputs["vertices"]
        parts = face_model.split_coefficients(coarse_outputs["coeffs"])
        coarse_normals = face_model.normals(vertices)
        base = layout.dense_from_vertices(vertices)
        smooth = tf.math.l2_normalize(layout.dense_from_vertices(coarse_normals), axis=-1)
        offset = layout.uv_to_dense(displacement)                                       # [B, M, 1]
        if self.displacement_direction == "normal":
            dense = base + offset * smooth
        else:
            dense = base + offset * tf.constant([0.0, 0.0, 1.0])
        dense_normals = layout.detail_normals(base, dense, smooth)
        all_vertices = tf.concat([vertices, dense], axis=1)
        all_normals = tf.concat([coarse_normals, dense_normals], axis=1)
        albedo = tf.concat([coarse_outputs["albedo"], layout.dense_from_vertices(coarse_outputs["albedo"])], axis=1)
        # The one forward path for a face (model/face/forward.py), with the detailed mesh's normals.
        rendered = forward.render_mesh(face_model.camera, all_vertices, self.triangles, parts["pose"], image_size,
                                       albedo=albedo, light=parts["light"], normals=all_normals)
        points_px = rendered["points_px"]
        return dict(displacement=displacement, dense_base=base, dense_vertices=dense, dense_normals=dense_normals,
                    dense_coarse_normals=smooth,
                    dense_triangle_normals=triangle_normals(dense, layout.dense_triangles),
                    dense_base_triangle_normals=triangle_normals(base, layout.dense_triangles),
                    vertices=all_vertices, triangles=self.triangles, points_px=points_px,
                    render=rendered["render"], mask=rendered["mask"], rasterized=rendered["rasterized"])

    def rendered_depth_difference(self, coarse_outputs, fine_outputs, image_size):
        """(fine - coarse rendered depth [B, H, W, 1] mm, where both cover [B, H, W, 1])."""
        depth_scale = DEPTH_RANGE_PER_PIXEL * image_size
        pose = self.face_model.split_coefficients(coarse_outputs["coeffs"])["pose"]
        # Rendered depth is NDC z = -depth px / depth_scale; px per mm as CropCamera.project scales.
        pixels_per_mm = self.face_model.frame_scale * image_size / float(CROP_SIZE) * tf.exp(pose[:, 5])
        difference = -depth_scale * (fine_outputs["rasterized"].depth - coarse_outputs["rasterized"].depth)
        both = fine_outputs["mask"] * coarse_outputs["mask"]
        return both * (difference / pixels_per_mm[:, None, None])[..., tf.newaxis], both

    def losses(self, images, skin_mask, coarse_outputs, fine_outputs, weights, ground_truth=None):
        """Fine losses of one batch.

        Args:
          images: [B, H, W, 3] the photos the renders are compared with.
          skin_mask: [B, H, W, 1] skin pixels of the segmentation.
          coarse_outputs, fine_outputs: the coarse stage's and `forward`'s outputs at that size.
          weights: FineWeights.
          ground_truth: None, or a dict of an augmented batch read with keep_ground_truth
            (model.data): displacement [B, S, S] mm, flipped [B] bool, present [B], and for
            gt_chart "own" coefficients [B, C] and scale [B]. The gt_disp term (when its weight is
            > 0) compares the map with it in the chart `gt_chart` says:
              "own": the true detail where the photo shows it, in the chart of the coarse face the
                network reads the photo through (unwrap.own_chart_target), over the detail mask's
                texels the coarse face sees and the true face covers;
              "true": the map as it is, in the true face's chart, mirrored (columns reversed: the
                chart's mirror twins are at mirrored u) where the sample was flipped, over the
                whole detail mask (the previous behaviour: a coarse face a few mm off cannot read
                the detail at those texels, bench/fine_chart_transfer.py).
        Returns:
          OrderedDict name -> scalar: every term of model/losses.py's fine section (unweighted)
          and total (the weighted sum that training minimises).
        """
        image_size = int(images.shape[1])
        displacement = fine_outputs["displacement"]
        mask = self.layout.mask.astype(np.float32)[None, :, :, None]
        depth_difference, both = self.rendered_depth_difference(coarse_outputs, fine_outputs, image_size)
        terms = collections.OrderedDict()
        terms["photometric"] = losses.fine_photometric_loss(images, fine_outputs["render"], fine_outputs["mask"],
                                                            skin_mask)
        terms["disp"] = losses.displacement_magnitude_loss(displacement, mask)
        terms["render_disp"] = losses.displacement_magnitude_loss(depth_difference, both)
        terms["disp_eyebrow_nose"] = losses.displacement_magnitude_loss(
            displacement, self.stiff_texels[None, :, :, None])
        normal_change = fine_outputs["dense_normals"] - fine_outputs["dense_coarse_normals"]
        terms["disp_normal"] = losses.displacement_magnitude_loss(normal_change, tf.ones_like(normal_change[..., :1]))
        # The smoothness terms act on what the displacement changes (dense vertices, vertex and
        # triangle normals minus those of the undisplaced dense mesh), not on the absolute values
        # as the paper's code: the undisplaced mesh's own Laplacian (curvature, and the one-sided
        # neighbourhoods on the mask's edge) and its facets would otherwise be penalised too; they
        # fall under the paper's dead zones only at its 512 x 512 spacing, and are constant in
        # the network's output.
        terms["smooth"] = losses.laplacian_smoothness_loss(
            fine_outputs["dense_vertices"] - fine_outputs["dense_base"], self.dense_pairs, LAPLACIAN_DEAD_ZONE)
        terms["smooth_normal"] = losses.laplacian_smoothness_loss(
            normal_change, self.dense_pairs, VERTEX_NORMAL_DEAD_ZONE)
        terms["smooth_triangle_normal"] = losses.triangle_smoothness_loss(
            fine_outputs["dense_triangle_normals"] - fine_outputs["dense_base_triangle_normals"],
            self.dense_triangle_pairs, TRIANGLE_NORMAL_DEAD_ZONE)
        terms["smooth_uv"] = losses.uv_smoothness_loss(displacement)
        total = (weights.photo * terms["photometric"] + weights.disp * terms["disp"]
                 + weights.render_disp * terms["render_disp"] + weights.disp_eyebrow_nose * terms["disp_eyebrow_nose"]
                 + weights.disp_normal * terms["disp_normal"] + weights.smooth * terms["smooth"]
                 + weights.smooth_normal * (terms["smooth_normal"] + terms["smooth_triangle_normal"])
                 + weights.smooth_uv * terms["smooth_uv"])
        if weights.photo_gain > 0:
            terms["photo_gain"] = losses.gain_normalised_photometric_loss(
                images, fine_outputs["render"], fine_outputs["mask"], skin_mask, self.photo_gain_sigma)
            total += weights.photo_gain * terms["photo_gain"]
        if weights.symmetry > 0:
            terms["symmetry"] = losses.symmetry_loss(displacement, fine_outputs["visibility"],
                                                     self.layout.mirror_texel, self.layout.mask)
            total += weights.symmetry * terms["symmetry"]
        if weights.gt_disp > 0 and ground_truth is not None:
            target = ground_truth["displacement"]
            if target.shape[1:].as_list() != [self.layout.size] * 2:
                raise ValueError("the records' gt/displacement maps are %s, the fine stage's UV maps %d x %d: "
                                 "synthesize the data with --map_size=%d or train with --uv_size=%d"
                                 % (" x ".join(map(str, target.shape[1:].as_list())), self.layout.size,
                                    self.layout.size, self.layout.size, int(target.shape[1])))
            if self.gt_chart == "own":
                with tf.name_scope("gt_target"):          # (its own scope, for profiles: bench/bench_render.py)
                    target, inside = unwrap.own_chart_target(
                        self.face_model, ground_truth["coefficients"], target[..., tf.newaxis],
                        fine_outputs["texel_positions"], image_size, ground_truth["flipped"], ground_truth["scale"])
                # A target, not a path: with --train_coarse the coarse face must not move to make it easier.
                target = tf.stop_gradient(target)
                gt_mask = mask * fine_outputs["visibility"] * tf.cast(inside > OWN_CHART_INSIDE, tf.float32)
            else:
                target = tf.where(ground_truth["flipped"], target[:, :, ::-1], target)[..., tf.newaxis]
                gt_mask = mask
            terms["gt_disp"] = losses.supervised_displacement_loss(displacement, target, gt_mask,
                                                                   ground_truth["present"])
            total += weights.gt_disp * terms["gt_disp"]
        terms["total"] = total
        return terms


def _nearest_resize(image, height, width):
    rows = (np.arange(height) * image.shape[0] // height)
    cols = (np.arange(width) * image.shape[1] // width)
    return image[rows][:, cols]


def summary_panels(image, coarse_render, coarse_mask, fine_render, fine_mask, uv_photo, displacement,
                   max_displacement):
    """The fine stage's picture: input | coarse render | fine render | UV photo | displacement.

    Args:
      image: [H, W, 3] float in [0, 1], the input; coarse_render, fine_render: [H, W, 3] with their
        coverage masks [H, W, 1] (drawn over the input).
      uv_photo: [S, S, 3] the unwrapped photo; displacement: [S, S, 1] mm, drawn grey with
        -max_displacement black and +max_displacement white (both resized to H x W, nearest).
    Returns:
      [H, 5 W, 3] uint8.
    """
    height, width = image.shape[:2]

    def over(render, mask):
        return mask * np.clip(render, 0.0, 1.0) + (1.0 - mask) * image
    grey = np.clip(0.5 + 0.5 * np.asarray(displacement) / max_displacement, 0.0, 1.0)
    panels = [image, over(coarse_render, coarse_mask), over(fine_render, fine_mask),
              _nearest_resize(np.clip(uv_photo, 0.0, 1.0), height, width),
              np.repeat(_nearest_resize(grey, height, width), 3, axis=-1)]
    return np.round(np.concatenate(panels, axis=1) * 255.0).astype(np.uint8)


# ---------------------------------------------------------------------------- training stage

# The default cap of the fine network's widths: at UV 256 the fine network is 6.4 MB of float32
# (7.5 MB at 512), the whole fine export with the compact coarse network ~15 MB, well under the
# 50 MB a released checkpoint may take; PAPER_MAX_CHANNELS gives the paper's widths (66 MB at 256).
DEFAULT_MAX_CHANNELS = 128
DEFAULT_UV_SIZE = 256
DEFAULT_MAX_DISPLACEMENT = 0.25
# FineNet's band-limit, texels (0 = off, the paper's free map): the map minus its sigma-4 blur,
# so it cannot take the low-frequency shape of the coarse face's misfit (README "Fine stage").
DEFAULT_DISPLACEMENT_HIGHPASS = 4.0
DEFAULT_COARSE_CHECKPOINT = "results/release/coarse"
# Whether the network reads the shading cue (FineModel.shading_cue).
DEFAULT_SHADING_CUE = False
# Whether the network reads the photo relative to the coarse render (network_input's ratio form).
DEFAULT_RATIO_INPUT = False
# Side of the images the fine stage renders and compares: the 300 crop itself, as the paper. 224
# (the coarse stage's render size, 0.56 x the pixels) was no faster: bench/bench_train_fine.py at
# batch 4, UV 256 gave a fine step 6.2 coarse steps at 224 and 5.9 at 300 (loaded machine); the
# step's cost is the dense mesh (~48 k vertices, 95 k triangles) and the U-Net, not the pixels.
# At 300 the photo is compared without resampling, and a UV 256 map samples more pixels.
DEFAULT_RENDER_SIZE = 300
# Segmentation labels of the fine photometric loss (the paper's skin mask): skin and nose, whose
# shading the detail explains; brows (hair) and lips (their own albedo, folds of another kind) are
# left out, as are eyes and mouth interior, which the detail mask excludes anyway.
PHOTO_REGION_LABELS = (schema.SKIN, schema.NOSE)
# With --train_coarse the coarse losses (model/coarse.py, without the perceptual term) join the
# fine total, multiplied by this: the fine photometric loss is on a 0-255 scale, the coarse one
# on 0-1, so the coarse terms keep the weight relative to their photometric term that they had in
# the coarse stage.
COARSE_LOSS_SCALE = 255.0


def stage_config(face_model, backbone, uv_size, max_channels, max_displacement, displacement_direction,
                 coarse_checkpoint, train_coarse, render_size=DEFAULT_RENDER_SIZE,
                 displacement_highpass=0.0, shading_cue=False, ratio_input=False, pretrain=False):
    """The fine stage's config (model.training; the keys test.py's model/inference.py reads): what a fine
    export needs to be loaded alone (both networks' shapes and the face model) and matched."""
    config = dict(stage=FineStage.name, backbone=backbone, uv_size=int(uv_size), max_channels=int(max_channels),
                  max_displacement=float(max_displacement), displacement_direction=displacement_direction,
                  coarse_checkpoint=str(coarse_checkpoint), train_coarse=bool(train_coarse),
                  crop_size=CROP_SIZE, encoder_size=ENCODER_SIZE, render_size=int(render_size),
                  displacement_highpass=float(displacement_highpass), shading_cue=bool(shading_cue),
                  ratio_input=bool(ratio_input), pretrain=bool(pretrain))
    config.update(training.face_model_config(face_model))
    return config


class FineStage(training.Stage):
    """The fine stage as model.training runs it: the coarse stage's tfrecords, the coarse network
    restored from a coarse export (frozen unless train_coarse), FineModel and its losses.

    Args:
      face_model: model.face.FaceModel (checked against the coarse checkpoint's stage config).
      data_pattern: glob of the training tfrecords (the coarse stage's: model/data.py, augmented).
      batch_size: images per step.
      weights: FineWeights.
      coarse_checkpoint: a coarse export folder (its latest checkpoint) or prefix, with stage.json
        beside it; a fresh run starts from its weights, and its backbone is this stage's.
      uv_size, max_channels, max_displacement: FineNet's.
      displacement_direction: "normal" | "z" (FineModel).
      train_coarse: fine-tune the coarse network too (its losses, COARSE_LOSS_SCALE x
        coarse_weights, join the total); False: its output's gradient is stopped and only the
        fine network is trained.
      coarse_weights: model.coarse.LossWeights, used with train_coarse (None: the coarse stage's
        TRAINING_LOSS_WEIGHTS).
      render_size: side of the renders compared with the photo (DEFAULT_RENDER_SIZE).
      displacement_highpass: FineNet's highpass_sigma (texels; 0 = the paper's free map).
      photo_gain_sigma: FineModel's (render pixels).
      gt_chart: FineModel's ("own" | "true": where gt_disp compares the map with the ground truth).
      shading_cue: FineModel's (the network's input gets `shading_cue`'s 2 channels).
      ratio_input: FineModel's (`network_input`'s ratio form).
      fine_init: None, or a checkpoint (folder or prefix: a fine export, a fine training folder,
        bench/fine_supervised_gt.py's) whose fine network starts a fresh run instead of the
        initialisers (a warm start; a resumed run ignores it). Its network must have this one's
        shapes (uv_size, max_channels, input channels).
      pretrain: instead of the fine losses, train the network SUPERVISED on synthetic records:
        unwrapped through each record's ground-truth coarse face (gt/coefficients, unaugmented
        samples), the mean squared error (mm^2, x PRETRAIN_LOSS_SCALE) of the tapered map to
        gt/displacement over the detail mask (`pretrain_tower`). A warm start for the fine stage
        (results/README.md: from scratch the fine stage on the default synthetic appearance stays
        at the average map); records without ground truth are an error.
      precision: FineNet's (the U-Net's arithmetic while training; exports and inference are
        float32 either way).
      seed: data order of a run starting at step k is seeded with seed + k.
      skip_bad_records, shard: as CoarseStage.
    Raises:
      FileNotFoundError: no checkpoint or no stage config at coarse_checkpoint.
      training.StageConfigMismatch: coarse_checkpoint is not a coarse stage checkpoint, or was
        trained with another face model.
      ValueError: a bad uv_size, max_channels, max_displacement or displacement_direction.
    """

    name = "fine"

    def __init__(self, face_model, data_pattern, batch_size, weights, coarse_checkpoint=DEFAULT_COARSE_CHECKPOINT,
                 uv_size=DEFAULT_UV_SIZE, max_channels=DEFAULT_MAX_CHANNELS,
                 max_displacement=DEFAULT_MAX_DISPLACEMENT, displacement_direction="normal", train_coarse=False,
                 coarse_weights=None, render_size=DEFAULT_RENDER_SIZE, seed=0, skip_bad_records=False, shard=None,
                 displacement_highpass=DEFAULT_DISPLACEMENT_HIGHPASS, photo_gain_sigma=DEFAULT_PHOTO_GAIN_SIGMA,
                 gt_chart="own", shading_cue=DEFAULT_SHADING_CUE, ratio_input=DEFAULT_RATIO_INPUT,
                 fine_init=None, pretrain=False, precision="float32"):
        self.precision = precision           # checked by FineNet, built below
        self.pretrain = bool(pretrain)
        self.fine_init_prefix = None
        if fine_init:
            self.fine_init_prefix = (tf.train.latest_checkpoint(fine_init) if tf.io.gfile.isdir(fine_init)
                                     else fine_init)
            if self.fine_init_prefix is None or not tf.io.gfile.exists(self.fine_init_prefix + ".index"):
                raise FileNotFoundError("--fine_init: no checkpoint at %s" % fine_init)
        self.shading_cue = bool(shading_cue)
        self.ratio_input = bool(ratio_input)
        self.displacement_highpass = float(displacement_highpass)
        level_widths(uv_size, max_channels)
        if not max_displacement > 0:
            raise ValueError("max_displacement must be positive, got %r" % (max_displacement,))
        if displacement_direction not in DISPLACEMENT_DIRECTIONS:
            raise ValueError("displacement_direction must be one of %s, got %r"
                             % (", ".join(DISPLACEMENT_DIRECTIONS), displacement_direction))
        prefix = tf.train.latest_checkpoint(coarse_checkpoint) if tf.io.gfile.isdir(coarse_checkpoint) \
            else coarse_checkpoint
        if prefix is None or not tf.io.gfile.exists(prefix + ".index"):
            raise FileNotFoundError("no coarse checkpoint at %s (train one with run_train.sh, or pass "
                                    "--coarse_checkpoint)" % coarse_checkpoint)
        self.coarse_config = training.read_stage_config(coarse_checkpoint)
        if self.coarse_config.get("stage") != coarse.CoarseStage.name:
            raise training.StageConfigMismatch(
                "%s is a checkpoint of the %s stage, not a coarse network (the fine stage starts from "
                "a coarse export: results/coarse/network, results/release/coarse)"
                % (coarse_checkpoint, self.coarse_config.get("stage")))
        training.check_face_model(self.coarse_config, face_model, coarse_checkpoint)
        self.coarse_prefix = prefix
        self.coarse_checkpoint = coarse_checkpoint
        self.backbone = self.coarse_config["backbone"]
        self.face_model = face_model
        self.data_pattern = data_pattern
        self.batch_size = batch_size
        self.weights = weights
        self.uv_size = uv_size
        self.max_channels = max_channels
        self.max_displacement = float(max_displacement)
        self.displacement_direction = displacement_direction
        self.train_coarse = bool(train_coarse)
        self.coarse_weights = coarse_weights if coarse_weights is not None else coarse.TRAINING_LOSS_WEIGHTS
        self.render_size = render_size
        self.seed = seed
        self.skip_bad_records = skip_bad_records
        self.shard = shard
        self.layout = UVLayout(face_model, uv_size)
        self._fine_model = FineModel(face_model, self.layout, self._fine_net(), displacement_direction,
                                     photo_gain_sigma, gt_chart, self.shading_cue, self.ratio_input)
        self._coarse_variables = None

    def config(self):
        return stage_config(self.face_model, self.backbone, self.uv_size, self.max_channels, self.max_displacement,
                            self.displacement_direction, self.coarse_checkpoint, self.train_coarse,
                            self.render_size, self.displacement_highpass, self.shading_cue, self.ratio_input,
                            self.pretrain)

    def _coarse_net(self):
        return coarse.network(self.face_model, self.backbone)

    def _fine_net(self):
        return FineNet(self.uv_size, self.max_channels, self.max_displacement, self.displacement_highpass,
                       self.precision)

    # -------------------------------------------------- the Stage interface (model.training.Stage)

    def inputs(self, start_step):
        """(batch, skipped): the augmented training batch and its SkippedCounter (model.data.training_batch);
        with pretrain, unaugmented shuffled batches with their ground truth."""
        if self.pretrain:
            skipped = SkippedCounter() if self.skip_bad_records else None
            dataset = make_dataset(self.data_pattern, self.batch_size, augment=False, shuffle=True,
                                   seed=self.seed + start_step, skipped=skipped, shard=self.shard)
            return tf.data.make_one_shot_iterator(dataset).get_next(), skipped
        supervised = self.weights.gt_disp > 0 or (self.train_coarse and self.coarse_weights.gt_shape > 0)
        return training_batch(self.data_pattern, self.batch_size, self.seed + start_step, self.skip_bad_records,
                              self.shard, keep_ground_truth=supervised)

    def pretrain_tower(self, batch):
        """(losses, None) of the supervised warm start (`pretrain`): mse (mm^2) of the tapered map to
        gt/displacement over the detail mask, gt_ms (the maps' own mean square there: predicting
        zero), total = PRETRAIN_LOSS_SCALE x mse."""
        if schema.GT_COEFFICIENTS not in batch or schema.GT_DISPLACEMENT not in batch:
            raise DataError("--fine_pretrain trains on synthetic records with ground truth (gt/coefficients and "
                            "gt/displacement: preprocess/synthesize.py); %s has none" % (self.data_pattern,))
        images = batch["image"]
        net = self._coarse_net()
        net(coarse.resize_for_encoder(images))          # built so that the export holds it
        if self._coarse_variables is None:
            self._coarse_variables = net.variables()
        model = self._fine_model
        coarse_outputs = coarse.CoarseModel(self.face_model, None, render_size=self.render_size).decode(
            batch[schema.GT_COEFFICIENTS], images)
        target = batch[schema.GT_DISPLACEMENT]
        if target.shape[1:].as_list() != [self.layout.size] * 2:
            raise ValueError("the records' gt/displacement maps are %s, the fine stage's UV maps %d x %d"
                             % (" x ".join(map(str, target.shape[1:].as_list())), self.layout.size, self.layout.size))
        # The map alone: the supervised loss needs no detailed face (FineModel.decode's dense mesh and render).
        displacement, _ = model.predict(coarse_outputs, coarse_outputs["input"])
        mask = tf.constant(self.layout.mask.astype(np.float32))[None, :, :, None]
        count = tf.reduce_sum(mask) * tf.cast(tf.shape(images)[0], tf.float32)
        terms = collections.OrderedDict()
        terms["mse"] = tf.reduce_sum(tf.square(displacement - target[..., None]) * mask) / count
        terms["gt_ms"] = tf.reduce_sum(tf.square(target[..., None]) * mask) / count
        terms["total"] = PRETRAIN_LOSS_SCALE * terms["mse"]
        return terms, None

    def tower(self, batch):
        """(losses, image_summary) of `batch` (a whole batch or one tower's slice).

        losses: the fine terms of FineModel.losses and their weighted total; with train_coarse also
        the coarse stage's terms, prefixed "coarse_", and total = fine total + COARSE_LOSS_SCALE x
        coarse total.
        """
        if self.pretrain:
            return self.pretrain_tower(batch)
        images = batch["image"]
        coarse_net = self._coarse_net()
        coeffs = coarse_net(coarse.resize_for_encoder(images))
        if self._coarse_variables is None:
            self._coarse_variables = coarse_net.variables()
        if not self.train_coarse:
            coeffs = tf.stop_gradient(coeffs)
        coarse_model = coarse.CoarseModel(self.face_model, coarse_net, render_size=self.render_size)
        coarse_outputs = coarse_model.decode(coeffs, images)
        photos = coarse_outputs["input"]
        fine_outputs = self._fine_model.forward(coarse_outputs, photos)
        segmentation = tf.image.resize(batch["segmentation"][..., tf.newaxis], [self.render_size] * 2,
                                       method="nearest")[..., 0]
        skin = losses.region_mask(segmentation, PHOTO_REGION_LABELS)
        ground_truth = None
        if GT_PRESENT in batch:
            ground_truth = dict(displacement=batch[schema.GT_DISPLACEMENT], flipped=batch[GT_FLIPPED],
                                present=batch[GT_PRESENT], coefficients=batch[schema.GT_COEFFICIENTS],
                                scale=batch[GT_SCALE])
        terms = self._fine_model.losses(photos, skin, coarse_outputs, fine_outputs, self.weights, ground_truth)
        if self.train_coarse:
            coarse_terms = coarse_model.losses(batch, coarse_outputs, self.coarse_weights)
            total = terms.pop("total")
            for name, value in coarse_terms.items():
                terms["coarse_" + name] = value
            terms["total"] = total + COARSE_LOSS_SCALE * coarse_terms["total"]
        return terms, _image_summary(coarse_outputs, fine_outputs, self.max_displacement)

    def trainable_variables(self):
        """The fine network's variables, and the coarse network's with train_coarse (after `tower`)."""
        variables = [v for v in tf.trainable_variables() if v.name.startswith(SCOPE + "/")]
        if self.train_coarse:
            variables += [v for v in tf.trainable_variables() if v.name.startswith(coarse.SCOPE + "/")]
        return variables

    def initialize(self, session, resumed):
        """A fresh run restores the coarse network from coarse_checkpoint; a resumed one has it (and
        the fine network) from its own training checkpoint."""
        what = "fine-tuned (--train_coarse)" if self.train_coarse else "frozen"
        if resumed:
            return ["coarse network (%s) from the training checkpoint, %s" % (self.backbone, what)]
        from model import inference
        variables = self._coarse_variables
        inference.check_checkpoint_matches(self.coarse_prefix, variables, self.backbone)
        tf.train.Saver(variables).restore(session, self.coarse_prefix)
        said = ["coarse network (%s) restored from %s, %s" % (self.backbone, self.coarse_prefix, what)]
        if self.fine_init_prefix is not None:
            # The network's own variables, not the optimizer's slots for them.
            fine_variables = tf.trainable_variables(SCOPE + "/")
            inference.check_variables_in_checkpoint(
                self.fine_init_prefix, fine_variables,
                "a fine network of uv_size %d, max_channels %d, %d input channels (--shading_cue)"
                % (self.uv_size, self.max_channels, input_channels(self.shading_cue)))
            tf.train.Saver(fine_variables).restore(session, self.fine_init_prefix)
            said.append("fine network started from %s (--fine_init)" % self.fine_init_prefix)
        return said

    def build_network(self):
        """Both networks (a fine export is self-contained: the coarse reconstruction is rebuilt from it)."""
        coarse_net = self._coarse_net()
        coarse_net(tf.zeros([1, ENCODER_SIZE, ENCODER_SIZE, 3]))
        if self._coarse_variables is None:
            self._coarse_variables = coarse_net.variables()
        fine_net = self._fine_net()
        fine_net(tf.zeros([1, self.uv_size, self.uv_size, input_channels(self.shading_cue)]))
        return coarse_net.variables() + fine_net.variables()


# Factor of the warm start's mean squared error (mm^2; ~0.004 at zero) in its total.
PRETRAIN_LOSS_SCALE = 1e3

# Pictures per image summary.
SUMMARY_IMAGES = 3


def _image_summary(coarse_outputs, fine_outputs, max_displacement):
    """input | coarse | fine render | UV photo | displacement of the first SUMMARY_IMAGES samples."""
    def panels(*arrays):
        return np.stack([summary_panels(*sample, max_displacement) for sample in zip(*arrays)])
    n = SUMMARY_IMAGES
    pictures = tf.numpy_function(
        panels, [coarse_outputs["input"][:n], coarse_outputs["render"][:n], coarse_outputs["mask"][:n],
                 fine_outputs["render"][:n], fine_outputs["mask"][:n], fine_outputs["uv_photo"][:n],
                 fine_outputs["displacement"][:n]], tf.uint8)
    return tf.summary.image("input_coarse_fine_uvphoto_displacement", pictures, max_outputs=n)
