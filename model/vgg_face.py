"""VGG-Face: the VGG-16 layout (Parkhi et al., BMVC 2015) up to fc7, and a MatConvNet weight loader.

Two users in this project:
  * the coarse encoder's `vgg_face` backbone (trainable, optionally initialised from the weights);
  * the facial perceptual loss (frozen features of the input and of the render).

Layout (MatConvNet `simplenn` names, as in the published `vgg-face.mat`):

    conv1_1 conv1_2 pool1 | conv2_1 conv2_2 pool2 | conv3_1..3 pool3 | conv4_1..3 pool4 |
    conv5_1..3 pool5 | fc6 (7x7 conv, VALID) | fc7 (1x1 conv)

Every conv is followed by ReLU, convs are 3x3 stride 1 with zero padding 1 ("SAME"), pools are 2x2
max with stride 2. Input is 224 x 224 RGB, so pool5 is 7 x 7 and fc6/fc7 are 1 x 1. The feature this
module returns is relu7, [B, 4096] for the published weights.

Weights are never baked into the graph (the published file holds ~540 MB of float32): the
variables are created with the shapes of the file and filled after initialisation by
`VggFace.load(session, weights)`.
"""
import collections
import os

import numpy as np
import scipy.io
import tensorflow.compat.v1 as tf

LAYER_NAMES = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
               "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3", "fc6", "fc7")
# Max-pool after these convs.
POOL_AFTER = ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3")
INPUT_SIZE = 224
# RGB mean of the VGG-Face training images, 0-255 (what the published file stores as averageImage).
DEFAULT_AVERAGE_RGB = (129.186279296875, 104.76238250732422, 93.59396362304688)

VggWeights = collections.namedtuple("VggWeights", ["layers", "average_rgb"])
VggWeights.__doc__ = """Weights of the VGG-Face layout.

layers: OrderedDict name -> (kernel [kh, kw, in, out] float32, bias [out] float32), LAYER_NAMES order.
average_rgb: [3] float32, 0-255, subtracted from the input image.
"""


def vgg16_shapes():
    """Kernel shapes of the published VGG-Face: OrderedDict name -> [kh, kw, in, out]."""
    widths = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    shapes = collections.OrderedDict()
    channels_in = 3
    for name, width in zip(LAYER_NAMES[:13], widths):
        shapes[name] = [3, 3, channels_in, width]
        channels_in = width
    shapes["fc6"] = [7, 7, 512, 4096]
    shapes["fc7"] = [1, 1, 4096, 4096]
    return shapes


def _field(struct, name):
    """Field `name` of a MATLAB struct as scipy returns it with squeeze_me/struct_as_record=False."""
    return getattr(struct, name) if hasattr(struct, name) else None


def load_vgg_face_mat(path):
    """Reads the VGG-Face weights from a MatConvNet `simplenn` .mat file.

    Accepts the published `vgg-face.mat` layout: top-level `layers` (a cell array of structs with
    `name`, `type` and `weights` = {kernel, bias}) and `meta.normalization.averageImage`; also the
    same inside a top-level `net` struct, and the older field names `filters`/`biases` and
    `normalization` at top level. Layers after fc7 (fc8, softmax) are ignored.

    Args:
      path: the .mat file.
    Returns:
      VggWeights.
    Raises:
      FileNotFoundError if the file is missing; ValueError naming the file and the layer when a layer
      of LAYER_NAMES is missing or its kernel is malformed.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError("VGG-Face weights not found: %s" % path)
    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as error:  # scipy raises several types for non-.mat input
        raise ValueError("%s is not a readable MATLAB .mat file (%s)" % (path, error)) from error
    root = mat["net"] if "net" in mat else None
    layers = _field(root, "layers") if root is not None else mat.get("layers")
    if layers is None:
        raise ValueError("%s has no `layers` cell array (expected a MatConvNet simplenn network)" % path)
    found = {}
    for layer in np.atleast_1d(layers):
        name = _field(layer, "name")
        if name not in LAYER_NAMES:
            continue
        weights = _field(layer, "weights")
        if weights is not None:
            kernel, bias = weights[0], weights[1]
        else:
            kernel, bias = _field(layer, "filters"), _field(layer, "biases")
        if kernel is None or bias is None:
            raise ValueError("%s: layer %s has no weights" % (path, name))
        kernel = np.asarray(kernel, dtype=np.float32)
        # squeeze_me drops singleton axes (a 1x1 fc7 kernel comes back 2-D); put them back.
        if kernel.ndim == 2:
            kernel = kernel[np.newaxis, np.newaxis]
        elif kernel.ndim == 3:
            kernel = kernel[..., np.newaxis]
        bias = np.asarray(bias, dtype=np.float32).reshape(-1)
        if kernel.ndim != 4 or kernel.shape[3] != bias.shape[0]:
            raise ValueError("%s: layer %s has kernel %s and bias %s, expected [kh,kw,in,out] and [out]"
                             % (path, name, kernel.shape, bias.shape))
        found[name] = (kernel, bias)
    missing = [name for name in LAYER_NAMES if name not in found]
    if missing:
        raise ValueError("%s lacks the VGG-Face layers %s" % (path, ", ".join(missing)))
    ordered = collections.OrderedDict((name, found[name]) for name in LAYER_NAMES)
    channels_in = 3
    for name, (kernel, _) in ordered.items():
        if kernel.shape[2] != channels_in:
            raise ValueError("%s: layer %s takes %d channels but the layer before gives %d"
                             % (path, name, kernel.shape[2], channels_in))
        channels_in = kernel.shape[3]
    return VggWeights(ordered, _average_rgb(mat, root, path))


def _average_rgb(mat, root, path):
    meta = _field(root, "meta") if root is not None else mat.get("meta")
    normalization = _field(meta, "normalization") if meta is not None else None
    if normalization is None:
        normalization = _field(root, "normalization") if root is not None else mat.get("normalization")
    average = _field(normalization, "averageImage") if normalization is not None else None
    if average is None:
        raise ValueError("%s has no meta.normalization.averageImage" % path)
    average = np.asarray(average, dtype=np.float32)
    # Either a per-channel mean [3] or a full mean image [H, W, 3]; the network needs the former.
    return average.reshape(-1, 3).mean(axis=0) if average.size > 3 else average.reshape(3)


class VggFace(object):
    """The VGG-Face layout up to relu7 as TF graph ops; variables under `scope`.

    Args:
      scope: variable scope name.
      shapes: OrderedDict name -> kernel shape (LAYER_NAMES order); default the published sizes.
        Build from `weights` to get the shapes of a file.
      trainable: False for the frozen perceptual-loss copy.
      average_rgb: [3] 0-255 mean subtracted from the input.
    """

    def __init__(self, scope, shapes=None, trainable=True, average_rgb=DEFAULT_AVERAGE_RGB):
        self.scope = scope
        self.shapes = shapes if shapes is not None else vgg16_shapes()
        self.trainable = trainable
        self.average_rgb = np.asarray(average_rgb, dtype=np.float32).reshape(3)
        self.variables = collections.OrderedDict()
        # Placeholder-fed assign ops, built with the variables so that loading works on a finalized graph.
        self._assign = {}
        self.feature_size = self.shapes["fc7"][3]

    @classmethod
    def from_weights(cls, scope, weights, trainable=True):
        shapes = collections.OrderedDict((n, list(k.shape)) for n, (k, _) in weights.layers.items())
        return cls(scope, shapes, trainable, weights.average_rgb)

    def __call__(self, images):
        """relu7 features.

        Args:
          images: [B, 224, 224, 3] float32 RGB in [0, 1].
        Returns:
          [B, F] float32 (F = 4096 for the published weights).
        """
        x = images * 255.0 - self.average_rgb
        with tf.variable_scope(self.scope, reuse=tf.AUTO_REUSE):
            for name in LAYER_NAMES:
                shape = self.shapes[name]
                with tf.variable_scope(name):
                    kernel = tf.get_variable(
                        "kernel", shape, trainable=self.trainable,
                        initializer=tf.variance_scaling_initializer(2.0, distribution="truncated_normal"))
                    bias = tf.get_variable("bias", shape[3:], trainable=self.trainable,
                                           initializer=tf.zeros_initializer())
                self.variables[name] = (kernel, bias)
                for variable in (kernel, bias):
                    value = tf.placeholder(tf.float32, variable.shape)
                    self._assign[variable.name] = (value, variable.assign(value))
                padding = "VALID" if name == "fc6" else "SAME"
                x = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, padding), bias))
                if name in POOL_AFTER:
                    x = tf.nn.max_pool2d(x, 2, 2, "VALID")
        return tf.reshape(x, [-1, self.feature_size])

    def load(self, session, weights):
        """Copies `weights` (VggWeights) into the variables; call after they are initialised."""
        if not self.variables:
            raise RuntimeError("VggFace.load: call the network on an input before loading weights")
        for name, arrays in weights.layers.items():
            for variable, array in zip(self.variables[name], arrays):
                if tuple(variable.shape.as_list()) != tuple(array.shape):
                    raise ValueError("VGG-Face layer %s: the network has %s, the weights have %s"
                                     % (name, variable.shape.as_list(), list(array.shape)))
                value, assign = self._assign[variable.name]
                session.run(assign, {value: array})
