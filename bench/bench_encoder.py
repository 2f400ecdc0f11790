"""Speed of the coarse encoder under TensorFlow's CPU options and GroupNorm formulations.

    python bench/bench_encoder.py [--batch 16] [--rounds 3] [--repeats 3] [--variants a,b,...]

Times one training step of the encoder alone (resized 224 x 224 input -> `compact` backbone and
heads -> gradients of a fixed random linear function of the coefficients with respect to every
weight), in ms per image, as wall time and as process CPU time (all threads; steadier on a shared
machine). Each variant runs in a child process of its own (oneDNN and the thread pools are fixed
per process), and the variants take turns for --rounds rounds, so that a change in the machine's
load falls on all of them; each figure is the median over rounds of the median of --repeats steps.

Variants (name: what differs from `default`, which is the code as it is, TensorFlow's defaults):
  default           model/coarse.py as it stands, oneDNN on (TensorFlow's default on x86-64)
  onednn_off        TF_ENABLE_ONEDNN_OPTS=0 (Eigen kernels)
  threads_1         intra- and inter-op threads 1
  inter_1           inter-op threads 1, intra-op default
  xla               XLA auto-clustering of the whole step (global_jit_level ON_1 with
                    TF_XLA_FLAGS=--tf_xla_cpu_global_jit)
  gn_moments        GroupNorm as tf.nn.moments on [B, H, W, G, C/G], then (x - mean) * rsqrt
                    * gamma + beta (the formulation before this benchmark)
  gn_fused_bn       GroupNorm through tf.nn.fused_batch_norm on a transposed [1, HWC/G, 1, BG] view
  nchw              convolutions in NCHW (tried: TensorFlow's CPU kernels refuse it, see output)
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

VARIANTS = ("default", "onednn_off", "threads_1", "inter_1", "xla", "gn_moments", "gn_fused_bn", "nchw")


def _environment(variant):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if variant == "onednn_off":
        env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    if variant == "xla":
        env["TF_XLA_FLAGS"] = "--tf_xla_cpu_global_jit"
    return env


def _gn_moments(tf, coarse):
    def group_norm(x, name, gamma_init=1.0):
        channels = x.shape[-1]
        with tf.variable_scope(name):
            gamma = tf.get_variable("gamma", [channels], initializer=tf.constant_initializer(gamma_init))
            beta = tf.get_variable("beta", [channels], initializer=tf.zeros_initializer())
        shape = tf.shape(x)
        grouped = tf.reshape(x, [shape[0], shape[1], shape[2], coarse._GROUPS, channels // coarse._GROUPS])
        mean, variance = tf.nn.moments(grouped, axes=[1, 2, 4], keepdims=True)
        grouped = (grouped - mean) * tf.rsqrt(variance + 1e-5)
        return tf.reshape(grouped, shape) * gamma + beta
    return group_norm


def _gn_fused_bn(tf, coarse):
    def group_norm(x, name, gamma_init=1.0):
        groups = coarse._GROUPS
        channels = int(x.shape[-1])
        with tf.variable_scope(name):
            gamma = tf.get_variable("gamma", [channels], initializer=tf.constant_initializer(gamma_init))
            beta = tf.get_variable("beta", [channels], initializer=tf.zeros_initializer())
        b, h, w = (int(d) for d in x.shape[:3])
        per_group = channels // groups
        view = tf.transpose(tf.reshape(x, [b, h * w, groups, per_group]), [1, 3, 0, 2])
        view = tf.reshape(view, [1, h * w * per_group, 1, b * groups])
        normalised, _, _ = tf.nn.fused_batch_norm(view, tf.ones([b * groups]), tf.zeros([b * groups]),
                                                  epsilon=1e-5, is_training=True)
        normalised = tf.transpose(tf.reshape(normalised, [h * w, per_group, b, groups]), [2, 0, 3, 1])
        return tf.reshape(normalised, [b, h, w, channels]) * gamma + beta
    return group_norm


def child(variant, batch, repeats):
    """Builds and times the encoder step for one variant; prints a RESULT line (JSON)."""
    sys.path.insert(0, REPO)
    import tensorflow.compat.v1 as tf
    from model import coarse
    tf.disable_eager_execution()
    if variant == "gn_moments":
        coarse._group_norm = _gn_moments(tf, coarse)
    if variant == "gn_fused_bn":
        coarse._group_norm = _gn_fused_bn(tf, coarse)
    if variant == "nchw":
        nhwc_conv2d = tf.nn.conv2d

        def conv2d_nchw(x, kernel, stride, padding):
            y = nhwc_conv2d(tf.transpose(x, [0, 3, 1, 2]), kernel, stride, padding, data_format="NCHW")
            return tf.transpose(y, [0, 2, 3, 1])
        tf.nn.conv2d = conv2d_nchw
    threads = 1 if variant == "threads_1" else 0
    config = tf.ConfigProto(intra_op_parallelism_threads=threads,
                            inter_op_parallelism_threads=1 if variant in ("threads_1", "inter_1") else 0)
    if variant == "xla":
        config.graph_options.optimizer_options.global_jit_level = tf.OptimizerOptions.ON_1
    rng = np.random.default_rng(0)
    with tf.Graph().as_default():
        images = tf.Variable(rng.uniform(size=(batch, 224, 224, 3)).astype(np.float32), trainable=False)
        net = coarse.CoarseNet(80, 49, 23)
        coefficients = net(images)
        weights = tf.constant(rng.normal(size=coefficients.shape).astype(np.float32))
        # The heads start at zero, so the squared term makes every layer's gradient non-zero.
        loss = tf.reduce_sum(coefficients * weights) + tf.reduce_sum(tf.square(coefficients))
        gradients = tf.gradients(loss, net.variables())
        # Fetching one element of each runs the whole step without timing copies of large outputs.
        step = [tf.reshape(g, [-1])[0] for g in gradients]
        with tf.Session(config=config) as session:
            session.run(tf.global_variables_initializer())
            try:
                for _ in range(2):
                    session.run(step)
            except tf.errors.OpError as error:
                lines = [line.strip() for line in error.message.splitlines() if line.strip()]
                reasons = [line for line in lines if "support" in line or "No OpKernel" in line]
                print("RESULT " + json.dumps({"error": (reasons or lines[-1:])[0][:200]}))
                return
            wall, cpu = [], []
            for _ in range(repeats):
                start_wall, start_cpu = time.perf_counter(), time.process_time()
                session.run(step)
                wall.append(time.perf_counter() - start_wall)
                cpu.append(time.process_time() - start_cpu)
    print("RESULT " + json.dumps({"wall": 1e3 * float(np.median(wall)) / batch,
                                  "cpu": 1e3 * float(np.median(cpu)) / batch}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.batch, args.repeats)
        return
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        sys.exit("bench_encoder.py: unknown variant(s) %s; known: %s" % (", ".join(unknown), ", ".join(VARIANTS)))
    results = {v: [] for v in variants}
    errors = {}
    for _ in range(args.rounds):
        for variant in variants:
            if variant in errors:
                continue
            run = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", variant,
                                  "--batch", str(args.batch), "--repeats", str(args.repeats)],
                                 capture_output=True, text=True, env=_environment(variant))
            lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
            if run.returncode != 0 or not lines:
                errors[variant] = "child failed: " + run.stderr.strip().splitlines()[-1][:200]
                continue
            result = json.loads(lines[-1][len("RESULT "):])
            if "error" in result:
                errors[variant] = result["error"]
            else:
                results[variant].append(result)
    print("encoder training step (compact backbone, batch %d, 224 x 224), ms per image, median of %d rounds:"
          % (args.batch, args.rounds))
    reference = results.get("default")
    for variant in variants:
        if variant in errors:
            print("  %-12s failed: %s" % (variant, errors[variant]))
            continue
        wall = float(np.median([r["wall"] for r in results[variant]]))
        cpu = float(np.median([r["cpu"] for r in results[variant]]))
        line = "  %-12s wall %7.2f   cpu %7.2f" % (variant, wall, cpu)
        if reference and variant != "default":
            line += "   default / this: wall %.2f, cpu %.2f" % (
                np.median([r["wall"] for r in reference]) / wall, np.median([r["cpu"] for r in reference]) / cpu)
        print(line)


if __name__ == "__main__":
    main()
