"""Coarse 3D face reconstruction of photos: detect, crop, regress coefficients, write the results.

    python test.py --input PHOTO_OR_FOLDER --output_dir DIR [--checkpoint results/release/coarse]

For each photo NAME.ext (a folder: its files with an extension of model.inference.PHOTO_EXTENSIONS,
in any case, in sorted order, not recursively), writes into DIR:
  NAME_coarse.obj      the mesh in millimetres (model frame: x right, y up, z towards the viewer),
                       with per-vertex colours (the shaded colour the render shows, `v x y z r g b`)
                       and the face model's UVs
  NAME_overlay.png     input crop | render over the crop | landmarks (green detected, red model)
  NAME_landmarks.txt   the model's 68 landmarks, one `x y` line each, in pixels of the ORIGINAL photo
  NAME_coeffs.npz      coefficients (whole vector and split by part), crop/matrix (photo -> crop)
                       and the detected landmarks (photo pixels)
A photo that can't be read or holds no face gets one line saying so and the others go on; the exit
status is non-zero when no photo succeeded.
"""
import os
import sys
import time

import numpy as np
import tensorflow.compat.v1 as tf
from PIL import Image

from model import coarse, inference
from model.face import framing
from preprocess.photo import SkippedPhoto

flags = tf.app.flags
FLAGS = flags.FLAGS

flags.DEFINE_string("input", "", "A photo, or a folder of photos.")
flags.DEFINE_string("output_dir", "results/test", "Where the results are written.")
inference.define_flags(flags)


def write_obj(path, vertices, colours, uv, triangles):
    """OBJ with vertex colours (`v x y z r g b`, colours in [0, 1]) and UVs sharing the vertex index.

    Args:
      vertices: [N, 3] mm; colours: [N, 3]; uv: [N, 2] in [0, 1]; triangles: [T, 3] 0-based, CCW-front.
    """
    colours = np.clip(colours, 0.0, 1.0)
    with open(path, "w") as obj:
        obj.write("# coarse 3D face reconstruction, millimetres, x right, y up, z towards the viewer\n")
        for (x, y, z), (r, g, b) in zip(vertices, colours):
            obj.write("v %.4f %.4f %.4f %.4f %.4f %.4f\n" % (x, y, z, r, g, b))
        for u, v in uv:
            obj.write("vt %.6f %.6f\n" % (u, v))
        for a, b, c in np.asarray(triangles) + 1:
            obj.write("f %d/%d %d/%d %d/%d\n" % (a, a, b, b, c, c))


def reconstruct_photo(reconstructor, path, output_dir, detector):
    """Writes the four result files of one photo; raises SkippedPhoto when it has no usable face."""
    face, result, landmarks_photo = inference.reconstruct_photo_file(reconstructor, path, detector)
    name = os.path.join(output_dir, os.path.splitext(os.path.basename(path))[0])
    model = reconstructor.face_model
    write_obj(name + "_coarse.obj", result["vertices"], result["colours"], model.uv, model.triangles)
    panels = coarse.overlay_panels(face.image, result["render"], result["mask"], result["landmarks"],
                                   face.landmarks)
    Image.fromarray(panels).save(name + "_overlay.png")
    to_photo = framing.invert_affine(face.matrix)
    inference.save_landmarks(name + "_landmarks.txt", landmarks_photo)
    parts = model.split_coefficients(result["coeffs"][None])
    np.savez(name + "_coeffs.npz", coefficients=result["coeffs"],
             **{key: np.asarray(value)[0] for key, value in parts.items()},
             crop_matrix=face.matrix, detected_landmarks=framing.apply_affine(to_photo, face.landmarks))
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
        reconstructor = inference.reconstructor_from_flags(FLAGS)
    except FileNotFoundError as error:
        sys.exit("test.py: %s" % error)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    succeeded = 0
    for path in photos:
        start = time.time()
        try:
            name = reconstruct_photo(reconstructor, path, FLAGS.output_dir, FLAGS.detector)
        except SkippedPhoto as skipped:
            print("test.py: skipped %s" % skipped, flush=True)
            continue
        succeeded += 1
        print("test.py: %s -> %s_{coarse.obj,overlay.png,landmarks.txt,coeffs.npz} (%.2f s)"
              % (path, name, time.time() - start), flush=True)
    print("test.py: %d of %d photos reconstructed" % (succeeded, len(photos)))
    if succeeded == 0:
        sys.exit(1)


if __name__ == "__main__":
    tf.disable_eager_execution()
    tf.app.run(main)
