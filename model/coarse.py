"""Coarse stage: photo -> morphable-model coefficients -> rendered face, and its training losses.

One forward pass, top to bottom (`CoarseModel.forward`):

    crop [B,300,300,3] --resize--> [B,224,224,3] --encoder--> features [B,F]
      --five heads--> coefficients [B,C] = identity | expression | albedo | pose 6 | light 27
      --face model (model/face/forward.py)--> vertices, colours, landmarks --rasterizer--> render [B,224,224,3] + mask

The heads start at zero weights and biases, so the first prediction is exactly the zero vector:
the mean face, frontal (pose angles 0), centred where the crop rule puts a face (tx = ty = 0,
log_scale = 0) and lit by the renderer's default ambient light (light = 0).

Backbones (flag `backbone`):
  * `compact` (default): a ResNet-10 layout at half the ResNet width (32-64-128-256 channels, one
    basic block per stage), then the 7 x 7 map squeezed to 32 channels, flattened and mapped to 512
    features: ~2.1 M parameters with the heads, ~0.25 GMAC per 224 image, so it trains on a 2-core CPU.
    GroupNorm instead of BatchNorm: no moving statistics, so training and batch-1 inference compute
    the same function and a resumed run needs no extra state. It is one fused C++ op
    (model/group_norm.py): written as TensorFlow ops it cost as much as the convolutions.
  * `vgg_face`: the VGG-16 layout up to relu7 (model/vgg_face.py), optionally initialised from a
    user-supplied MatConvNet `vgg-face.mat`, as in the paper.
"""
import collections

import numpy as np
import tensorflow.compat.v1 as tf

from model import data, losses, training
from model.data import training_batch
from model.face import NUM_LIGHT, NUM_POSE, forward
from model.face.framing import CROP_SIZE, ENCODER_SIZE
from model.face.model import clip_to_unit
from model.group_norm import group_norm
from model.vgg_face import INPUT_SIZE as VGG_INPUT_SIZE, VggFace
from preprocess import schema

BACKBONES = ("compact", "vgg_face")
SCOPE = "coarse"
# Pose head output multipliers (pitch, yaw, roll rad, tx, ty crop pixels, log_scale): the heads emit
# values of order one; translations span tens of pixels, so they get a larger unit.
POSE_OUTPUT_SCALE = np.array([1.0, 1.0, 1.0, 10.0, 10.0, 1.0], dtype=np.float32)
# Segmentation labels that the face model explains; eyes, mouth interior, hair and background it does not.
FACE_REGION_LABELS = (schema.SKIN, schema.NOSE, schema.BROWS, schema.LIPS)
# Scope of the frozen VGG-Face of the perceptual loss (never trained, never checkpointed).
PERCEPTUAL_SCOPE = "perceptual_vgg_face"
# Pictures per image summary.
SUMMARY_IMAGES = 3
_GROUPS = 8
_COMPACT_WIDTHS = (32, 64, 128, 256)
_SQUEEZE_CHANNELS = 32
_FEATURES = 512

LossWeights = collections.namedtuple(
    "LossWeights", ["photo", "landmark", "perceptual", "id", "exp", "tex", "gt_shape"], defaults=[0.0])
LossWeights.__doc__ = """Weights of the coarse losses (see model/losses.py and train.py's flags).
gt_shape weighs the synthetic supervision of the shape (losses.supervised_shape_loss, mm^2; not in
the paper; 0 = off, and it only acts on samples that carry ground truth)."""
# The self-supervised weights (train.py's defaults); test-time fitting minimises the same sum.
# run_train.sh adds the synthetic shape supervision on top (its GT_SHAPE_WEIGHT).
TRAINING_LOSS_WEIGHTS = LossWeights(photo=1.9, landmark=1.6e-3, perceptual=0.2, id=1e-3, exp=8e-4, tex=1e-3)


def _conv(x, channels, size, stride, name, bias=False):
    with tf.variable_scope(name):
        kernel = tf.get_variable(
            "kernel", [size, size, x.shape[-1], channels],
            initializer=tf.variance_scaling_initializer(2.0, distribution="truncated_normal"))
        x = tf.nn.conv2d(x, kernel, stride, "SAME")
        if bias:
            x = tf.nn.bias_add(x, tf.get_variable("bias", [channels], initializer=tf.zeros_initializer()))
    return x


def _group_norm(x, name, gamma_init=1.0):
    channels = x.shape[-1]
    with tf.variable_scope(name):
        gamma = tf.get_variable("gamma", [channels], initializer=tf.constant_initializer(gamma_init))
        beta = tf.get_variable("beta", [channels], initializer=tf.zeros_initializer())
    return group_norm(x, gamma, beta, _GROUPS)


def _basic_block(x, channels, stride, name):
    """ResNet basic block; the last norm starts at zero so that each block starts as the identity."""
    with tf.variable_scope(name):
        shortcut = x
        if stride != 1 or x.shape[-1] != channels:
            shortcut = _group_norm(_conv(x, channels, 1, stride, "project"), "project_norm")
        y = tf.nn.relu(_group_norm(_conv(x, channels, 3, stride, "conv1"), "norm1"))
        y = _group_norm(_conv(y, channels, 3, 1, "conv2"), "norm2", gamma_init=0.0)
        return tf.nn.relu(y + shortcut)


def compact_backbone(images):
    """The default encoder.

    Args:
      images: [B, 224, 224, 3] float32 RGB in [0, 1].
    Returns:
      [B, 512] float32 features.
    """
    x = _conv(images - 0.5, _COMPACT_WIDTHS[0], 7, 2, "stem")
    x = tf.nn.relu(_group_norm(x, "stem_norm"))
    x = tf.nn.max_pool2d(x, 3, 2, "SAME")
    for index, channels in enumerate(_COMPACT_WIDTHS):
        x = _basic_block(x, channels, 1 if index == 0 else 2, "stage%d" % (index + 1))
    # Flatten the 7 x 7 map (squeezed to few channels) rather than average-pool it: pose and
    # landmark positions are where things are, which global pooling throws away.
    x = tf.nn.relu(_group_norm(_conv(x, _SQUEEZE_CHANNELS, 1, 1, "squeeze"), "squeeze_norm"))
    x = tf.reshape(x, [-1, int(np.prod(x.shape[1:]))])
    with tf.variable_scope("features"):
        weights = tf.get_variable("weights", [x.shape[-1], _FEATURES],
                                  initializer=tf.variance_scaling_initializer(2.0))
        bias = tf.get_variable("bias", [_FEATURES], initializer=tf.zeros_initializer())
    return tf.nn.relu(tf.matmul(x, weights) + bias)


class CoarseNet(object):
    """Encoder plus five linear heads; variables under the scope `coarse`.

    Args:
      k_id, k_exp, k_tex: coefficient counts of the face model.
      backbone: one of BACKBONES.
      vgg_weights: for `vgg_face`, a VggWeights whose shapes the backbone takes (and which `init_from_vgg`
        loads); None builds the published VGG-Face sizes with random initial weights.
    """

    def __init__(self, k_id, k_exp, k_tex, backbone="compact", vgg_weights=None):
        if backbone not in BACKBONES:
            raise ValueError("backbone must be one of %s, got %r" % (", ".join(BACKBONES), backbone))
        self.head_sizes = collections.OrderedDict(
            [("identity", k_id), ("expression", k_exp), ("albedo", k_tex), ("pose", NUM_POSE), ("light", NUM_LIGHT)])
        self.coeff_size = sum(self.head_sizes.values())
        self.backbone = backbone
        self._vgg_weights = vgg_weights
        self._vgg = None
        if backbone == "vgg_face":
            scope = SCOPE + "/vgg_face"
            self._vgg = (VggFace.from_weights(scope, vgg_weights) if vgg_weights is not None
                         else VggFace(scope))

    def __call__(self, images):
        """Coefficients of the faces in `images`.

        Args:
          images: [B, 224, 224, 3] float32 RGB in [0, 1] (the 300 crop resized to ENCODER_SIZE).
        Returns:
          [B, C] float32 in the face model's layout (identity | expression | albedo | pose | light).
        """
        with tf.variable_scope(SCOPE, reuse=tf.AUTO_REUSE):
            if self._vgg is not None:
                features = self._vgg(images)
            else:
                with tf.variable_scope("compact"):
                    features = compact_backbone(images)
            outputs = []
            for name, size in self.head_sizes.items():
                with tf.variable_scope("head_" + name):
                    weights = tf.get_variable("weights", [features.shape[-1], size],
                                              initializer=tf.zeros_initializer())
                    bias = tf.get_variable("bias", [size], initializer=tf.zeros_initializer())
                    head = tf.matmul(features, weights) + bias
                if name == "pose":
                    head = head * POSE_OUTPUT_SCALE
                outputs.append(head)
        return tf.concat(outputs, axis=1)

    def init_from_vgg(self, session):
        """Loads the VGG-Face weights into the `vgg_face` backbone (a fresh training run, not a resume)."""
        if self._vgg is None or self._vgg_weights is None:
            raise ValueError("init_from_vgg needs backbone='vgg_face' and vgg_weights")
        self._vgg.load(session, self._vgg_weights)

    @staticmethod
    def variables():
        """The network's variables (what a checkpoint of the coarse stage must hold)."""
        return tf.global_variables(SCOPE + "/")


def network(face_model, backbone="compact", vgg_weights=None):
    """The coarse network for a face model's coefficient sizes (vgg_weights initialise only the
    vgg_face backbone)."""
    return CoarseNet(face_model.k_id, face_model.k_exp, face_model.k_tex, backbone,
                     vgg_weights if backbone == "vgg_face" else None)


def resize_for_encoder(images):
    """[B, 300, 300, 3] crops -> [B, 224, 224, 3] (area-averaging, so no aliasing)."""
    return tf.image.resize(images, [ENCODER_SIZE, ENCODER_SIZE], method="area")


def composite(render, mask, images):
    """Render over photo: mask * render + (1 - mask) * images, all [B,H,W,*]."""
    return mask * render + (1.0 - mask) * images


class CoarseModel(object):
    """The coarse stage as one object: forward pass and losses.

    Args:
      face_model: model.face.FaceModel.
      net: CoarseNet (None for a model that only decodes given coefficients and scores them).
      render_size: side of the training render (ENCODER_SIZE: the resized input it is compared with).
      perceptual_net: a frozen VggFace, or None to leave the perceptual loss off.
    """

    def __init__(self, face_model, net, render_size=ENCODER_SIZE, perceptual_net=None):
        if net is not None and net.coeff_size != face_model.coeff_size:
            raise ValueError("network emits %d coefficients, the face model takes %d"
                             % (net.coeff_size, face_model.coeff_size))
        self.face_model = face_model
        self.net = net
        self.render_size = render_size
        self.perceptual_net = perceptual_net

    def forward(self, crops):
        """crops [B, 300, 300, 3] in [0, 1] -> `decode` of the network's coefficients."""
        return self.decode(self.net(resize_for_encoder(crops)), crops)

    def decode(self, coeffs, crops):
        """Coefficients [B, C] of the faces in crops [B, 300, 300, 3] -> dict: the face's one forward
        path (model.face.forward.render_face: vertices mm, normals, colours, landmarks in render
        pixels, render [B,S,S,3] on black, mask [B,S,S,1], ...) at render_size, plus coeffs and input
        (the crops at render_size, what the render is compared with)."""
        outputs = forward.render_face(self.face_model, coeffs, self.render_size)
        outputs["coeffs"] = coeffs
        outputs["input"] = tf.image.resize(crops, [self.render_size] * 2, method="area")
        return outputs

    def losses(self, batch, outputs, weights):
        """Coarse losses of one batch.

        Args:
          batch: dict from model.data.make_dataset: landmarks [B,68,2] crop pixels, segmentation
            [B,300,300] int32.
          outputs: `forward` of batch["image"].
          weights: LossWeights.
        Returns:
          OrderedDict name -> scalar: photometric, landmark, regularization, perceptual (only when a
          perceptual net is set), gt_shape (only with weights.gt_shape > 0 and a batch read with
          keep_ground_truth: model.data) and total (the weighted sum that training minimises).

        The photometric term compares the render clipped to [0, 1] (losses.composite_render's
        reason: the SH shading leaves the photo's range in shadows and highlights).
        """
        size = self.render_size
        segmentation = tf.image.resize(batch["segmentation"][..., tf.newaxis], [size, size],
                                       method="nearest")[..., 0]
        mask = outputs["mask"] * losses.region_mask(segmentation, FACE_REGION_LABELS)
        target_landmarks = batch["landmarks"] * (size / float(CROP_SIZE))
        parts = self.face_model.split_coefficients(outputs["coeffs"])
        terms = collections.OrderedDict()
        terms["photometric"] = losses.photometric_loss(outputs["input"], clip_to_unit(outputs["render"]),
                                                       mask)
        terms["landmark"] = losses.landmark_loss(outputs["landmarks"], target_landmarks,
                                                 losses.landmark_weights())
        terms["regularization"] = losses.coefficient_regularization(
            parts["identity"], parts["expression"], parts["albedo"], weights.id, weights.exp, weights.tex)
        total = (weights.photo * terms["photometric"] + weights.landmark * terms["landmark"]
                 + terms["regularization"])
        if weights.gt_shape > 0 and data.GT_PRESENT in batch:
            terms["gt_shape"] = self.supervised_shape_loss(batch, outputs)
            total += weights.gt_shape * terms["gt_shape"]
        if self.perceptual_net is not None:
            composited = composite(outputs["render"], outputs["mask"], outputs["input"])
            pair = tf.image.resize(tf.concat([outputs["input"], composited], 0), [VGG_INPUT_SIZE] * 2)
            features = tf.split(self.perceptual_net(pair), 2, axis=0)
            terms["perceptual"] = losses.perceptual_loss(features[0], features[1])
            total += weights.perceptual * terms["perceptual"]
        terms["total"] = total
        return terms


    def supervised_shape_loss(self, batch, outputs):
        """losses.supervised_shape_loss of the predicted shape (`decode`'s vertices: identity and
        expression, model frame) against the ground truth's, mirrored for the samples the
        augmentation flipped."""
        fm = self.face_model
        truth = fm.split_coefficients(batch[schema.GT_COEFFICIENTS])
        target = fm.shape(truth["identity"], truth["expression"])
        target = tf.where(batch[data.GT_FLIPPED], losses.mirrored_vertices(target, fm.mirror), target)
        return losses.supervised_shape_loss(outputs["vertices"], target, batch[data.GT_PRESENT])


class CoarseStage(training.Stage):
    """The coarse stage as model.training runs it: data, CoarseModel and its losses, the network's
    trainable variables, and the pictures of its summaries.

    Args:
      face_model: model.face.FaceModel.
      data_pattern: glob of the training tfrecords, or a model.data.Mixture of several folders.
      batch_size: images per step.
      weights: LossWeights.
      backbone: one of BACKBONES.
      vgg_weights: a VggWeights (model.vgg_face.load_vgg_face_mat) or None: initialises a fresh
        `vgg_face` encoder, and turns the perceptual loss on when weights.perceptual > 0.
      seed: data order of a run starting at step k is seeded with seed + k.
      skip_bad_records: skip unreadable tfrecord files and records (model.data.make_dataset),
        counted in the loop's log line and summaries, instead of stopping.
      shard: (index, count): read only every count-th tfrecord file from the index-th
        (model.data.make_dataset; one shard per replica of a cluster, model/cluster.py), or None.
      coarse_init: a coarse checkpoint (folder or prefix: an export such as results/release/coarse,
        or a training folder) a fresh run starts the network from instead of its initialisers (the
        optimizer's slots start fresh); its stage.json must name this face model and backbone. A
        resumed run ignores it. None: the initialisers.
    """

    name = "coarse"

    def __init__(self, face_model, data_pattern, batch_size, weights, backbone="compact", vgg_weights=None,
                 seed=0, skip_bad_records=False, shard=None, coarse_init=None):
        if backbone not in BACKBONES:
            raise ValueError("backbone must be one of %s, got %r" % (", ".join(BACKBONES), backbone))
        self.coarse_init_prefix = None
        if coarse_init:
            from model import inference
            try:
                prefix = inference.resolve_checkpoint(coarse_init)
            except FileNotFoundError:
                raise FileNotFoundError("--coarse_init: no checkpoint at %s" % coarse_init) from None
            found = training.read_stage_config(prefix)
            training.check_stage_config(found, stage_config(face_model, backbone), "--coarse_init %s" % coarse_init)
            training.check_face_model(found, face_model, "--coarse_init %s" % coarse_init)
            self.coarse_init_prefix = prefix
        self.face_model = face_model
        self.data_pattern = data_pattern
        self.batch_size = batch_size
        self.weights = weights
        self.backbone = backbone
        self.vgg_weights = vgg_weights
        self.seed = seed
        self.skip_bad_records = skip_bad_records
        self.shard = shard
        self._graph = None
        self._net = None
        self._perceptual_net = None

    def config(self):
        return stage_config(self.face_model, self.backbone)

    def _network(self):
        return network(self.face_model, self.backbone, self.vgg_weights)

    def inputs(self, start_step):
        return training_batch(self.data_pattern, self.batch_size, self.seed + start_step, self.skip_bad_records,
                              self.shard, keep_ground_truth=self.weights.gt_shape > 0)

    def tower(self, batch):
        # One network object per graph; every tower of that graph calls it (its variables are
        # tf.get_variable under AUTO_REUSE, so the towers share them).
        graph = tf.get_default_graph()
        if self._graph is not graph:
            self._graph = graph
            self._net = self._network()
            self._perceptual_net = None
            if self.vgg_weights is not None and self.weights.perceptual > 0:
                self._perceptual_net = VggFace.from_weights(PERCEPTUAL_SCOPE, self.vgg_weights, trainable=False)
        model = CoarseModel(self.face_model, self._net, perceptual_net=self._perceptual_net)
        outputs = model.forward(batch["image"])
        return model.losses(batch, outputs, self.weights), _image_summary(batch, outputs)

    def trainable_variables(self):
        return tf.trainable_variables(SCOPE + "/")

    def frozen_variables(self):
        return tf.global_variables(PERCEPTUAL_SCOPE + "/")

    def initialize(self, session, resumed):
        lines = []
        if not resumed and self.coarse_init_prefix is not None:
            from model import inference
            variables = self.trainable_variables()   # not the optimizer's slots (an export has none)
            inference.check_checkpoint_matches(self.coarse_init_prefix, variables, self.backbone)
            tf.train.Saver(variables).restore(session, self.coarse_init_prefix)
            lines.append("coarse network started from %s (--coarse_init)" % self.coarse_init_prefix)
        elif not resumed and self.backbone == "vgg_face" and self.vgg_weights is not None:
            self._net.init_from_vgg(session)
            lines.append("vgg_face encoder initialised from the VGG-Face weights")
        if self._perceptual_net is not None:
            self._perceptual_net.load(session, self.vgg_weights)
            lines.append("perceptual loss on (frozen VGG-Face)")
        else:
            lines.append("perceptual loss off (%s)" % ("perceptual weight 0" if self.vgg_weights is not None
                                                       else "no VGG-Face weights"))
        return lines

    def build_network(self):
        net = network(self.face_model, self.backbone)
        net(tf.zeros([1, ENCODER_SIZE, ENCODER_SIZE, 3]))
        return net.variables()


def stage_config(face_model, backbone):
    """The coarse stage's config (model.training): what a checkpoint of this network needs to be
    loaded and matched (stage, backbone, the face model's file and SHA-256, coefficient sizes)."""
    config = dict(stage=CoarseStage.name, backbone=backbone, uv_size=None, crop_size=CROP_SIZE,
                  encoder_size=ENCODER_SIZE)
    config.update(training.face_model_config(face_model))
    return config


def _image_summary(batch, outputs):
    """input | render | landmarks pictures of the first SUMMARY_IMAGES samples (overlay_panels)."""
    def panels(images, renders, masks, predicted, target):
        return np.stack([overlay_panels(*sample) for sample in zip(images, renders, masks, predicted, target)])
    scale = ENCODER_SIZE / float(CROP_SIZE)
    n = SUMMARY_IMAGES
    pictures = tf.numpy_function(
        panels, [outputs["input"][:n], outputs["render"][:n], outputs["mask"][:n], outputs["landmarks"][:n],
                 batch["landmarks"][:n] * scale], tf.uint8)
    return tf.summary.image("input_render_landmarks", pictures, max_outputs=n)


def _draw_points(image, points, colour, radius):
    """Anti-aliased filled discs of `radius` pixels at points [K, 2] (continuous x, y pixels, pixel
    centres at +0.5) on image [H, W, 3] uint8, in place (OpenCV, sub-pixel centres)."""
    import cv2
    bits = 4  # sub-pixel precision of the centres: 1/16 pixel
    for x, y in np.asarray(points, dtype=np.float64):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        # OpenCV puts pixel centres at integers; far-off points are clamped (they draw nothing).
        centre = tuple(int(round(np.clip(c - 0.5, -1e4, 1e4) * (1 << bits))) for c in (x, y))
        cv2.circle(image, centre, radius << bits, colour, thickness=-1, lineType=cv2.LINE_AA, shift=bits)


def overlay_panels(image, render, mask, predicted_landmarks, target_landmarks=None):
    """The stage's picture: input | render over input | input with landmarks.

    Args:
      image: [H, W, 3] float in [0, 1] or uint8, the input crop.
      render: [H, W, 3] float in [0, 1], the rendered face; mask: [H, W, 1] its coverage.
      predicted_landmarks: [68, 2] model landmarks, pixels of `image` (drawn red).
      target_landmarks: [68, 2] detected landmarks (drawn green), or None.
    Returns:
      [H, 3 W, 3] uint8.
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    mask = np.asarray(mask, dtype=np.float32).reshape(image.shape[:2] + (1,))
    overlay = mask * np.clip(render, 0.0, 1.0) + (1.0 - mask) * image
    image, overlay = (np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8) for x in (image, overlay))
    marked = image.copy()
    radius = max(1, image.shape[0] // 150)
    if target_landmarks is not None:
        _draw_points(marked, target_landmarks, (0, 255, 0), radius)
    _draw_points(marked, predicted_landmarks, (255, 0, 0), radius)
    return np.concatenate([image, overlay, marked], axis=1)
