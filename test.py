"""Coarse 3D face reconstruction of photos: detect, crop, regress coefficients, write the results.

    python test.py --input PHOTO_OR_FOLDER --output_dir DIR [--checkpoint results/release/coarse]

For each photo NAME.ext (a folder is read in sorted order, not recursively), writes into DIR:
  NAME_coarse.obj      the mesh in millimetres (model frame: x right, y up, z towards the viewer),
                       with per-vertex colours (the shaded colour the render shows, `v x y z r g b`)
                       and the face model's UVs
  NAME_overlay.png     input crop | render over the crop | landmarks (green detected, red model)
  NAME_landmarks.txt   the model's 68 landmarks, one `x y` line each, in pixels of the ORIGINAL photo
  NAME_coeffs.npz      coefficients (whole vector and split by part), crop/matrix (photo -> crop)
                       and the detected landmarks (photo pixels)
NAME is the photo's file name without its extension; where two photos would share it (face.jpg and
face.png), each keeps its extension instead (face.jpg_coarse.obj, face.png_coarse.obj), so no result
overwrites another. The four files of a photo are written under temporary names and renamed
together when all are complete (model/output_files.py): a failed write leaves the previous results
or none, never a partial file.

A photo that can't be read or holds no face gets one line saying so and the others go on; so does a
photo whose results can't be written (full disk, a folder in the way). The exit status is non-zero
when no photo succeeded or any photo's results could not be written.
"""
import collections
import os
import sys
import time

import numpy as np
import tensorflow.compat.v1 as tf
from absl import app
from PIL import Image

from model import coarse, output_files
from model.face import FaceModel
from model.face import framing
from preprocess.photo import SkippedPhoto, crop_photo_file

flags = tf.app.flags
FLAGS = flags.FLAGS

flags.DEFINE_string("input", "", "A photo, or a folder of photos.")
flags.DEFINE_string("output_dir", "results/test", "Where the results are written.")
flags.DEFINE_string("checkpoint", "results/release/coarse",
                    "Coarse checkpoint: a folder (its latest checkpoint) or a checkpoint prefix.")
flags.DEFINE_string("face_model_path", "", "Face model npz the checkpoint was trained with; empty = default.")
flags.DEFINE_enum("backbone", "compact", list(coarse.BACKBONES), "Encoder the checkpoint was trained with.")
flags.DEFINE_enum("detector", "hog", ["hog", "cnn"], "dlib face detector.")

PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")


def list_photos(path):
    """The photo files named by --input: the file itself, or a folder's photos in sorted order."""
    if os.path.isdir(path):
        return [os.path.join(path, name) for name in sorted(os.listdir(path))
                if name.lower().endswith(PHOTO_EXTENSIONS) and os.path.isfile(os.path.join(path, name))]
    if os.path.isfile(path):
        return [path]
    raise FileNotFoundError("--input=%s is neither a file nor a folder" % path)


def output_names(photos):
    """{photo path: output name}: the file name without its extension, or with it where names would
    clash (face.jpg and face.png give face.jpg and face.png; a lone face.jpg gives face)."""
    names = {path: os.path.splitext(os.path.basename(path))[0] for path in photos}
    while True:
        counts = collections.Counter(names.values())
        clashing = [path for path, name in names.items() if counts[name] > 1]
        if not clashing:
            return names
        # File names are unique within the one folder that --input names, so this ends.
        for path in clashing:
            names[path] = os.path.basename(path)


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


def write_obj(obj, vertices, colours, uv, triangles):
    """OBJ with vertex colours (`v x y z r g b`, colours in [0, 1]) and UVs sharing the vertex index.

    Args:
      obj: text file open for writing.
      vertices: [N, 3] mm; colours: [N, 3]; uv: [N, 2] in [0, 1]; triangles: [T, 3] 0-based, CCW-front.
    """
    colours = np.clip(colours, 0.0, 1.0)
    obj.write("# coarse 3D face reconstruction, millimetres, x right, y up, z towards the viewer\n")
    for (x, y, z), (r, g, b) in zip(vertices, colours):
        obj.write("v %.4f %.4f %.4f %.4f %.4f %.4f\n" % (x, y, z, r, g, b))
    for u, v in uv:
        obj.write("vt %.6f %.6f\n" % (u, v))
    for a, b, c in np.asarray(triangles) + 1:
        obj.write("f %d/%d %d/%d %d/%d\n" % (a, a, b, b, c, c))


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
            check_checkpoint_matches(checkpoint, net.variables(), backbone)
            self.session = tf.Session(graph=self.graph)
            tf.train.Saver(net.variables()).restore(self.session, checkpoint)
            self.graph.finalize()

    def __call__(self, crop_uint8):
        """crop [300, 300, 3] uint8 -> dict of [0]-indexed numpy outputs (landmarks in crop pixels)."""
        values = self.session.run(self.fetches, {self.crop: crop_uint8[None].astype(np.float32) / 255.0})
        return {key: value[0] for key, value in values.items()}


OUTPUT_SUFFIXES = ("_coarse.obj", "_overlay.png", "_landmarks.txt", "_coeffs.npz")


def reconstruct_photo(reconstructor, path, output_dir, detector, name=None):
    """Writes the four result files of one photo, all or none (see the module docstring).

    `name` is the output name (default: the photo's file name without extension); returns
    output_dir/name. Raises SkippedPhoto when the photo has no usable face, OSError when the results
    can't be written (the previous results, if any, are left as they were).
    """
    face = crop_photo_file(path, detector=detector)
    result = reconstructor(face.image)
    name = os.path.join(output_dir, name or os.path.splitext(os.path.basename(path))[0])
    model = reconstructor.face_model
    panels = coarse.overlay_panels(face.image, result["render"], result["mask"], result["landmarks"],
                                   face.landmarks)
    to_photo = framing.invert_affine(face.matrix)
    landmarks_photo = framing.apply_affine(to_photo, result["landmarks"])
    parts = model.split_coefficients(result["coeffs"][None])
    with output_files.replacing_together([name + suffix for suffix in OUTPUT_SUFFIXES]) as files:
        obj, overlay, landmarks, coeffs = files
        with obj.open("w") as f:
            write_obj(f, result["vertices"], result["colours"], model.uv, model.triangles)
        with overlay.open("wb") as f:
            Image.fromarray(panels).save(f, format="PNG")
        with landmarks.open("w") as f:
            np.savetxt(f, landmarks_photo, fmt="%.2f")
        with coeffs.open("wb") as f:
            np.savez(f, coefficients=result["coeffs"],
                     **{key: np.asarray(value)[0] for key, value in parts.items()},
                     crop_matrix=face.matrix,
                     detected_landmarks=framing.apply_affine(to_photo, face.landmarks))
    return name


def main(argv):
    if len(argv) > 1:
        sys.exit("test.py: unexpected arguments %s (flags are --name=value)" % " ".join(argv[1:]))
    if not FLAGS.input:
        sys.exit("test.py: --input is required (a photo or a folder of photos)")
    try:
        photos = list_photos(FLAGS.input)
        checkpoint = resolve_checkpoint(FLAGS.checkpoint)
    except FileNotFoundError as error:
        sys.exit("test.py: %s" % error)
    if not photos:
        sys.exit("test.py: no photos (%s) in %s" % (" ".join(PHOTO_EXTENSIONS), FLAGS.input))
    try:
        os.makedirs(FLAGS.output_dir, exist_ok=True)
    except OSError as error:
        sys.exit("test.py: cannot create --output_dir=%s: %s" % (FLAGS.output_dir, error.strerror))
    if not os.access(FLAGS.output_dir, os.W_OK | os.X_OK):
        sys.exit("test.py: --output_dir=%s is not writable" % FLAGS.output_dir)
    try:
        reconstructor = CoarseReconstructor(checkpoint, FaceModel(FLAGS.face_model_path or None),
                                            FLAGS.backbone)
    except ValueError as error:
        sys.exit("test.py: %s" % error)
    names = output_names(photos)
    succeeded, failed = 0, []
    for path in photos:
        start = time.time()
        try:
            name = reconstruct_photo(reconstructor, path, FLAGS.output_dir, FLAGS.detector, names[path])
        except SkippedPhoto as skipped:
            print("test.py: skipped %s" % skipped, flush=True)
            continue
        except OSError as error:
            failed.append(path)
            print("test.py: FAILED %s: results not written: %s" % (path, error), flush=True)
            continue
        succeeded += 1
        print("test.py: %s -> %s_{coarse.obj,overlay.png,landmarks.txt,coeffs.npz} (%.2f s)"
              % (path, name, time.time() - start), flush=True)
    print("test.py: %d of %d photos reconstructed" % (succeeded, len(photos)))
    if failed:
        print("test.py: results of %d photo(s) could not be written: %s" % (len(failed), " ".join(failed)))
    if succeeded == 0 or failed:
        sys.exit(1)


if __name__ == "__main__":
    tf.disable_eager_execution()
    # absl's app.run, not tf.app.run, which shows a bad flag value as a traceback instead of one line.
    app.run(main)
