"""Reconstruction of photos with a trained coarse network: the one path test.py and evaluate.py share.

    reconstructor = CoarseReconstructor(resolve_checkpoint("results/release/coarse"), FaceModel(), "compact")
    face, result, landmarks = reconstruct_photo_file(reconstructor, "photo.jpg")

The flags that choose what reconstructs (checkpoint, face model, backbone, detector) are defined
here once (`define_flags`) for both programs, so that one command line scores what another writes.
"""
import os

import numpy as np
import tensorflow.compat.v1 as tf

from model import coarse
from model.face import FaceModel, framing
from preprocess.photo import crop_photo_file

# Photo files taken from a folder (test.py --input, evaluate.py --photos/--scans); matched
# case-insensitively. A file named on its own is read whatever its extension.
PHOTO_EXTENSIONS = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp", ".gif")


def define_flags(flags):
    """Defines --checkpoint, --face_model_path, --backbone and --detector on an absl `flags` module."""
    flags.DEFINE_string("checkpoint", "results/release/coarse",
                        "Coarse checkpoint: a folder (its latest checkpoint) or a checkpoint prefix.")
    flags.DEFINE_string("face_model_path", "", "Face model npz the checkpoint was trained with; empty = default.")
    flags.DEFINE_enum("backbone", "compact", list(coarse.BACKBONES), "Encoder the checkpoint was trained with.")
    flags.DEFINE_enum("detector", "hog", ["hog", "cnn"], "dlib face detector.")


def reconstructor_from_flags(flag_values):
    """CoarseReconstructor for the parsed flags of `define_flags`; FileNotFoundError if no checkpoint."""
    return CoarseReconstructor(resolve_checkpoint(flag_values.checkpoint),
                               FaceModel(flag_values.face_model_path or None), flag_values.backbone)


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


class CoarseReconstructor(object):
    """The trained coarse network and the face model, for one 300 x 300 crop at a time."""

    def __init__(self, checkpoint, face_model, backbone):
        self.face_model = face_model
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.crop = tf.placeholder(tf.float32, [1, framing.CROP_SIZE, framing.CROP_SIZE, 3])
            net = coarse.CoarseNet(face_model.k_id, face_model.k_exp, face_model.k_tex, backbone)
            coeffs = net(coarse.resize_for_encoder(self.crop))
            outputs = coarse.render_coefficients(face_model, coeffs, framing.CROP_SIZE)
            self.fetches = {key: outputs[key] for key in
                            ("vertices", "colours", "landmarks", "render", "mask")}
            self.fetches["coeffs"] = coeffs
            self.session = tf.Session(graph=self.graph)
            tf.train.Saver(net.variables()).restore(self.session, checkpoint)
            self.graph.finalize()

    def __call__(self, crop_uint8):
        """crop [300, 300, 3] uint8 -> dict of numpy outputs of that one crop: vertices [N, 3] mm
        (model frame), colours [N, 3], landmarks [68, 2] crop pixels, render [300, 300, 3],
        mask [300, 300, 1], coeffs [C]."""
        values = self.session.run(self.fetches, {self.crop: crop_uint8[None].astype(np.float32) / 255.0})
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
    result = reconstructor(face.image)
    landmarks = framing.apply_affine(framing.invert_affine(face.matrix), result["landmarks"])
    return face, result, landmarks


def save_landmarks(path, landmarks):
    """Writes 68 landmarks [68, 2] as one `x y` line each (pixels, two decimals)."""
    np.savetxt(path, landmarks, fmt="%.2f")
