"""Fuzzes the rasterizer op (forward and gradient) with random and degenerate meshes.

Usage: python bench/bench_fuzz.py [--cases 10000] [--seed 0] [--case_timeout 20]

Each case is a random batch (0-3 images) of a random mesh (1-40 vertices, 1-50 triangles) at a
random small image size, with values drawn from a mix of ordinary numbers and extremes: NaN,
+-inf, +-0, +-3.4e38, 1e37, subnormals down to 1e-45, w at and behind the eye; about 5% of
the cases hold an index outside the mesh (which must be an InvalidArgumentError). The cases run
in a child process, one line of output per case; the parent restarts the child after a crash
(a signal) or a hang (no answer within --case_timeout seconds) and goes on with the next case.

A case counts as
- a crash: the child died (a signal or a non-zero exit) while running it;
- a hang: no answer within --case_timeout seconds;
- non-finite: all its inputs finite, yet a forward output (barycentrics, depth, mask) is not,
  or a barycentric lies outside [-1e-3, 1 + 1e-3]; or its inputs are all within
  [1e-6, 1e6] in magnitude (or zero) and a gradient is not finite (with extreme inputs the true
  gradient can exceed float's range);
- an unexpected error: any exception except the InvalidArgumentError of a bad index, or no error
  for a bad index.
Prints the four counts; the last line is `crashes=<n> hangs=<n> non_finite=<n>`.
"""
import argparse
import json
import os
import queue
import subprocess
import sys
import threading

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = (1, 3, 16, 33)
SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 3.4e38, -3.4e38, 1e38, 1e37, -1e37, 1e-38,
                     1e-40, -1e-40, 1e-45, 1e6, 1e-7, 1e12, -1e-12], np.float32)


def make_case(seed, index):
    """The case `index` of the run `seed`: a dict of numpy inputs and what is expected."""
    rng = np.random.default_rng([seed, index])
    batch = int(rng.choice([0, 1, 1, 2, 3]))
    vertices = int(rng.integers(1, 41))
    triangle_count = int(rng.integers(1, 51))
    clip = rng.normal(0.0, float(rng.choice([0.3, 1.0, 5.0])), (batch, vertices, 4)).astype(np.float32)
    clip[..., 3] = rng.uniform(float(rng.choice([-1.0, 0.05, 0.5])), 2.0, (batch, vertices))
    special_rate = float(rng.choice([0.0, 0.0, 0.02, 0.1, 0.5]))
    where = rng.random(clip.shape) < special_rate
    clip[where] = rng.choice(SPECIALS, int(where.sum()))
    if rng.random() < 0.1:  # one scale for whole vertices: same projection, extreme w
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            clip *= np.float32(rng.choice([1e37, 1e38, 1e-38, 1e-40]))
    triangles = rng.integers(0, vertices, (triangle_count, 3)).astype(np.int32)
    bad_index = rng.random() < 0.05
    if bad_index:
        triangles[rng.integers(triangle_count), rng.integers(3)] = rng.choice([-1, vertices, 2 ** 31 - 1])
    return {"clip": clip, "triangles": triangles, "height": int(rng.choice(SIZES)),
            "width": int(rng.choice(SIZES)), "cull": bool(rng.random() < 0.3), "bad_index": bool(bad_index),
            "d_barycentrics_seed": int(rng.integers(2 ** 31))}


def _moderate(values):
    magnitude = np.abs(values)
    return bool(np.all((magnitude == 0) | ((magnitude >= 1e-6) & (magnitude <= 1e6))))


def child(seed, start, stop):
    """Runs cases [start, stop), printing one JSON line per case."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, ROOT)
    import tensorflow.compat.v1 as tf
    tf.disable_eager_execution()
    import renderer

    graphs = {}

    def graph_for(height, width, cull):
        key = (height, width, cull)
        if key not in graphs:
            clip = tf.placeholder(tf.float32, [None, None, 4])
            triangles = tf.placeholder(tf.int32, [None, 3])
            weights = tf.placeholder(tf.float32, [None, height, width, 3])
            depth_weights = tf.placeholder(tf.float32, [None, height, width])
            out = renderer.rasterize(clip, triangles, (height, width), cull_backfaces=cull)
            loss = tf.reduce_sum(out.barycentrics * weights) + tf.reduce_sum(out.depth * depth_weights)
            gradient = tf.gradients(loss, clip)[0]
            graphs[key] = (clip, triangles, weights, depth_weights, out, gradient)
        return graphs[key]

    with tf.Session() as session:
        for index in range(start, stop):
            case = make_case(seed, index)
            clip, triangles, weights, depth_weights, out, gradient = graph_for(
                case["height"], case["width"], case["cull"])
            rng = np.random.default_rng(case["d_barycentrics_seed"])
            batch = case["clip"].shape[0]
            feed = {clip: case["clip"], triangles: case["triangles"],
                    weights: rng.normal(size=(batch, case["height"], case["width"], 3)).astype(np.float32),
                    depth_weights: rng.normal(size=(batch, case["height"], case["width"])).astype(np.float32)}
            result = {"case": index}
            try:
                ids, mask, bary, depth, d_clip = session.run(list(out) + [gradient], feed)
                finite_input = bool(np.all(np.isfinite(case["clip"])))
                forward_bad = finite_input and not (
                    np.all(np.isfinite(bary)) and np.all(np.isfinite(depth)) and np.all(np.isfinite(mask))
                    and np.all(bary >= -1e-3) and np.all(bary <= 1 + 1e-3))
                gradient_bad = _moderate(case["clip"]) and not np.all(np.isfinite(d_clip))
                result["non_finite"] = bool(forward_bad or gradient_bad)
                result["unexpected_error"] = case["bad_index"]
                if case["bad_index"]:
                    result["message"] = "no error for a bad index"
            except tf.errors.InvalidArgumentError as error:
                result["non_finite"] = False
                result["unexpected_error"] = not case["bad_index"]
                result["message"] = error.message.splitlines()[0][:200]
            except Exception as error:  # counted, reported, and the run goes on
                result["non_finite"] = False
                result["unexpected_error"] = True
                result["message"] = ("%s: %s" % (type(error).__name__, error)).splitlines()[0][:200]
            print(json.dumps(result), flush=True)


def run_fuzz(cases, seed=0, case_timeout=20.0, first_case_timeout=120.0):
    """Runs `cases` cases in child processes; returns counts and the failing cases."""
    counts = {"crashes": 0, "hangs": 0, "non_finite": 0, "unexpected_errors": 0, "expected_errors": 0}
    failures = []
    index = 0
    while index < cases:
        process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--child", str(seed), str(index), str(cases)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in process.stdout] + [lines.put(None)],
                         daemon=True).start()
        stderr = []
        threading.Thread(target=lambda: stderr.append(process.stderr.read()), daemon=True).start()
        timeout = first_case_timeout  # the first case also imports TensorFlow and builds graphs
        while index < cases:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                process.kill()
                process.wait()
                counts["hangs"] += 1
                failures.append({"case": index, "kind": "hang"})
                index += 1
                break
            if line is None:
                code = process.wait()
                counts["crashes"] += 1
                failures.append({"case": index, "kind": "crash", "returncode": code,
                                 "stderr": "".join(stderr)[-500:]})
                index += 1
                break
            result = json.loads(line)
            timeout = case_timeout
            counts["expected_errors"] += "message" in result and not result["unexpected_error"]
            for key in ("non_finite", "unexpected_error"):
                if result[key]:
                    counts["non_finite" if key == "non_finite" else "unexpected_errors"] += 1
                    failures.append(dict(result, kind=key))
            index = result["case"] + 1
        else:
            process.wait()
    return counts, failures


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--case_timeout", type=float, default=20.0, help="seconds before a case counts as a hang")
    args = parser.parse_args()
    if args.cases < 1 or not args.case_timeout > 0:
        parser.error("--cases must be >= 1 and --case_timeout > 0")
    counts, failures = run_fuzz(args.cases, args.seed, args.case_timeout)
    for failure in failures[:20]:
        print("failed:", json.dumps(failure))
    print("cases=%d bad-index errors as expected=%d unexpected_errors=%d"
          % (args.cases, counts["expected_errors"], counts["unexpected_errors"]))
    print("crashes=%d hangs=%d non_finite=%d" % (counts["crashes"], counts["hangs"], counts["non_finite"]))


if __name__ == "__main__":
    main()
