"""3D face reconstruction of photos: detect, crop, regress coefficients, fit, add the detail layer,
write the results.

    python test.py --input PHOTO_OR_FOLDER --output_dir DIR [--checkpoint CHECKPOINT]
                   [--stage auto|coarse|fine] [--fit_steps 50]

The network's coefficients are refined per photo by --fit_steps steps of test-time fitting
(model/fitting.py: the training losses against the detected landmarks and the photo); 0 keeps the
network's prediction alone, as in the paper. With the fine stage, the fine network then predicts a
UV displacement map from the photo unwrapped through the fitted coarse mesh (model/fine.py).

Stage and checkpoint (model/inference.resolve_stage): --stage=auto (default) takes the stage of the
checkpoint's config; without --checkpoint it uses results/release/fine when that exists, else
results/release/coarse. --stage=coarse writes the coarse files only (from a coarse checkpoint, or
the coarse network of a fine export); --stage=fine needs a fine export.

The checkpoint's folder holds its stage config (stage.json, written by train.py): the backbone (and
the fine network's sizes) are read from it, and the face model (--face_model_path, default
resources/face_model.npz) must be the file it was trained with (same SHA-256), else test.py stops
and says which file that was.

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
and with the fine stage also:
  NAME_fine.obj        the detailed mesh, in the frame of NAME_coarse.obj: the coarse triangles outside
                       the detail mask and the displaced dense UV-grid mesh inside it (a vertex per
                       mask texel), with vertex normals (`vn`, the shading normals the fine render
                       uses), UVs and `mtllib NAME.mtl` / `usemtl face`: it opens textured in
                       MeshLab and Blender
  NAME.mtl             its material: diffuse texture NAME_texture.png
  NAME_texture.png     the photo unwrapped into the face's UV space through the fitted coarse mesh
                       (S x S, the fine network's map size; hidden texels mirror-filled,
                       model/face/unwrap.py)
  NAME_displacement.png  the displacement map (S x S, 16-bit grey, UV layout, outward positive);
  NAME_displacement.json its scale: mm = offset_mm + scale_mm * pixel value (model/mesh_files.py)
  NAME_detail.png      input crop | coarse surface | detailed surface, both grey under one fixed
                       directional light (model/inference.grey_shading), so the detail shows
NAME is the photo's file name without its extension; where two photos would share it (face.jpg and
face.png), each keeps its extension instead (face.jpg_coarse.obj, face.png_coarse.obj), so no result
overwrites another. The files of a photo are written under temporary names and renamed
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

from model import coarse, inference, mesh_files, output_files
from model.face import framing
from preprocess.photo import SkippedPhoto

flags = tf.app.flags
FLAGS = flags.FLAGS



def define_flags():
    """test.py's flags. Defined when run as a program, not on import, so that tests can import this
    module beside train.py (both have a --stage flag, with other choices)."""
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


# The coarse OBJ writer, under its old name (model/mesh_files.py holds the writers).
write_obj = mesh_files.write_coarse_obj


OUTPUT_SUFFIXES = ("_coarse.obj", "_overlay.png", "_landmarks.txt", "_coeffs.npz")
FINE_SUFFIXES = ("_fine.obj", ".mtl", "_texture.png", "_displacement.png", "_displacement.json", "_detail.png")


def output_suffixes(stage):
    """The suffixes of the files test.py writes per photo for a stage ("coarse" or "fine")."""
    return OUTPUT_SUFFIXES + (FINE_SUFFIXES if stage == inference.FINE_STAGE else ())


def detailed_mesh(reconstructor, result):
    """(vertices [V, 3] mm, normals [V, 3], uv [V, 2], triangles [T, 3]) of the detailed face of a
    FineReconstructor's result, without the coarse vertices that the dense mesh replaces."""
    model, layout = reconstructor.face_model, reconstructor.layout
    uv = np.concatenate([model.uv, layout.dense_uv])
    vertices, triangles, normals, uv = mesh_files.compact_mesh(
        result["detailed_vertices"], reconstructor.detailed_triangles, result["detailed_normals"], uv)
    return vertices, normals, uv, triangles


def write_fine_files(files, reconstructor, face, result, name):
    """Writes the FINE_SUFFIXES files of one photo into the PendingFiles `files` (in that order)."""
    obj, mtl, texture, displacement, sidecar, detail = files
    base = os.path.basename(name)
    vertices, normals, uv, triangles = detailed_mesh(reconstructor, result)
    with obj.open("w") as f:
        mesh_files.write_textured_obj(f, vertices, normals, uv, triangles, base + ".mtl")
    with mtl.open("w") as f:
        mesh_files.write_mtl(f, base + "_texture.png")
    with texture.open("wb") as f:
        f.write(mesh_files.png_bytes(np.round(np.clip(result["uv_photo"], 0.0, 1.0) * 255.0).astype(np.uint8)))
    encoding = mesh_files.DisplacementEncoding.spanning(reconstructor.max_displacement)
    with displacement.open("wb") as png, sidecar.open("w") as text:
        mesh_files.write_displacement(png, text, result["displacement"], encoding, extra=dict(
            displacement_direction=reconstructor.config["displacement_direction"],
            max_displacement_mm=reconstructor.max_displacement))
    panels = np.concatenate([face.image.astype(np.float32) / 255.0, result["coarse_shading"], result["fine_shading"]],
                            axis=1)
    with detail.open("wb") as f:
        f.write(mesh_files.png_bytes(np.round(np.clip(panels, 0.0, 1.0) * 255.0).astype(np.uint8)))


def reconstruct_photo(reconstructor, path, output_dir, detector, name=None):
    """Writes the result files of one photo (output_suffixes of the reconstructor's stage), all or
    none (see the module docstring).

    `name` is the output name (default: the photo's file name without extension); returns
    output_dir/name. Raises SkippedPhoto when the photo has no usable face, OSError when the results
    can't be written (the previous results, if any, are left as they were).
    """
    is_fine = reconstructor.stage == inference.FINE_STAGE
    face, result, landmarks_photo = inference.reconstruct_photo_file(reconstructor, path, detector,
                                                                     pictures=is_fine)
    name = os.path.join(output_dir, name or os.path.splitext(os.path.basename(path))[0])
    model = reconstructor.face_model
    panels = coarse.overlay_panels(face.image, result["render"], result["mask"], result["landmarks"],
                                   face.landmarks)
    to_photo = framing.invert_affine(face.matrix)
    parts = model.split_coefficients(result["coeffs"][None])
    with output_files.replacing_together([name + suffix for suffix in output_suffixes(reconstructor.stage)]) as files:
        obj, overlay, landmarks, coeffs = files[:len(OUTPUT_SUFFIXES)]
        if is_fine:
            write_fine_files(files[len(OUTPUT_SUFFIXES):], reconstructor, face, result, name)
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
    except (OSError, ValueError) as error:
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
        written = "%s_{coarse.obj,overlay.png,landmarks.txt,coeffs.npz}" % name
        if reconstructor.stage == inference.FINE_STAGE:
            written += " and %s{%s}" % (name, ",".join(FINE_SUFFIXES))
        print("test.py: %s -> %s (%.2f s)" % (path, written, time.time() - start), flush=True)
    print("test.py: %d of %d photos reconstructed" % (succeeded, len(photos)))
    if failed:
        print("test.py: results of %d photo(s) could not be written: %s" % (len(failed), " ".join(failed)))
    if succeeded == 0 or failed:
        sys.exit(1)


if __name__ == "__main__":
    define_flags()
    tf.disable_eager_execution()
    # absl's app.run, not tf.app.run, which shows a bad flag value as a traceback instead of one line.
    app.run(main)
