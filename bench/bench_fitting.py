"""Test-time fitting speed: seconds per photo of the network alone and with --fit_steps fitting.

    python bench/bench_fitting.py [--steps 50] [--repeats 5] [--threads 2]

On the example photo's crop (detection and cropping done once, outside the timing), after one
warm-up call each, side by side in one run:
  1. test.py's CoarseReconstructor with fit_steps=0 and fit_steps=--steps: seconds per photo
     (network, fitting, final render at 300);
  2. the fitting alone (model/fitting.py, batch 1) at several render sizes: seconds per fit of
     --steps steps and milliseconds per step;
and, for the reconstructor, the landmark distance of the result to the detected landmarks (the
fitting target) as a fraction of the outer-eye-corner distance, before and after fitting.
"""
import argparse
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow.compat.v1 as tf  # noqa: E402

from model import fitting, inference  # noqa: E402
from model.face import FaceModel  # noqa: E402
from preprocess.photo import crop_photo_file  # noqa: E402

tf.disable_eager_execution()

EXAMPLE = os.path.join(REPO, "resources", "examples", "astronaut.png")


def per_call(function, repeats):
    function()  # warm-up: graph optimisation and first allocations
    start = time.time()
    for _ in range(repeats):
        result = function()
    return (time.time() - start) / repeats, result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=os.path.join(REPO, "results", "release", "coarse"))
    parser.add_argument("--photo", default=EXAMPLE)
    parser.add_argument("--steps", type=int, default=fitting.DEFAULT_STEPS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow intra-op threads (cores)")
    parser.add_argument("--render_sizes", default="224,160,128")
    args = parser.parse_args()
    checkpoint = inference.resolve_checkpoint(args.checkpoint)
    face = crop_photo_file(args.photo)
    face_model = FaceModel()
    interocular = np.linalg.norm(face.landmarks[36] - face.landmarks[45])
    # Read by TensorFlow when it makes its first thread pools (sessions left at their default of 0).
    os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["TF_NUM_INTEROP_THREADS"] = str(args.threads)
    print("%s, %d steps, %d threads, %d repeats after a warm-up" % (os.path.basename(args.photo), args.steps,
                                                                     args.threads, args.repeats))
    for steps in (0, args.steps):
        reconstructor = inference.CoarseReconstructor(checkpoint, face_model, "compact", fit_steps=steps)
        seconds, result = per_call(lambda: reconstructor(face.image, face.landmarks, face.segmentation),
                                   args.repeats)
        error = np.linalg.norm(result["landmarks"] - face.landmarks, axis=1).mean() / interocular
        print("reconstructor, fit_steps=%-3d %.3f s per photo | landmarks to detected %.4f of the "
              "eye-corner distance" % (steps, seconds, error), flush=True)
    for size in (int(s) for s in args.render_sizes.split(",")):
        with tf.Graph().as_default():
            fitter = fitting.CoefficientFitter(face_model, render_size=size)
            with tf.Session() as session:
                session.run(fitter.initializer())
                start = np.zeros((1, face_model.coeff_size), np.float32)
                seconds, _ = per_call(lambda: fitter.fit(session, face.image[None], face.landmarks[None],
                                                         face.segmentation[None], start, args.steps),
                                      args.repeats)
        print("fitting alone, render %d: %.3f s per fit, %.1f ms per step"
              % (size, seconds, 1000.0 * seconds / max(args.steps, 1)), flush=True)


if __name__ == "__main__":
    main()
