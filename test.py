"""Coarse 3D face reconstruction of photos: detect, crop, regress coefficients, fit, write the results.

    python test.py --input PHOTO_OR_FOLDER --output_dir DIR [--checkpoint results/release/coarse]
                   [--fit_steps 50]

The network's coefficients are refined per photo by --fit_steps steps of test-time fitting
(model/fitting.py: the training losses against the detected landmarks and the photo); 0 keeps the
network's prediction alone, as in the paper.

For each photo NAME.ext (a folder: its files with an extension of model.inference.PHOTO_EXTENSIONS,
in any case, in sorted order, not recursively), writes into DIR:
  NAME_coarse.obj      the mesh in millimetres (model frame: x right, y up, z towards the viewer),
                       with per-vertex colours (the shaded colour the render shows, `v x y z r g b`)
                       and the face model's UVs
  NAME_overlay.png     input crop | render over the crop | landmarks (green detected, red model)
  NAME_landmarks.txt   the model's 68 landmarks, one `x y` line each, in pixels of the ORIGINAL photo
  NAME_coeffs.npz      coefficients (whole vector and split by part: after fitting, what the mesh
                       shows), network_coefficients (the network's prediction, before fitting),
                       fit_steps, crop/matrix (photo -> crop) and the detected landmarks (photo pixels)
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

from model import coarse, inference, output_files
from model.face import framing
from preprocess.photo import SkippedPhoto

flags = tf.app.flags
FLAGS = flags.FLAGS

flags.DEFINE_string("input", "", "A photo, or a folder of photos.")
flags.DEFINE_string("output_dir", "results/test", "Where the results are written.")
inference.define_flags(flags)


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


OUTPUT_SUFFIXES = ("_coarse.obj", "_overlay.png", "_landmarks.txt", "_coeffs.npz")


def reconstruct_photo(reconstructor, path, output_dir, detector, name=None):
    """Writes the four result files of one photo, all or none (see the module docstring).

    `name` is the output name (default: the photo's file name without extension); returns
    output_dir/name. Raises SkippedPhoto when the photo has no usable face, OSError when the results
    can't be written (the previous results, if any, are left as they were).
    """
    face, result, landmarks_photo = inference.reconstruct_photo_file(reconstructor, path, detector)
    name = os.path.join(output_dir, name or os.path.splitext(os.path.basename(path))[0])
    model = reconstructor.face_model
    panels = coarse.overlay_panels(face.image, result["render"], result["mask"], result["landmarks"],
                                   face.landmarks)
    to_photo = framing.invert_affine(face.matrix)
    parts = model.split_coefficients(result["coeffs"][None])
    with output_files.replacing_together([name + suffix for suffix in OUTPUT_SUFFIXES]) as files:
        obj, overlay, landmarks, coeffs = files
        with obj.open("w") as f:
            write_obj(f, result["vertices"], result["colours"], model.uv, model.triangles)
        with overlay.open("wb") as f:
            Image.fromarray(panels).save(f, format="PNG")
        with landmarks.open("w") as f:
            inference.save_landmarks(f, landmarks_photo)
        with coeffs.open("wb") as f:
            np.savez(f, coefficients=result["coeffs"],
                     **{key: np.asarray(value)[0] for key, value in parts.items()},
                     network_coefficients=result["network_coeffs"], fit_steps=reconstructor.fit_steps,
                     crop_matrix=face.matrix,
                     detected_landmarks=framing.apply_affine(to_photo, face.landmarks))
    return name


def main(argv):
    if len(argv) > 1:
        sys.exit("test.py: unexpected arguments %s (flags are --name=value)" % " ".join(argv[1:]))
    if not FLAGS.input:
        sys.exit("test.py: --input is required (a photo or a folder of photos)")
    try:
        photos = inference.list_photos(FLAGS.input)
    except FileNotFoundError as error:
        sys.exit("test.py: --input: %s" % error)
    if not photos:
        sys.exit("test.py: no photos (%s) in %s" % (" ".join(inference.PHOTO_EXTENSIONS), FLAGS.input))
    try:
        os.makedirs(FLAGS.output_dir, exist_ok=True)
    except OSError as error:
        sys.exit("test.py: cannot create --output_dir=%s: %s" % (FLAGS.output_dir, error.strerror))
    if not os.access(FLAGS.output_dir, os.W_OK | os.X_OK):
        sys.exit("test.py: --output_dir=%s is not writable" % FLAGS.output_dir)
    try:
        reconstructor = inference.reconstructor_from_flags(FLAGS)
    except (FileNotFoundError, ValueError) as error:
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
