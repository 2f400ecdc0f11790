"""Reconstruction of photos with a trained coarse network: the one path test.py and evaluate.py share.

    reconstructor = CoarseReconstructor(resolve_checkpoint("results/release/coarse"), FaceModel(), "compact")
    face, result, landmarks = reconstruct_photo_file(reconstructor, "photo.jpg")

The flags that choose what reconstructs (checkpoint, face model, backbone, detector, fitting steps)
are defined here once (`define_flags`) for both programs, so that one command line scores what
another writes.
"""
import os

import numpy as np
import tensorflow.compat.v1 as tf

from model import coarse, fitting, output_files
from model.face import FaceModel, framing
from preprocess.photo import crop_photo_file

# Photo files taken from a folder (test.py --input, evaluate.py --photos/--scans); matched
# case-insensitively. A file named on its own is read whatever its extension.
PHOTO_EXTENSIONS = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp", ".gif")


def define_flags(flags):
    """Defines --checkpoint, --face_model_path, --backbone, --detector and --fit_steps on an absl
    `flags` module."""
    flags.DEFINE_string("checkpoint", "results/release/coarse",
                        "Coarse checkpoint: a folder (its latest checkpoint) or a checkpoint prefix.")
    flags.DEFINE_string("face_model_path", "", "Face model npz the checkpoint was trained with; empty = default.")
    flags.DEFINE_enum("backbone", "compact", list(coarse.BACKBONES), "Encoder the checkpoint was trained with.")
    flags.DEFINE_enum("detector", "hog", ["hog", "cnn"], "dlib face detector.")
    flags.DEFINE_integer("fit_steps", fitting.DEFAULT_STEPS,
                         "Test-time fitting steps from the network's prediction (model/fitting.py; "
                         "0 = the network alone, as in the paper).", lower_bound=0)


def reconstructor_from_flags(flag_values):
    """CoarseReconstructor for the parsed flags of `define_flags`; FileNotFoundError if no checkpoint."""
    return CoarseReconstructor(resolve_checkpoint(flag_values.checkpoint),
                               FaceModel(flag_values.face_model_path or None), flag_values.backbone,
                               flag_values.fit_steps)


def list_photos(path):
    """The photo files named by `path`: the file itself, or a folder's photos (PHOTO_EXTENSIONS) in
    sorted order, not recursively. FileNotFoundError naming `path` if it is neither."""
    if os.path.isdir(path):
        return [os.path.join(path, name) for name in sorted(os.listdir(path))
                if name.lower().endswith(PHOTO_EXTENSIONS) and os.path.isfile(os.path.join(path, name))]
    if os.path.isfile(path):
        return [path]
    raise FileNotFoundError("%s is neither a file nor a folder" % path)


def resolve_checkpoint(path):
    """Checkpoint prefix from a folder or a prefix; FileNotFoundError naming `path` if there is none."""
    prefix = tf.train.latest_checkpoint(path) if os.path.isdir(path) else path
    if prefix is None or not tf.io.gfile.exists(prefix + ".index"):
        raise FileNotFoundError("no coarse checkpoint at %s (train one with run_train.sh, or pass "
                                "--checkpoint)" % path)
    return prefix


def check_checkpoint_matches(checkpoint, variables, backbone):
    """Raises ValueError naming the mismatch when `checkpoint` can't be restored into `variables` (the
    network built for --backbone=`backbone` and the face model): another backbone, or other sizes."""
    stored = dict(tf.train.list_variables(checkpoint))
    stored_backbones = sorted({name.split("/")[1] for name in stored
                               if name.startswith(coarse.SCOPE + "/") and name.split("/")[1] in coarse.BACKBONES})
    if stored_backbones and backbone not in stored_backbones:
        raise ValueError("checkpoint %s holds a --backbone=%s network, not --backbone=%s"
                         % (checkpoint, stored_backbones[0], backbone))
    for variable in variables:
        name, shape = variable.op.name, variable.shape.as_list()
        if name not in stored:
            raise ValueError("checkpoint %s has no variable %s: it is not a coarse network for "
                             "--backbone=%s" % (checkpoint, name, backbone))
        if stored[name] != shape:
            raise ValueError("checkpoint %s has %s of shape %s, the network here %s: was it trained "
                             "with another face model (--face_model_path)?"
                             % (checkpoint, name, stored[name], shape))


class CoarseReconstructor(object):
    """The trained coarse network, test-time fitting and the face model, for one 300 x 300 crop at a time.

    fit_steps: test-time fitting steps from the network's prediction (model/fitting.py; 0: the
    network alone).
    """

    def __init__(self, checkpoint, face_model, backbone, fit_steps=0):
        self.face_model = face_model
        self.fit_steps = fit_steps
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.crop = tf.placeholder(tf.float32, [1, framing.CROP_SIZE, framing.CROP_SIZE, 3])
            net = coarse.CoarseNet(face_model.k_id, face_model.k_exp, face_model.k_tex, backbone)
            self.network_coeffs = net(coarse.resize_for_encoder(self.crop))
            # Fed with the fitted coefficients when fitting; the network's otherwise.
            self.coeffs = tf.placeholder_with_default(self.network_coeffs, self.network_coeffs.shape)
            outputs = coarse.render_coefficients(face_model, self.coeffs, framing.CROP_SIZE)
            self.fetches = {key: outputs[key] for key in
                            ("vertices", "colours", "landmarks", "render", "mask")}
            self.fetches["coeffs"] = self.coeffs
            check_checkpoint_matches(checkpoint, net.variables(), backbone)
            self.fitter = fitting.CoefficientFitter(face_model) if fit_steps > 0 else None
            self.session = tf.Session(graph=self.graph)
            tf.train.Saver(net.variables()).restore(self.session, checkpoint)
            if self.fitter is not None:
                self.session.run(self.fitter.initializer())
            self.graph.finalize()

    def __call__(self, crop_uint8, landmarks=None, segmentation=None):
        """crop [300, 300, 3] uint8, and when fitting its landmarks [68, 2] (crop pixels) and
        segmentation [300, 300] (preprocess/schema.py labels) -> dict of numpy outputs of that one
        crop: vertices [N, 3] mm (model frame), colours [N, 3], landmarks [68, 2] crop pixels,
        render [300, 300, 3], mask [300, 300, 1], coeffs [C] (after fitting: what the rest shows),
        network_coeffs [C] (the network's, before fitting)."""
        feed = {self.crop: crop_uint8[None].astype(np.float32) / 255.0}
        if self.fitter is None:
            values = self.session.run(self.fetches, feed)
            values["network_coeffs"] = values["coeffs"]
        else:
            if landmarks is None or segmentation is None:
                raise ValueError("fitting (fit_steps=%d) needs the crop's landmarks and segmentation"
                                 % self.fit_steps)
            network = self.session.run(self.network_coeffs, feed)
            fitted = self.fitter.fit(self.session, crop_uint8[None], np.asarray(landmarks)[None],
                                     np.asarray(segmentation)[None], network, self.fit_steps)
            values = self.session.run(self.fetches, {self.coeffs: fitted})
            values["network_coeffs"] = network
        return {key: value[0] for key, value in values.items()}


def reconstruct_photo_file(reconstructor, path, detector="hog"):
    """Detects, crops and reconstructs the largest face of one photo file.

    Returns:
      (face, result, landmarks): the preprocess.photo.FaceCrop, the reconstructor's outputs for its
      crop, and the model's 68 landmarks [68, 2] in pixels of the original photo (continuous,
      pixel centres at +0.5).
    Raises:
      preprocess.photo.SkippedPhoto: the file is unreadable or holds no face.
    """
    face = crop_photo_file(path, detector=detector)
    result = reconstructor(face.image, face.landmarks, face.segmentation)
    landmarks = framing.apply_affine(framing.invert_affine(face.matrix), result["landmarks"])
    return face, result, landmarks


def save_landmarks(path_or_file, landmarks):
    """Writes 68 landmarks [68, 2] as one `x y` line each (pixels, two decimals): to a path (through
    model/output_files) or to an open text file (a caller writing several files together)."""
    if isinstance(path_or_file, (str, os.PathLike)):
        with output_files.replacing(path_or_file, "w") as f:
            np.savetxt(f, landmarks, fmt="%.2f")
    else:
        np.savetxt(path_or_file, landmarks, fmt="%.2f")
