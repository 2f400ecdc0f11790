"""Rasterizer speed on a face-sized mesh: milliseconds per image, forward and forward+backward.

Usage: python bench/bench_rasterizer.py [--reference] [--batch 16] [--size 224] [--repeats 10]
                                        [--threads N]

The mesh has 35,709 vertices (as many as the Basel Face Model) and about 70,000 triangles: a
bumpy sphere cap covering most of a 224 x 224 image, seen by the orthographic camera with a
different small head rotation per batch element. Forward = rasterize; forward+backward =
rasterize, then the gradient with respect to the clip-space vertices of a fixed random linear
function of the barycentrics. Each figure is the median over --repeats runs of the batch, as
wall time and as process CPU time (all threads; steadier on a shared machine), divided by the
batch size.

With --reference the same graphs are timed for Google's tf_mesh_renderer kernel
(mesh-renderer==1.4 built by bench/upstream_rasterizer.py, one op per image in one session, as
its own wrapper does) in the same process, under two thread settings: TensorFlow's default
(all cores: our op splits the batch over its intra-op threads, upstream's per-image ops run in
parallel on the inter-op threads) and one thread (a child process with --threads 1, since
TensorFlow fixes its thread pools at the first session). Speedups (upstream / ours) are printed
for both settings, wall and CPU, and against the issue's single-threaded upstream figure. The
last line, speedup_fwd_bwd=<upstream time / our time>, is the like-for-like one: same session,
TensorFlow's default threads (or --threads N), wall-clock medians.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow.compat.v1 as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import renderer  # noqa: E402

VERTEX_COUNT = 35709


def face_sized_mesh(batch, size, seed=0):
    """Clip-space vertices [batch, 35709, 4] (orthographic) and triangles [T, 3] (~70k)."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(VERTEX_COUNT)))
    u, v = np.meshgrid(np.linspace(-1, 1, side), np.linspace(-1, 1, side))
    u, v = u.ravel()[:VERTEX_COUNT], v.ravel()[:VERTEX_COUNT]
    # An ellipsoidal cap (taller than wide, like a face) with bumps and jitter so that
    # triangles differ in size and shape.
    x = 0.85 * u + rng.normal(0, 0.001, u.shape)
    y = 0.95 * v + rng.normal(0, 0.001, v.shape)
    z = np.sqrt(np.maximum(1.2 - u ** 2 - v ** 2, 0.0)) + 0.03 * np.sin(9 * u) * np.cos(7 * v)
    points = np.stack([x, y, z], -1)
    index = np.arange(side * side).reshape(side, side)
    a, b, c, d = index[:-1, :-1].ravel(), index[:-1, 1:].ravel(), index[1:, :-1].ravel(), index[1:, 1:].ravel()
    triangles = np.concatenate([np.stack([a, b, d], -1), np.stack([a, d, c], -1)])
    triangles = triangles[np.all(triangles < VERTEX_COUNT, axis=1)].astype(np.int32)

    clips = []
    for _ in range(batch):
        yaw, pitch = rng.uniform(-0.3, 0.3, 2)
        rotation = (np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
                    @ np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]]))
        rotated = points @ rotation.T
        scale = 0.9 * size / 2  # the cap spans about 90% of the image width
        px = np.stack([size / 2 + scale * rotated[:, 0], size / 2 - scale * rotated[:, 1], scale * rotated[:, 2]], -1)
        clips.append(np.concatenate([2 * px[:, :1] / size - 1, 1 - 2 * px[:, 1:2] / size,
                                     -px[:, 2:] / (2 * size), np.ones((VERTEX_COUNT, 1))], -1))
    return np.stack(clips).astype(np.float32), triangles


def time_graph(session, fetch, repeats):
    """Median wall time and median process CPU time of session.run(fetch), in seconds.

    The CPU time (all threads) is printed too because on a shared machine it varies less
    than the wall time, which other processes stretch.
    """
    for _ in range(2):
        session.run(fetch)
    wall, cpu = [], []
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        session.run(fetch)
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    return float(np.median(wall)), float(np.median(cpu))


def build(clip, triangles, size, barycentrics_fn, weights):
    """Returns (forward op, forward+backward op) for a function giving barycentrics [B,H,W,3]."""
    barycentrics = barycentrics_fn(clip)
    loss = tf.reduce_sum(barycentrics * weights)
    # Fetching one element runs the whole op without timing a copy of its outputs.
    return barycentrics[0, 0, 0, 0], tf.gradients(loss, clip)[0][0, 0, 0]


# The issue's figures for upstream, single-threaded, on the development machine (ms/image).
ISSUE_UPSTREAM_FWD_BWD_MS = 8.7


def measure(args):
    """Times ours (and upstream with --reference) in one session with args.threads threads.

    Returns {name: (forward wall, forward cpu, fwd+bwd wall, fwd+bwd cpu)} in ms per image.
    """
    tf.disable_eager_execution()
    clip_np, triangles_np = face_sized_mesh(args.batch, args.size)
    config = tf.ConfigProto(intra_op_parallelism_threads=args.threads, inter_op_parallelism_threads=args.threads)
    with tf.Graph().as_default(), tf.Session(config=config) as session:
        clip = tf.Variable(clip_np, name="clip_vertices")  # a variable, so nothing is constant-folded
        triangles = tf.constant(triangles_np)
        weights = tf.constant(np.random.default_rng(1).normal(size=(args.batch, args.size, args.size, 3)),
                              tf.float32)
        variants = [("ours", lambda c: renderer.rasterize(c, triangles, (args.size, args.size)).barycentrics)]
        if args.reference:
            from bench import upstream_rasterizer
            variants.append(("upstream", lambda c: upstream_rasterizer.rasterize(
                c, triangles, (args.size, args.size))[0]))
        graphs = [(name, build(clip, triangles, args.size, fn, weights)) for name, fn in variants]
        session.run(tf.global_variables_initializer())
        coverage = session.run(tf.reduce_mean(renderer.rasterize(clip, triangles, (args.size, args.size)).mask))
        print("mesh: %d vertices, %d triangles; batch %d; image %dx%d; coverage %.1f%% of pixels"
              % (clip_np.shape[1], len(triangles_np), args.batch, args.size, args.size, 100 * coverage))
        results = {}
        for name, (forward, backward) in graphs:
            fwd = [t / args.batch * 1e3 for t in time_graph(session, forward, args.repeats)]
            both = [t / args.batch * 1e3 for t in time_graph(session, backward, args.repeats)]
            results[name] = tuple(fwd + both)
    return results


def print_results(results, threads_label):
    for name, (fwd_wall, fwd_cpu, both_wall, both_cpu) in results.items():
        print("[%s] %-8s forward %.3f ms/image (cpu %.3f)   forward+backward %.3f ms/image (cpu %.3f)"
              % (threads_label, name, fwd_wall, fwd_cpu, both_wall, both_cpu))
    if "upstream" in results:
        ours, upstream = results["ours"], results["upstream"]
        print("[%s] speedup forward: wall %.2f, cpu %.2f;  forward+backward: wall %.2f, cpu %.2f"
              % (threads_label, upstream[0] / ours[0], upstream[1] / ours[1],
                 upstream[2] / ours[2], upstream[3] / ours[3]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", action="store_true", help="also time upstream tf_mesh_renderer")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224, help="image height and width in pixels")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0,
                        help="intra- and inter-op threads for TensorFlow (0: TensorFlow's default, all cores)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # child-process output
    args = parser.parse_args()

    results = measure(args)
    if args.json:
        print("RESULTS " + json.dumps(results))
        return
    label = "threads %s" % (args.threads or "default")
    print_results(results, label)
    if not args.reference:
        return
    if args.threads != 1:
        child = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--reference", "--json", "--threads", "1",
             "--batch", str(args.batch), "--size", str(args.size), "--repeats", str(args.repeats)],
            capture_output=True, text=True)
        lines = [line for line in child.stdout.splitlines() if line.startswith("RESULTS ")]
        if child.returncode != 0 or not lines:
            sys.exit("bench_rasterizer: the single-threaded child run failed:\n" + child.stderr[-2000:])
        print_results(json.loads(lines[-1][len("RESULTS "):]), "threads 1")
    print("[%s] speedup forward+backward against the issue's single-threaded upstream %.1f ms: wall %.2f, cpu %.2f"
          % (label, ISSUE_UPSTREAM_FWD_BWD_MS, ISSUE_UPSTREAM_FWD_BWD_MS / results["ours"][2],
             ISSUE_UPSTREAM_FWD_BWD_MS / results["ours"][3]))
    print("last line: upstream / ours, forward+backward, same session, %s, wall-clock medians" % label)
    print("speedup_fwd_bwd=%.2f" % (results["upstream"][2] / results["ours"][2]))


if __name__ == "__main__":
    main()
