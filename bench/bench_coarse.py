"""Coarse stage figures: training speed, inference time, and reconstruction error on held-out faces.

    python bench/bench_coarse.py [--checkpoint results/release/coarse] [--train_data data/synthetic]

Prints:
  1. training steps/s and images/s of `train.py --stage=coarse` at --batch_size (default 16), from its
     own log lines, leaving out the first interval (graph building, warm-up);
  2. inference seconds per photo (detection + landmarks + crop + network + writing the four files)
     on the example photo, and the network-and-render part alone;
  3. on --num_eval held-out synthetic faces (written with a seed the training data does not use):
     mean per-vertex error in millimetres of the coarse shape (identity + expression) after rigid
     alignment (rotation + translation, Kabsch) to the ground-truth shape (all vertices, and the
     face regions alone), and the mean 2D landmark
     error in crop pixels and as a fraction of the inter-ocular distance, for the checkpoint and for
     the mean face (zero coefficients: the network's starting point).
"""
import argparse
import glob
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

from model import coarse  # noqa: E402
from model.data import make_dataset  # noqa: E402
from model.face import FaceModel  # noqa: E402
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
    import test as inference  # the repository's test.py

    reconstructor = inference.CoarseReconstructor(checkpoint, FaceModel(), "compact")
    with tempfile.TemporaryDirectory() as out:
        inference.reconstruct_photo(reconstructor, EXAMPLE, out, "hog")  # warm-up
        start = time.time()
        for _ in range(repeats):
            inference.reconstruct_photo(reconstructor, EXAMPLE, out, "hog")
        per_photo = (time.time() - start) / repeats
    crop = np.zeros((300, 300, 3), np.uint8)
    start = time.time()
    for _ in range(repeats):
        reconstructor(crop)
    network = (time.time() - start) / repeats
    print("inference (%s, 512 x 512): %.3f s per photo, of which network + render %.3f s"
          % (os.path.basename(EXAMPLE), per_photo, network))


def rigid_align(source, target):
    """source [N, 3] rotated and translated onto target [N, 3] by least squares (Kabsch)."""
    source_mean, target_mean = source.mean(0), target.mean(0)
    covariance = (source - source_mean).T @ (target - target_mean)
    u, _, vt = np.linalg.svd(covariance)
    d = np.sign(np.linalg.det(u @ vt))
    rotation = u @ np.diag([1.0, 1.0, d]) @ vt
    return (source - source_mean) @ rotation + target_mean


def bench_accuracy(checkpoint, eval_dir):
    face_model = FaceModel()
    graph = tf.Graph()
    with graph.as_default():
        batch = tf.data.make_one_shot_iterator(make_dataset(
            os.path.join(eval_dir, "*" + schema.SHARD_SUFFIX), 20, augment=False, shuffle=False,
            repeat=False)).get_next()
        net = coarse.CoarseNet(face_model.k_id, face_model.k_exp, face_model.k_tex)
        predicted = net(coarse.resize_for_encoder(batch["image"]))
        candidates = {"checkpoint": predicted, "mean face": tf.zeros_like(predicted)}
        truth = face_model.split_coefficients(batch["gt/coefficients"])
        fetches = {"gt_shape": face_model.shape(truth["identity"], truth["expression"]),
                   "gt_landmarks": batch["landmarks"]}
        for name, coeffs in candidates.items():
            parts = face_model.split_coefficients(coeffs)
            fetches[name + "/shape"] = face_model.shape(parts["identity"], parts["expression"])
            fetches[name + "/landmarks"] = face_model.reconstruct(coeffs, 300)["landmarks"]
        session = tf.Session(graph=graph)
        tf.train.Saver(net.variables()).restore(session, checkpoint)
    face = np.zeros(face_model.num_vertices, bool)
    for region in ("skin", "eyes", "brows", "nose", "lips"):
        face |= face_model.regions[region]
    errors = {name: {"vertex": [], "face": [], "landmark": [], "landmark_iod": []} for name in candidates}
    while True:
        try:
            values = session.run(fetches)
        except tf.errors.OutOfRangeError:
            break
        target = values["gt_landmarks"]
        interocular = np.linalg.norm(target[:, 36:42].mean(1) - target[:, 42:48].mean(1), axis=1)
        for name in candidates:
            for shape, truth_shape in zip(values[name + "/shape"], values["gt_shape"]):
                aligned = rigid_align(shape.astype(np.float64), truth_shape.astype(np.float64))
                errors[name]["vertex"].append(np.linalg.norm(aligned - truth_shape, axis=1).mean())
                aligned = rigid_align(shape[face].astype(np.float64), truth_shape[face].astype(np.float64))
                errors[name]["face"].append(np.linalg.norm(aligned - truth_shape[face], axis=1).mean())
            distance = np.linalg.norm(values[name + "/landmarks"] - target, axis=2).mean(1)
            errors[name]["landmark"].extend(distance)
            errors[name]["landmark_iod"].extend(distance / interocular)
    count = len(errors["checkpoint"]["vertex"])
    print("held-out synthetic faces: %d (%s); per-vertex error after rigid alignment over all %d "
          "vertices / over the %d face-region vertices (skin, eyes, brows, nose, lips)"
          % (count, eval_dir, face_model.num_vertices, face.sum()))
    for name in candidates:
        e = errors[name]
        print("  %-10s per-vertex %.2f mm / face region %.2f mm | landmarks %.2f px (300 crop) = "
              "%.3f inter-ocular" % (name, np.mean(e["vertex"]), np.mean(e["face"]),
                                     np.mean(e["landmark"]), np.mean(e["landmark_iod"])))


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
    import test as inference
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
