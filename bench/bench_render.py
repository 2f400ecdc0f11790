"""Where the time of a training step goes, piece by piece, from TensorFlow's own step stats.

    python bench/bench_render.py [--batch 16] [--repeats 5] [--data data/bench] [--threads N]
                                 [--stage both|coarse|fine] [--run_train] [--fine_precision float32|bfloat16] [--top N]

Builds the coarse training step as model/training.py does (coarse network, face model, renderer, losses,
clipped gradients, Adam) on one batch of training records fed through placeholders (so the input
pipeline's decoding and augmentation, which run on other threads, are not part of the step), runs
it --repeats times with RunOptions.FULL_TRACE and sums each node's time (op start to op end, as
the step stats record it) into pieces by name scope:

    encoder      resize to 224 and the coarse network (name scope `encoder/`)
    face model   coefficients -> vertices, albedo, rotation, projection, clip space, landmarks
    normals      renderer.shading.vertex_normals
    shading      renderer.shading.sh_shading (SH basis, irradiance, albedo)
    rasterize    renderer.rasterize (the C++ op and its gradient op)
    interpolate  renderer.rasterizer.interpolate
    uv sampling  unwrapping images into UV space (the fine stage)
    losses       model.coarse.CoarseModel.losses (segmentation resize, photometric, landmarks, ...)
    optimizer    gradient clipping, Adam, the learning rate

forward = nodes of the forward graph, backward = nodes under `gradients/` (the ops that
tf.gradients made for that piece). Shares are of the summed node time, which on several threads
can exceed the wall time of the step (also printed). With no --data records, 16 synthetic ones
are made first (preprocess/synthesize.py) in a temporary folder.

The fine training step (model/fine.py FineStage.tower, built here piece by piece in name scopes:
the frozen coarse network, its render, the unwrapping, the fine network, the detailed mesh and its
render, the fine losses, Adam on the fine network) is profiled the same way at --fine_batch, UV
--uv_size and the stage's render size, from the coarse checkpoint --coarse_checkpoint, into these
pieces:

    encoder       the coarse network (frozen: forward only)
    coarse render the coarse stage's decode at the fine render size (forward only)
    unwrap        texel visibility, the UV fallback and the bilinear unwrapping
    fine net      the U-Net (scope `fine/`)
    dense mesh    the dense grid mesh: coarse normals, interpolation to the dense vertices, the
                  displacement, detail normals (the dense mesh's vertex normals are `normals`)
    normals, shading, rasterize, interpolate: the detailed face's render, as above
    losses        FineModel.losses
    optimizer     as above

With --run_train the step is run_train.sh's: the network also reads the shading cue (piece `shading
cue`, forward only) and the map is supervised by the synthetic ground truth in the coarse face's
own chart (gt_disp 1e5; piece `gt target`: the true face rendered at twice the render size and its
detail carried into the coarse face's chart, forward only); otherwise train.py's default weights,
no cue. --fine_precision bfloat16 runs the U-Net as train.py --fine_precision=bfloat16.

and --top N prints the N most expensive nodes of each step (forward and backward together).
`--stage coarse` or `--stage fine` profiles one step only.
"""
import argparse
import collections
import glob
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow.compat.v1 as tf  # noqa: E402

from model import coarse, fine  # noqa: E402
from model.data import GT_FLIPPED, GT_PRESENT, GT_SCALE, make_dataset  # noqa: E402
from model import losses, training  # noqa: E402
from model.face import FaceModel  # noqa: E402
from preprocess import schema  # noqa: E402
from bench_train_fine import RUN_TRAIN_WEIGHTS  # noqa: E402 (this script's folder is on sys.path)

tf.disable_eager_execution()

PIECES = ("encoder", "face model", "normals", "shading", "rasterize", "interpolate", "uv sampling",
          "losses", "optimizer", "other")
# (substring of a node's name, piece), most specific first: the renderer's scopes sit inside
# `face_model/`, and the name of a gradient node holds the forward op's full name.
_SCOPE_RULES = (
    ("/vertex_normals", "normals"), ("/sh_shading", "shading"), ("/rasterize", "rasterize"),
    ("/interpolate", "interpolate"), ("/unwrap_to_uv", "uv sampling"), ("/uv_sampling", "uv sampling"),
    ("encoder/", "encoder"), ("face_model/", "face model"), ("losses/", "losses"),
    ("Adam", "optimizer"), ("clip_by_value", "optimizer"), ("learning_rate", "optimizer"),
    ("ExponentialDecay", "optimizer"), ("global_step", "optimizer"), ("Maximum", "optimizer"),
)


FINE_PIECES = ("encoder", "coarse render", "unwrap", "shading cue", "fine net", "dense mesh", "normals", "shading",
               "rasterize", "interpolate", "gt target", "losses", "optimizer", "other")
# The fine step's scopes (fine_training_step): the coarse render's renderer ops belong to it.
_FINE_SCOPE_RULES = (
    ("shading_cue/", "shading cue"), ("/gt_target/", "gt target"),
    ("encoder/", "encoder"), ("coarse_render/", "coarse render"), ("unwrap/", "unwrap"),
    ("fine_net/", "fine net"),
    ("/vertex_normals", "normals"), ("/sh_shading", "shading"), ("/rasterize", "rasterize"),
    ("/interpolate", "interpolate"), ("fine_decode/", "dense mesh"), ("losses/", "losses"),
    ("Adam", "optimizer"), ("clip_by_value", "optimizer"), ("global_step", "optimizer"),
)


def classify(node_name, rules=_SCOPE_RULES):
    """(piece, 'forward' | 'backward') of a node of the training graph."""
    direction = "backward" if node_name.startswith("gradients/") else "forward"
    name = "/" + node_name
    for key, piece in rules:
        if key in name:
            return piece, direction
    return "other", direction


GROUND_TRUTH_KEYS = (schema.GT_DISPLACEMENT, schema.GT_COEFFICIENTS, GT_FLIPPED, GT_SCALE, GT_PRESENT)


def first_batch(data_dir, batch_size):
    """One augmented training batch as NumPy arrays (the keys the coarse losses read, and the ground
    truth the fine stage's detail supervision reads)."""
    with tf.Graph().as_default():
        batch = tf.data.make_one_shot_iterator(make_dataset(
            os.path.join(data_dir, "*" + schema.SHARD_SUFFIX), batch_size, seed=0,
            keep_ground_truth=True)).get_next()
        with tf.Session() as session:
            values = session.run(batch)
    return {key: values[key] for key in ("image", "landmarks", "segmentation") + GROUND_TRUTH_KEYS}


def fine_training_step(face_model, batch_size, coarse_checkpoint, uv_size, precision="float32", run_train=False,
                       values=None):
    """The fine training step of train.py (FineStage.tower with the coarse network frozen, the
    default weights, Adam on the fine network, clipped gradients) with placeholders for the batch,
    its pieces in name scopes. run_train: run_train.sh's configuration instead, the shading cue and
    the own-chart detail supervision (gt_disp 1e5; its placeholders shaped after `values`, a
    first_batch). Returns (train_op, placeholders, stage)."""
    size = coarse.CROP_SIZE
    placeholders = dict(
        image=tf.placeholder(tf.float32, [batch_size, size, size, 3], "image"),
        segmentation=tf.placeholder(tf.int32, [batch_size, size, size], "segmentation"))
    weights = fine.DEFAULT_WEIGHTS
    if run_train:
        weights = RUN_TRAIN_WEIGHTS
        for key in GROUND_TRUTH_KEYS:
            value = values[key]
            placeholders[key] = tf.placeholder(tf.as_dtype(value.dtype), (batch_size,) + value.shape[1:],
                                               key.replace("/", "_"))
    stage = fine.FineStage(face_model, "unused", batch_size, weights, coarse_checkpoint, uv_size,
                           precision=precision, shading_cue=run_train)
    fine_model = stage._fine_model
    images = placeholders["image"]
    with tf.name_scope("encoder"):
        coarse_net = stage._coarse_net()
        coeffs = tf.stop_gradient(coarse_net(coarse.resize_for_encoder(images)))
        stage._coarse_variables = coarse_net.variables()
    with tf.name_scope("coarse_render"):
        coarse_model = coarse.CoarseModel(face_model, coarse_net, render_size=stage.render_size)
        coarse_outputs = coarse_model.decode(coeffs, images)
    photos = coarse_outputs["input"]
    with tf.name_scope("unwrap"):
        uv = fine_model.unwrap(coarse_outputs, photos)
    cue = None
    if run_train:
        with tf.name_scope("shading_cue"):
            cue = fine.shading_cue(face_model, fine_model.layout, coarse_outputs)
    with tf.name_scope("fine_net"):
        displacement = fine_model.net(fine.network_input(uv["uv_photo"], uv["uv_coarse"], uv["visibility"], cue))
    with tf.name_scope("fine_decode"):
        fine_outputs = fine_model.decode(coarse_outputs, displacement * fine_model.layout.taper[None, :, :, None],
                                         stage.render_size)
        fine_outputs.update(uv)
    with tf.name_scope("losses"):
        segmentation = tf.image.resize(placeholders["segmentation"][..., tf.newaxis], [stage.render_size] * 2,
                                       method="nearest")[..., 0]
        skin = losses.region_mask(segmentation, fine.PHOTO_REGION_LABELS)
        ground_truth = None
        if run_train:
            ground_truth = dict(displacement=placeholders[schema.GT_DISPLACEMENT], flipped=placeholders[GT_FLIPPED],
                                present=placeholders[GT_PRESENT], coefficients=placeholders[schema.GT_COEFFICIENTS],
                                scale=placeholders[GT_SCALE])
        total = fine_model.losses(photos, skin, coarse_outputs, fine_outputs, stage.weights, ground_truth)["total"]
    optimizer = tf.train.AdamOptimizer(1e-4)
    gradients = training.clipped_gradients(optimizer, total, stage.trainable_variables(), 1.0)
    return optimizer.apply_gradients(gradients), placeholders, stage


def coarse_training_step(face_model, batch_size):
    """The coarse training step of train.py with placeholders for the batch, in name scopes.

    Returns (train_op, placeholders dict name -> tf.placeholder).
    """
    size = coarse.CROP_SIZE
    placeholders = dict(
        image=tf.placeholder(tf.float32, [batch_size, size, size, 3], "image"),
        landmarks=tf.placeholder(tf.float32, [batch_size, 68, 2], "landmarks"),
        segmentation=tf.placeholder(tf.int32, [batch_size, size, size], "segmentation"))
    net = coarse.network(face_model)
    model = coarse.CoarseModel(face_model, net)
    with tf.name_scope("encoder"):
        coeffs = net(coarse.resize_for_encoder(placeholders["image"]))
    with tf.name_scope("face_model"):
        outputs = model.decode(coeffs, placeholders["image"])
    with tf.name_scope("losses"):
        weights = coarse.LossWeights(1.9, 1.6e-3, 0.0, 1e-3, 8e-4, 1e-3)
        total = model.losses(placeholders, outputs, weights)["total"]
    global_step = tf.train.get_or_create_global_step()
    learning_rate = training.learning_rate_schedule(global_step, 5e-4, 1000, 0.8, 1e-6)
    optimizer = tf.train.AdamOptimizer(learning_rate)
    gradients = training.clipped_gradients(optimizer, total, tf.trainable_variables(coarse.SCOPE + "/"), 1.0)
    return optimizer.apply_gradients(gradients, global_step=global_step), placeholders


def profile(session, train_op, feed, repeats, rules=_SCOPE_RULES, nodes=None):
    """Runs the step 3 times (warm-up), `repeats` times untimed by the tracer, then `repeats` traced
    steps. Returns (ms per step {(piece, direction): ms}, median wall ms and median process CPU ms
    of the untraced steps); with a Counter `nodes`, adds each node's ms per step to it, keyed by
    (node name, op type)."""
    for _ in range(3):
        session.run(train_op, feed)
    walls, cpus = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        session.run(train_op, feed)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    totals = collections.Counter()
    options = tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE)
    for _ in range(repeats):
        metadata = tf.RunMetadata()
        session.run(train_op, feed, options=options, run_metadata=metadata)
        for device in metadata.step_stats.dev_stats:
            for node in device.node_stats:
                # Executor bookkeeping entries (_SOURCE, retvals) carry no op.
                if node.node_name.startswith("_"):
                    continue
                micros = node.op_end_rel_micros - node.op_start_rel_micros
                totals[classify(node.node_name.split(":")[0], rules)] += micros
                if nodes is not None:
                    op_type = node.timeline_label.split("(")[0].split(" = ")[-1].strip()
                    nodes[(node.node_name.split(":")[0], op_type)] += micros / 1e3 / repeats
    return ({key: value / 1e3 / repeats for key, value in totals.items()}, 1e3 * float(np.median(walls)),
            1e3 * float(np.median(cpus)))


def print_profile(title, times, wall_ms, cpu_ms, batch_size, pieces=PIECES):
    total = sum(times.values())
    print("%s: batch %d, wall %.1f ms per step (%.1f ms per image, %.1f images/s), process CPU %.1f ms per "
          "step (%.1f ms per image); summed node time %.1f ms per step"
          % (title, batch_size, wall_ms, wall_ms / batch_size, 1e3 * batch_size / wall_ms, cpu_ms,
             cpu_ms / batch_size, total))
    print("  %-12s %12s %12s %8s" % ("piece", "forward ms", "backward ms", "share"))
    for piece in pieces:
        forward, backward = times.get((piece, "forward"), 0.0), times.get((piece, "backward"), 0.0)
        if forward + backward == 0.0:
            continue
        print("  %-12s %12.2f %12.2f %7.1f%%" % (piece, forward / batch_size, backward / batch_size,
                                                  100.0 * (forward + backward) / total))
    print("  (ms per image; share of the summed node time)")


def print_top_nodes(nodes, count, batch_size, total, rules):
    print("  top %d nodes (ms per image, share of the summed node time):" % count)
    for (name, op_type), ms in nodes.most_common(count):
        print("    %7.2f %5.1f%%  %-28s %s" % (ms / batch_size, 100.0 * ms / total, op_type, name))
    groups = collections.Counter()
    for (name, op_type), ms in nodes.items():
        piece, direction = classify(name, rules)
        groups[(piece, direction, op_type)] += ms
    print("  top %d (piece, direction, op type) groups:" % count)
    for (piece, direction, op_type), ms in groups.most_common(count):
        print("    %7.2f %5.1f%%  %-12s %-8s %s" % (ms / batch_size, 100.0 * ms / total, piece, direction, op_type))


def make_session(threads):
    config = tf.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=threads)
    return tf.Session(config=config)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", default=os.path.join(REPO, "data", "bench"),
                        help="folder of training tfrecords (16 are synthesized if it holds none)")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow intra/inter-op threads (0: default)")
    parser.add_argument("--stage", choices=("both", "coarse", "fine"), default="both")
    parser.add_argument("--fine_batch", type=int, default=4, help="batch of the fine step (bench_train_fine.py's)")
    parser.add_argument("--uv_size", type=int, default=fine.DEFAULT_UV_SIZE)
    parser.add_argument("--coarse_checkpoint", default=os.path.join(REPO, fine.DEFAULT_COARSE_CHECKPOINT),
                        help="coarse export the fine step starts from")
    parser.add_argument("--run_train", action="store_true",
                        help="the fine step as run_train.sh trains it: the shading cue and the own-chart detail "
                             "supervision (pieces 'shading cue' and 'gt target')")
    parser.add_argument("--fine_precision", choices=fine.PRECISIONS, default="float32",
                        help="the U-Net's arithmetic (train.py --fine_precision)")
    parser.add_argument("--top", type=int, default=0, help="print the N most expensive nodes of each step")
    args = parser.parse_args()
    if args.batch <= 0 or args.repeats <= 0 or args.fine_batch <= 0:
        sys.exit("bench_render.py: --batch, --fine_batch and --repeats must be positive")

    with tempfile.TemporaryDirectory() as scratch:
        data = args.data
        if not glob.glob(os.path.join(data, "*" + schema.SHARD_SUFFIX)):
            data = scratch
            subprocess.run([sys.executable, "-m", "preprocess.synthesize",
                            "--num=%d" % max(16, args.batch, args.fine_batch),
                            "--out=%s" % data, "--seed=5"], cwd=REPO, check=True, capture_output=True)
        values = first_batch(data, max(args.batch, args.fine_batch))

    face_model = FaceModel()
    if args.stage in ("both", "coarse"):
        nodes = collections.Counter()
        with tf.Graph().as_default():
            train_op, placeholders = coarse_training_step(face_model, args.batch)
            session = make_session(args.threads)
            session.run(tf.global_variables_initializer())
            feed = {placeholders[key]: values[key][:args.batch] for key in placeholders}
            times, wall_ms, cpu_ms = profile(session, train_op, feed, args.repeats, nodes=nodes)
            session.close()
        print_profile("coarse training step", times, wall_ms, cpu_ms, args.batch)
        if args.top:
            print_top_nodes(nodes, args.top, args.batch, sum(times.values()), _SCOPE_RULES)

    if args.stage in ("both", "fine"):
        nodes = collections.Counter()
        with tf.Graph().as_default():
            train_op, placeholders, stage = fine_training_step(face_model, args.fine_batch, args.coarse_checkpoint,
                                                               args.uv_size, args.fine_precision, args.run_train,
                                                               values)
            session = make_session(args.threads)
            session.run(tf.global_variables_initializer())
            stage.initialize(session, resumed=False)
            feed = {placeholders[key]: values[key][:args.fine_batch] for key in placeholders}
            times, wall_ms, cpu_ms = profile(session, train_op, feed, args.repeats, _FINE_SCOPE_RULES, nodes)
            session.close()
        print_profile("fine training step (UV %d, render %d, coarse frozen, U-Net %s%s)"
                      % (args.uv_size, stage.render_size, args.fine_precision,
                         ", run_train.sh's cue and detail supervision" if args.run_train else ""),
                      times, wall_ms, cpu_ms, args.fine_batch, FINE_PIECES)
        if args.top:
            print_top_nodes(nodes, args.top, args.fine_batch, sum(times.values()), _FINE_SCOPE_RULES)


if __name__ == "__main__":
    main()
