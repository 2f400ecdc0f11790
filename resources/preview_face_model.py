"""Renders a face model's mean face (and optionally random faces) with the project renderer.

Writes FILE.png (the mean face at pose 0 in a 300 x 300 crop, then any random faces to its
right) and FILE.txt beside it: the mean face's 68 projected landmarks, one "x y" line each
(crop pixels, x right, y down). Then runs dlib's face detector and 68-point predictor on the
mean-face render and prints their NME against the model's landmarks (model/metrics.py: mean
distance over the distance of the outer eye corners, points 36 and 45), overall and per region
(jaw, brows, nose, eyes, mouth); exits with status 1 if dlib finds no face. The --out folder is created if
missing.

Run: python resources/preview_face_model.py --out preview.png [--model FILE.npz] [--random 4]
"""
import argparse
import os
import sys

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from model import metrics, output_files  # noqa: E402
from model.face import FaceModel  # noqa: E402
from model.face.builder.landmarks import PREVIEW_LIGHT  # noqa: E402
from model.face.framing import CROP_SIZE  # noqa: E402

BACKGROUND_GREY = 0.5


def render_faces(face_model, coeffs, image_size=CROP_SIZE):
    """Renders coefficient vectors [B, coeff_size]; returns uint8 images [B, S, S, 3] and landmarks [B, 68, 2]."""
    import tensorflow.compat.v1 as tf
    import renderer

    tf.disable_eager_execution()
    with tf.Graph().as_default():
        out = face_model.reconstruct(tf.constant(coeffs, tf.float32), image_size)
        background = tf.fill([len(coeffs), image_size, image_size, 3], BACKGROUND_GREY)
        rendered = renderer.render(out["clip"], face_model.triangles, out["colours"],
                                   (image_size, image_size), background=background)
        with tf.Session() as sess:
            images, landmarks = sess.run([rendered["image"], out["landmarks"]])
    return np.clip(images * 255 + 0.5, 0, 255).astype(np.uint8), landmarks


def default_coefficients(face_model, num_random, seed):
    """Mean face first, then random faces (identity and albedo ~ N(0, 1), expression ~ N(0, 0.5))."""
    coeffs = np.zeros((1 + num_random, face_model.coeff_size), np.float32)
    coeffs[:, face_model.coefficient_slices()["light"]] = PREVIEW_LIGHT.ravel()
    rng = np.random.default_rng(seed)
    k = face_model.k_id + face_model.k_exp + face_model.k_tex
    coeffs[1:, :k] = rng.normal(size=(num_random, k))
    coeffs[1:, face_model.k_id:face_model.k_id + face_model.k_exp] *= 0.5
    return coeffs


def dlib_landmarks(image):
    """dlib's 68 points [68, 2] (continuous pixels) on the largest face of image, or None if it finds none."""
    import dlib
    import face_recognition_models
    faces = dlib.get_frontal_face_detector()(image, 1)
    if len(faces) == 0:
        return None
    box = max(faces, key=lambda r: r.area())
    shape = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())(image, box)
    return np.array([[p.x + 0.5, p.y + 0.5] for p in shape.parts()])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="PNG file to write (landmarks go to .txt beside it)")
    parser.add_argument("--model", default=None, help="face model npz (default: resources/face_model.npz)")
    parser.add_argument("--random", type=int, default=0, help="random faces to render beside the mean")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random faces")
    args = parser.parse_args(argv)
    from PIL import Image

    face_model = FaceModel(args.model)
    images, landmarks = render_faces(face_model, default_coefficients(face_model, args.random, args.seed))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with output_files.replacing(args.out) as f:
        Image.fromarray(np.concatenate(list(images), axis=1)).save(f, format="PNG")
    with output_files.replacing(os.path.splitext(args.out)[0] + ".txt", "w") as f:
        np.savetxt(f, landmarks[0], fmt="%.3f")
    points = dlib_landmarks(images[0])
    if points is None:
        print("dlib found no face on the mean-face render")
        return 1
    print("dlib vs model landmarks on the mean face: NME %.4f (mean error over the outer-eye-corner "
          "distance of the model's landmarks, points 36 and 45)" % metrics.landmark_nme(points, landmarks[0]))
    print("  per region: " + ", ".join("%s %.4f" % item for item in
                                       metrics.landmark_nme_by_region(points, landmarks[0]).items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
