"""Training speed of the fine stage against the coarse stage, at the same batch, in one process.

    python bench/bench_train_fine.py [--data_dir data/synthetic] [--batch_size 4] [--uv_size 256]

Builds both stages' training steps as train.py does (the stage's graph, Adam on its trainable
variables, element-wise clipped gradients; the fine stage on the coarse checkpoint, frozen unless
--train_coarse), each in its own graph and session, warms both up, then times them in alternating
rounds (--rounds x --steps steps each), so that a change of machine load hits both alike. Prints
each stage's steps/s and images/s (the median round) and the ratio coarse steps/s / fine steps/s
(issue 12's target: a fine step at UV 256 costs at most 2 coarse steps), then the same ratio of process
CPU time per step (median round), less sensitive to other jobs on the machine. Summaries, checkpoints
and logging are left out: they cost the same for both stages.

The fine stage's loss weights are the paper's (--weights paper, the default) or run_train.sh's
(--weights run_train: the gain-normalised photometric term and the synthetic detail supervision,
gt_disp 1e5); --shading_cue and --fine_precision as train.py's flags (run_train.sh's: --weights
run_train --shading_cue). --fine_precision both builds a float32 and a bfloat16 fine step and
times all three in the same alternating rounds.
"""
import argparse
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

from model import coarse, fine, training  # noqa: E402
from model.face import FaceModel  # noqa: E402
from preprocess import schema  # noqa: E402

tf.disable_eager_execution()

# The fine weights run_train.sh trains with: train.py's defaults and its GT_DISP_WEIGHT=1e5.
RUN_TRAIN_WEIGHTS = fine.DEFAULT_WEIGHTS._replace(gt_disp=1e5)


class Trainer(object):
    """One stage's training step in a graph and session of its own."""

    def __init__(self, stage, learning_rate=1e-4):
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.set_random_seed(0)
            built = stage.build(0)
            optimizer = tf.train.AdamOptimizer(learning_rate)
            self.train_op = optimizer.apply_gradients(
                training.clipped_gradients(optimizer, built.losses["total"], built.trainable, 1.0))
            self.total = built.losses["total"]
            self.session = tf.Session()
            self.session.run(tf.global_variables_initializer())
            stage.initialize(self.session, resumed=False)
            self.graph.finalize()
        self.cpu_per_step = []

    def steps_per_second(self, steps):
        """Steps per second of wall time; also appends this round's process CPU seconds per step
        to self.cpu_per_step."""
        start, start_cpu = time.time(), time.process_time()
        for _ in range(steps):
            self.session.run([self.train_op, self.total])
        self.cpu_per_step.append((time.process_time() - start_cpu) / steps)
        return steps / (time.time() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default=os.path.join(REPO, "data", "synthetic"),
                        help="training tfrecords (32 are synthesized if it holds none)")
    parser.add_argument("--coarse_checkpoint", default=os.path.join(REPO, fine.DEFAULT_COARSE_CHECKPOINT))
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--uv_size", type=int, default=fine.DEFAULT_UV_SIZE)
    parser.add_argument("--max_channels", type=int, default=fine.DEFAULT_MAX_CHANNELS)
    parser.add_argument("--render_size", type=int, default=fine.DEFAULT_RENDER_SIZE)
    parser.add_argument("--train_coarse", action="store_true")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--weights", choices=("paper", "run_train"), default="paper")
    parser.add_argument("--shading_cue", action="store_true")
    parser.add_argument("--fine_precision", choices=fine.PRECISIONS + ("both",), default="float32")
    args = parser.parse_args()
    weights = fine.PAPER_WEIGHTS if args.weights == "paper" else RUN_TRAIN_WEIGHTS
    precisions = fine.PRECISIONS if args.fine_precision == "both" else (args.fine_precision,)
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data_dir
        if not glob.glob(os.path.join(data_dir, "*" + schema.SHARD_SUFFIX)):
            data_dir = scratch
            subprocess.run([sys.executable, "-m", "preprocess.synthesize", "--num=32", "--out=%s" % data_dir,
                            "--seed=5"], cwd=REPO, check=True, capture_output=True)
        pattern = os.path.join(data_dir, "*" + schema.SHARD_SUFFIX)
        face_model = FaceModel()
        backbone = training.read_stage_config(args.coarse_checkpoint)["backbone"]
        trainers = dict(
            coarse=Trainer(coarse.CoarseStage(face_model, pattern, args.batch_size, coarse.TRAINING_LOSS_WEIGHTS,
                                              backbone)))
        for precision in precisions:
            name = "fine" if precision == "float32" else "fine_" + precision
            trainers[name] = Trainer(fine.FineStage(face_model, pattern, args.batch_size, weights,
                                                    args.coarse_checkpoint, args.uv_size, args.max_channels,
                                                    train_coarse=args.train_coarse, render_size=args.render_size,
                                                    shading_cue=args.shading_cue, precision=precision))
        for trainer in trainers.values():
            trainer.steps_per_second(args.warmup)
        rates = {name: [] for name in trainers}
        for _ in range(args.rounds):
            for name, trainer in trainers.items():
                rates[name].append(trainer.steps_per_second(args.steps))
    print("batch %d, %s backbone; fine: UV %d, max_channels %d, render %d, coarse %s, %s weights%s; %d rounds "
          "of %d steps (median round)" % (args.batch_size, backbone, args.uv_size, args.max_channels,
                                          args.render_size, "fine-tuned" if args.train_coarse else "frozen",
                                          args.weights, ", shading cue" if args.shading_cue else "",
                                          args.rounds, args.steps))
    median = {name: float(np.median(values)) for name, values in rates.items()}
    for name in trainers:
        print("  %-13s %.3f steps/s, %.2f images/s (rounds: %s)" % (
            name, median[name], median[name] * args.batch_size, " ".join("%.3f" % r for r in rates[name])))
    fines = [name for name in trainers if name != "coarse"]
    for name in fines:
        print("  a %s step costs %.2f coarse steps" % (name.replace("_", " "), median["coarse"] / median[name]))
    # Process CPU time per step (median round, warm-up excluded): less sensitive than wall time to
    # other jobs on a shared machine.
    cpu = {name: float(np.median(trainer.cpu_per_step[1:])) for name, trainer in trainers.items()}
    for name in fines:
        print("  process CPU per step: coarse %.3f s, %s %.3f s: a %s step costs %.2f coarse steps of CPU"
              % (cpu["coarse"], name, cpu[name], name.replace("_", " "), cpu[name] / cpu["coarse"]))


if __name__ == "__main__":
    main()
