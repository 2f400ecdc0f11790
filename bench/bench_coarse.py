"""Coarse stage figures: training speed, inference time, and reconstruction error on held-out faces.

    python bench/bench_coarse.py [--checkpoint results/release/coarse] [--train_data data/synthetic]

Prints:
  1. training steps/s and images/s of `train.py --stage=coarse` at --batch_size (default 16), from its
     own log lines, leaving out the first interval (graph building, warm-up);
  2. inference seconds per photo (detection + landmarks + crop + network + writing the four files)
     on the example photo, and the network-and-render part alone;
  3. on --num_eval held-out synthetic faces (written with a seed the training data does not use),
     what `evaluate.py --tfrecords` measures (model/metrics.py): mean per-vertex error in
     millimetres of the coarse shape after rigid alignment (Kabsch) to the ground-truth shape (all
     vertices, and the face regions alone) and the landmark NME (over the outer-eye-corner
     distance), for the checkpoint and for the mean face (zero coefficients: the network's starting
     point), and the coarse surface's normal error against the detailed ground truth.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow.compat.v1 as tf  # noqa: E402

from model import inference  # noqa: E402
from preprocess import schema  # noqa: E402

tf.disable_eager_execution()

EXAMPLE = os.path.join(REPO, "resources", "examples", "astronaut.png")


def synthesize(out, num, seed):
    subprocess.run([sys.executable, "-m", "preprocess.synthesize", "--num=%d" % num, "--out=%s" % out,
                    "--seed=%d" % seed], cwd=REPO, check=True)


def tfrecords(folder):
    return glob.glob(os.path.join(folder, "*" + schema.SHARD_SUFFIX))


def bench_training(data_dir, batch_size, steps, log_step):
    with tempfile.TemporaryDirectory() as checkpoints:
        result = subprocess.run(
            [sys.executable, os.path.join(REPO, "train.py"), "--data_dir=%s" % data_dir,
             "--checkpoint_dir=%s" % checkpoints, "--batch_size=%d" % batch_size, "--step=%d" % steps,
             "--log_step=%d" % log_step, "--save_step=%d" % (10 * steps), "--image_summary_step=%d" % (10 * steps)],
            cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit("bench_coarse.py: train.py failed:\n%s" % result.stderr[-3000:])
    rates = [float(r) for r in re.findall(r"\| ([0-9.]+) steps/s", result.stdout)][1:]
    if not rates:
        sys.exit("bench_coarse.py: too few log lines; raise --train_steps")
    rate = float(np.mean(rates))
    print("training (batch %d, %d steps after warm-up): %.3f steps/s, %.1f images/s"
          % (batch_size, log_step * len(rates), rate, rate * batch_size))


def bench_inference(checkpoint, repeats):
    import test  # the repository's test.py: the whole per-photo work, writing included

    reconstructor = inference.load_reconstructor(checkpoint)
    with tempfile.TemporaryDirectory() as out:
        test.reconstruct_photo(reconstructor, EXAMPLE, out, "hog")  # warm-up
        start = time.time()
        for _ in range(repeats):
            test.reconstruct_photo(reconstructor, EXAMPLE, out, "hog")
        per_photo = (time.time() - start) / repeats
    crop = np.zeros((300, 300, 3), np.uint8)
    start = time.time()
    for _ in range(repeats):
        reconstructor(crop)
    network = (time.time() - start) / repeats
    print("inference (%s, 512 x 512): %.3f s per photo, of which network + render %.3f s"
          % (os.path.basename(EXAMPLE), per_photo, network))


def bench_accuracy(checkpoint, eval_dir):
    """evaluate.py --tfrecords on the held-out faces; prints its synthetic section (model/metrics.py)."""
    with tempfile.TemporaryDirectory() as out:
        result = subprocess.run(
            [sys.executable, os.path.join(REPO, "evaluate.py"), "--tfrecords=%s" % eval_dir,
             "--output_dir=%s" % out, "--checkpoint=%s" % checkpoint,
             "--fit_steps=0"],  # the network's figures; bench/bench_identity_fit.py has the fitted ones
            cwd=REPO, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit("bench_coarse.py: evaluate.py failed:\n%s" % result.stderr[-3000:])
        with open(os.path.join(out, "metrics.json")) as f:
            synthetic = json.load(f)["synthetic"]
    print("held-out synthetic faces: %d (%s); per-vertex error after rigid alignment over all vertices / "
          "the face region (skin, eyes, brows, nose, lips); landmark NME over the outer-eye-corner "
          "distance (points 36, 45)" % (synthetic["count"], eval_dir))
    for name, key in (("checkpoint", "reconstruction"), ("mean face", "mean_face")):
        print("  %-10s per-vertex %.2f mm / face region %.2f mm | landmark NME %.3f"
              % (name, synthetic["vertex_error_mm"][key], synthetic["face_region_vertex_error_mm"][key],
                 synthetic["landmark_nme"][key]))
    print("  coarse normal error against the detailed ground truth: %.2f degrees"
          % synthetic["normal_error_deg"]["coarse"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=os.path.join(REPO, "results", "release", "coarse"))
    parser.add_argument("--train_data", default=os.path.join(REPO, "data", "synthetic"),
                        help="training tfrecords for the speed run (64 are synthesized if it holds none)")
    parser.add_argument("--eval_dir", default=os.path.join(REPO, "data", "synthetic_eval"),
                        help="held-out tfrecords (synthesized with --eval_seed if it holds none)")
    parser.add_argument("--num_eval", type=int, default=200)
    parser.add_argument("--eval_seed", type=int, default=999)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--train_steps", type=int, default=60)
    parser.add_argument("--log_step", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: train,inference,accuracy")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    checkpoint = inference.resolve_checkpoint(args.checkpoint)
    print("checkpoint: %s" % checkpoint)
    if "train" not in skip:
        if tfrecords(args.train_data):
            bench_training(args.train_data, args.batch_size, args.train_steps, args.log_step)
        else:
            with tempfile.TemporaryDirectory() as data:
                synthesize(data, 64, 5)
                bench_training(data, args.batch_size, args.train_steps, args.log_step)
    if "inference" not in skip:
        bench_inference(checkpoint, args.repeats)
    if "accuracy" not in skip:
        if not tfrecords(args.eval_dir):
            synthesize(args.eval_dir, args.num_eval, args.eval_seed)
        bench_accuracy(checkpoint, args.eval_dir)


if __name__ == "__main__":
    main()
