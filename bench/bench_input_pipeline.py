"""The training input pipeline alone: images/s and CPU ms per image of model.data.training_batch.

    python bench/bench_input_pipeline.py [--data 'data/synthetic/*.tfrecord'] [--batch 16] [--batches 40]

Reads, checks, decodes, shuffles and augments batches as a coarse training run does (with and
without the ground truth that --gt_shape_weight asks for), in one process with nothing else in the
graph, after 5 warm-up batches. The pipeline shares the CPU with the training step, so its CPU time
per image is what it takes from the step.
"""
import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow.compat.v1 as tf  # noqa: E402

from model import data  # noqa: E402

tf.disable_eager_execution()


def measure(pattern, batch_size, batches, keep_ground_truth):
    with tf.Graph().as_default(), tf.Session() as session:
        batch, _ = data.training_batch(pattern, batch_size, seed=1, keep_ground_truth=keep_ground_truth)
        for _ in range(5):
            session.run(batch)
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        for _ in range(batches):
            session.run(batch)
        wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    images = batches * batch_size
    return images / wall, 1e3 * cpu / images


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.path.join(REPO, "data", "synthetic", "*.tfrecord"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()
    if args.batch <= 0 or args.batches <= 0:
        sys.exit("bench_input_pipeline.py: --batch and --batches must be positive")
    for keep in (False, True):
        rate, cpu = measure(args.data, args.batch, args.batches, keep)
        print("ground truth %-4s %.1f images/s wall, %.2f ms CPU per image" % ("kept" if keep else "no", rate, cpu))


if __name__ == "__main__":
    main()
