"""Why identity is not learned: fit held-out synthetic faces by optimisation and measure the shapes.

    python bench/bench_identity_fit.py [--num 40] [--steps 300] [--checkpoint results/release/coarse]

Each row fits the coefficients of --num held-out synthetic faces (written with --seed, which the
training data, seed 1, does not use) by Adam on the coarse training objective (model/fitting.py:
photometric + landmark + priors, the weights of run_train.sh unless the row changes them), starting
from the mean face (zero coefficients) unless the row says otherwise, for --steps steps; parts
"given" are held at the ground truth (a given pose includes the true log_scale, hence the true
size). Reference rows: the mean face, the ground truth itself, and the released network (with and
without test-time fitting from its prediction).

Row 1a is the ground truth scaled about its centroid to the mean face's size. Under the scaled
orthographic camera a face k times larger, framed by the crop rule, gives the same image (its
log_scale is smaller by log k, its normals are the same), so no loss on the image can tell 1a from
the truth: its rigid-alignment error is the floor of any reconstruction from one crop, and
similarity alignment (as the NoW benchmark aligns) does not count it.

Columns (means over the faces):
  rigid all / face  per-vertex error, mm, of the identity + expression shape after rigid alignment
                    (rotation + translation) to the ground truth: all vertices / face regions
  sim face          the same after a similarity alignment (rotation, translation and one scale)
  size              fitted size / true size (rms distance of the face vertices to their centroid)
  depth/width       (z extent / x extent of the fit) / (the same of the truth), after similarity
                    alignment; < 1: flatter than the truth
  albedo            mean |albedo - true albedo| over the face vertices (colour units, 0-1)
  lmk px            2D landmark error in 300-crop pixels
  loss fit / truth  the objective at the result and at the ground-truth coefficients: a result
                    with a lower loss than the truth while far from it means the objective does not
                    single out the true face; a higher loss means the optimisation stopped short
"""
import argparse
import collections
import glob
import os
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow.compat.v1 as tf  # noqa: E402

from model import coarse, fitting, inference, metrics  # noqa: E402
from model.data import make_dataset  # noqa: E402
from model.face import CROP_SIZE, ENCODER_SIZE, REGION_NAMES, FaceModel, forward  # noqa: E402
from preprocess import schema  # noqa: E402

tf.disable_eager_execution()

Row = collections.namedtuple("Row", ["name", "start", "weights", "given", "steps", "render_size"])
Row.__new__.__defaults__ = (ENCODER_SIZE,)  # the training objective's render size
COLUMNS = ("rigid all", "rigid face", "sim face", "size", "depth/width", "albedo", "lmk px")


def format_metric(metrics, column):
    return ("%.3f" if column in ("size", "depth/width", "albedo") else "%.2f") % metrics[column]


def load_faces(eval_dir, num, seed):
    """The first `num` held-out records as numpy arrays (synthesized first if the folder has none)."""
    if not glob.glob(os.path.join(eval_dir, "*" + schema.SHARD_SUFFIX)):
        subprocess.run([sys.executable, "-m", "preprocess.synthesize", "--num=%d" % num,
                        "--out=%s" % eval_dir, "--seed=%d" % seed], cwd=REPO, check=True)
    with tf.Graph().as_default():
        batch = tf.data.make_one_shot_iterator(make_dataset(
            os.path.join(eval_dir, "*" + schema.SHARD_SUFFIX), num, augment=False, shuffle=False,
            repeat=False)).get_next()
        with tf.Session() as session:
            values = session.run(batch)
    values["image"] = np.round(values["image"] * 255.0).astype(np.uint8)
    if len(values["image"]) < num:
        sys.exit("bench_identity_fit.py: %s holds %d faces, fewer than --num=%d"
                 % (eval_dir, len(values["image"]), num))
    return values


def network_coefficients(checkpoint, face_model, images):
    with tf.Graph().as_default():
        crops = tf.placeholder(tf.float32, [None, 300, 300, 3])
        net = coarse.network(face_model)
        coeffs = net(coarse.resize_for_encoder(crops))
        with tf.Session() as session:
            tf.train.Saver(net.variables()).restore(session, checkpoint)
            return session.run(coeffs, {crops: images.astype(np.float32) / 255.0})


def run_fit(face_model, faces, start, weights, given, steps, learning_rate, render_size):
    """(fitted coefficients [B, C], losses at the result [B], losses at the truth [B], seconds/step)."""
    truth = faces["gt/coefficients"]
    initial = np.array(start, np.float32)
    truth_parts = face_model.split_coefficients(truth)
    initial_parts = face_model.split_coefficients(initial)
    for name in given:
        initial_parts[name][:] = truth_parts[name]
    with tf.Graph().as_default():
        fitter = fitting.CoefficientFitter(face_model, len(truth), weights, learning_rate, render_size,
                                           fixed_parts=given)
        with tf.Session() as session:
            session.run(fitter.initializer())
            args = (faces["image"], faces["landmarks"], faces["segmentation"])
            at_truth = []
            fitter.fit(session, *args, truth, 0, trace=at_truth)
            start_time = time.time()
            trace = []
            fitted = fitter.fit(session, *args, initial, steps, trace=trace if steps == 0 else None)
            seconds = (time.time() - start_time) / max(steps, 1)
            if steps > 0:
                fitter.fit(session, *args, fitted, 0, trace=trace)
    return fitted, trace[-1]["total"], at_truth[0]["total"], seconds


def at_mean_size(shapes, face_vertices, mean_shape):
    """shapes [B, N, 3] scaled about their face centroid to the mean face's size (rms radius)."""
    def radius(points):
        return np.sqrt(((points - points.mean(-2, keepdims=True)) ** 2).sum((-2, -1)))
    centre = shapes[:, face_vertices].mean(1, keepdims=True)
    factor = radius(mean_shape[face_vertices]) / radius(shapes[:, face_vertices])
    return centre + factor[:, None, None] * (shapes - centre)


def decode(face_model, coeffs):
    """Shapes [B, N, 3] mm, albedo [B, N, 3] and landmarks [B, 68, 2] (300 crop) of coefficients [B, C]."""
    with tf.Graph().as_default():
        coeffs = tf.constant(coeffs, tf.float32)
        parts = face_model.split_coefficients(coeffs)
        face = forward.render_face(face_model, coeffs, CROP_SIZE)
        fetches = dict(shape=face_model.shape(parts["identity"], parts["expression"]),
                       albedo=face["albedo"], landmarks=face["landmarks"])
        with tf.Session() as session:
            values = session.run(fetches)
    return values["shape"].astype(np.float64), values["albedo"], values["landmarks"]


def shape_metrics(face_model, coeffs, faces, face_vertices, mean_size=False):
    """The table's columns for coefficients [B, C]; mean_size: the shapes scaled to the mean face's size."""
    shapes, albedo, landmarks = decode(face_model, coeffs)
    if mean_size:
        shapes = at_mean_size(shapes, face_vertices, face_model.mean_shape.astype(np.float64))
    true_shapes, true_albedo, _ = decode(face_model, faces["gt/coefficients"])
    albedo, true_albedo = albedo[:, face_vertices], true_albedo[:, face_vertices]
    rows = collections.defaultdict(list)
    for shape, true_shape in zip(shapes, true_shapes):
        rows["rigid all"].append(metrics.aligned_vertex_error(shape, true_shape).mean())
        rows["rigid face"].append(metrics.aligned_vertex_error(shape, true_shape, face_vertices).mean())
        rows["sim face"].append(metrics.aligned_vertex_error(shape, true_shape, face_vertices, True).mean())
        fit_face, true_face = shape[face_vertices], true_shape[face_vertices]
        scale, rotation, translation = metrics.umeyama(fit_face, true_face)
        similar = metrics.apply_transform(fit_face, rotation, translation, scale)
        centred, true_centred = fit_face - fit_face.mean(0), true_face - true_face.mean(0)
        rows["size"].append(np.sqrt((centred ** 2).sum() / (true_centred ** 2).sum()))
        extent, true_extent = np.ptp(similar, axis=0), np.ptp(true_face, axis=0)
        rows["depth/width"].append((extent[2] / extent[0]) / (true_extent[2] / true_extent[0]))
    rows["albedo"] = np.abs(albedo - true_albedo).mean(axis=(1, 2))
    rows["lmk px"] = np.linalg.norm(landmarks - faces["landmarks"], axis=2).mean(1)
    return {key: float(np.mean(value)) for key, value in rows.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval_dir", default=os.path.join(REPO, "data", "fit_eval"))
    parser.add_argument("--num", type=int, default=40)
    parser.add_argument("--seed", type=int, default=11, help="synthesis seed of --eval_dir (training: 1)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--learning_rate", type=float, default=fitting.DEFAULT_LEARNING_RATE)
    parser.add_argument("--checkpoint", default=os.path.join(REPO, "results", "release", "coarse"))
    parser.add_argument("--rows", default="", help="comma-separated row numbers to run (default all)")
    args = parser.parse_args()
    checkpoint = inference.resolve_checkpoint(args.checkpoint)

    face_model = FaceModel()
    faces = load_faces(args.eval_dir, args.num, args.seed)
    faces = {key: value[:args.num] for key, value in faces.items()}
    face_vertices = np.zeros(face_model.num_vertices, bool)
    for region in REGION_NAMES:
        face_vertices |= face_model.regions[region]
    truth = faces["gt/coefficients"]
    mean_face = np.zeros_like(truth)
    network = network_coefficients(checkpoint, face_model, faces["image"])
    w = coarse.TRAINING_LOSS_WEIGHTS
    steps = args.steps
    rows = [
        Row("mean face", mean_face, w, (), 0),
        Row("ground truth", truth, w, (), 0),
        Row("fit from ground truth", truth, w, (), steps),
        Row("landmarks + priors", mean_face, w._replace(photo=0.0), (), steps),
        Row("photometric + priors, pose given", mean_face, w._replace(landmark=0.0), ("pose",), steps),
        Row("both (training objective)", mean_face, w, (), steps),
        Row("both, pose given", mean_face, w, ("pose",), steps),
        Row("both, pose + albedo + light given", mean_face, w, ("pose", "albedo", "light"), steps),
        Row("both, identity prior / 10", mean_face, w._replace(id=w.id / 10.0), (), steps),
        Row("network (released)", network, w, (), 0),
        Row("network + fit %d steps" % fitting.DEFAULT_STEPS, network, w, (), fitting.DEFAULT_STEPS),
        Row("network + fit %d steps" % steps, network, w, (), steps),
        Row("network + fit %d steps, render %d (test.py)" % (fitting.DEFAULT_STEPS, fitting.DEFAULT_RENDER_SIZE),
            network, w, (), fitting.DEFAULT_STEPS, fitting.DEFAULT_RENDER_SIZE),
    ]
    chosen = set(int(r) for r in args.rows.split(",") if r) or set(range(len(rows)))
    print("%d held-out synthetic faces (%s, seed %d); %d steps, learning rate %g; mean over faces"
          % (args.num, args.eval_dir, args.seed, steps, args.learning_rate))
    print("| # | start -> objective | " + " | ".join(COLUMNS) + " | loss fit / truth | s/step |")
    print("|---" * (len(COLUMNS) + 4) + "|")
    if 1 in chosen:
        # No image can tell this shape from the truth (module docstring): the floor of the rigid columns.
        metrics = shape_metrics(face_model, truth, faces, face_vertices, mean_size=True)
        metrics["lmk px"] = float("nan")  # no pose makes this shape's landmarks: not a reconstruction
        print("| 1a | ground truth scaled to the mean face's size | "
              + " | ".join(format_metric(metrics, c) for c in COLUMNS) + " | - | - |", flush=True)
    for index, row in enumerate(rows):
        if index not in chosen:
            continue
        fitted, loss, loss_truth, seconds = run_fit(face_model, faces, row.start, row.weights, row.given,
                                                    row.steps, args.learning_rate, row.render_size)
        metrics = shape_metrics(face_model, fitted, faces, face_vertices)
        print("| %d | %s | " % (index, row.name)
              + " | ".join(format_metric(metrics, c) for c in COLUMNS)
              + " | %.4f / %.4f | %s |" % (loss.mean(), loss_truth.mean(),
                                           "%.3f" % seconds if row.steps else "-"), flush=True)


if __name__ == "__main__":
    main()
