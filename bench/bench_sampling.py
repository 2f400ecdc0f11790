"""Speed of bilinear sampling: the fused BilinearSample op against the TensorFlow ops it replaced.

    python bench/bench_sampling.py [--batch 4] [--size 300] [--channels 6] [--texels 65536]
                                   [--repeats 20] [--positions warp|random] [--threads 0]

The fine stage's unwrap: B images of size x size x channels (photo and coarse render stacked)
sampled at K texel positions (256^2). model/face/unwrap.bilinear_sample (renderer.sampling, the
fused op) against tests/tf_reference.bilinear_sample_tf (the gathers, clamps and weighted sums it
replaced). Prints ms per call, wall and process CPU time (medians of --repeats runs after two
warm-up runs; the CPU time is steadier on a shared machine), of the forward alone and of the
forward with the backward (the samples and their gradients with respect to images and positions
of a fixed random linear function of them), and the oracle / fused ratios. Outputs are fetched
through sums (a fraction of a ms, the same for both). --positions warp (default) places the
texels as a UV chart does, a smooth warp of a 256 x 256 grid over the face region with a rim
outside the image; random draws them uniformly over the image and a margin (no locality).
--threads sets TensorFlow's intra-op threads (0: its default, all cores).
"""
import argparse
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import tensorflow.compat.v1 as tf  # noqa: E402

from model.face import unwrap  # noqa: E402
from tests.tf_reference import bilinear_sample_tf  # noqa: E402

tf.disable_eager_execution()


def texel_positions(rng, batch, count, size, kind):
    if kind == "random":
        return rng.uniform(-10.0, size + 10.0, size=(batch, count, 2)).astype(np.float32)
    side = int(np.ceil(np.sqrt(count)))
    u, v = np.meshgrid(np.linspace(0.0, 1.0, side), np.linspace(0.0, 1.0, side))
    u, v = u.ravel()[:count], v.ravel()[:count]
    out = []
    for _ in range(batch):
        # A face of about 0.8 of the crop, slightly turned: the chart's rim falls outside.
        angle = rng.normal(scale=0.1)
        x = size * (0.5 + 0.45 * (u - 0.5) * 2.2 * np.cos(angle) + 0.05 * np.sin(3 * v))
        y = size * (0.5 + 0.45 * (v - 0.5) * 2.2 + 0.03 * np.sin(4 * u + angle))
        out.append(np.stack([x, y], axis=-1))
    return np.asarray(out, np.float32)


def time_ms(session, target, repeats):
    """(wall, process CPU) ms per run, medians over `repeats` runs after two warm-up runs."""
    for _ in range(2):
        session.run(target)
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        session.run(target)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return 1e3 * float(np.median(wall)), 1e3 * float(np.median(cpu))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--channels", type=int, default=6)
    parser.add_argument("--texels", type=int, default=256 * 256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--positions", choices=("warp", "random"), default="warp")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(args.batch, args.size, args.size, args.channels)).astype(np.float32)
    positions = texel_positions(rng, args.batch, args.texels, args.size, args.positions)
    probe = rng.normal(size=(args.batch, args.texels, args.channels)).astype(np.float32)
    config = tf.ConfigProto(intra_op_parallelism_threads=args.threads)
    results = {}
    for name, sample in (("fused", unwrap.bilinear_sample), ("oracle", bilinear_sample_tf)):
        with tf.Graph().as_default(), tf.Session(config=config) as session:
            i = tf.Variable(images)
            p = tf.Variable(positions)
            session.run(tf.global_variables_initializer())
            out = sample(i.read_value(), p.read_value())
            # Fetched through sums (a fraction of a ms each, the same for both): Grappler prunes a
            # tf.group of stateless ops, so that nothing would run.
            forward = tf.reduce_sum(out)
            backward = [forward] + [tf.reduce_sum(g) for g in tf.gradients(tf.reduce_sum(out * probe), [i, p])]
            results[name] = (time_ms(session, forward, args.repeats), time_ms(session, backward, args.repeats))
    print("bilinear sampling, B=%d, %dx%dx%d images, K=%d (%s positions), intra-op threads %s; ms per call,"
          " wall (process CPU, all threads)"
          % (args.batch, args.size, args.size, args.channels, args.texels, args.positions, args.threads or "default"))
    print("%-8s %22s %22s" % ("", "forward", "forward+backward"))
    for name in ("fused", "oracle"):
        (fw, fc), (bw, bc) = results[name]
        print("%-8s %10.2f (%8.2f) %13.2f (%8.2f)" % (name, fw, fc, bw, bc))
    ratio = [results["oracle"][j][k] / results["fused"][j][k] for j in range(2) for k in range(2)]
    print("%-8s %9.1fx (%7.1fx) %12.1fx (%7.1fx)" % tuple(["ratio"] + ratio))

if __name__ == "__main__":
    main()
