"""Training images/s of the coarse stage: one process, 2 in-graph towers on 2 logical CPU devices,
and clusters of 1 and 2 replicas (chief, chief + worker) on 127.0.0.1 through TF_CONFIG.

    .venv/bin/python bench/bench_scale.py [--data_dir=DIR] [--batch_size=2] [--steps=8]

Every figure comes from train.py's own log lines (steps/s between consecutive log lines, the
median after the first two steps, which carry graph warm-up) times the images one step trains
(--batch_size per replica; the towers split the batch). Without --data_dir, 8 synthetic faces in
two tfrecord files are written to a temporary folder first.

What it measures on a CPU machine: overhead, not speed-up. Logical CPU devices share the same cores
and thread pools, and two processes on one 2-core machine share two cores, so the towers and the
second worker add work (splitting, averaging, gRPC, the synchronous barrier) without adding compute.
A speed-up needs GPUs (towers) or machines (workers).
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from model.launch import free_local_ports  # noqa: E402  (no TensorFlow import)
_RATE = re.compile(r"^step (\d+)/\d+ .*\| ([0-9.]+) steps/s", re.M)


def _steps_per_second(log):
    rates = [float(rate) for step, rate in _RATE.findall(log) if int(step) > 2]
    if not rates:
        raise RuntimeError("no step rate in the log:\n" + log[-3000:])
    return statistics.median(rates)


def _train(data_dir, folder, batch_size, steps, extra=(), cluster=None, timeout=900):
    """Runs train.py (one process, or every replica of `cluster` at once); returns the chief's log."""
    flags = ["--data_dir=%s" % data_dir, "--checkpoint_dir=%s" % folder, "--batch_size=%d" % batch_size,
             "--step=%d" % steps, "--log_step=1", "--save_step=%d" % (10 * steps)] + list(extra)
    command = [sys.executable, os.path.join(REPO, "train.py")] + flags
    tasks = [None] if cluster is None else [(job, i) for job in ("chief", "worker") for i in range(len(cluster.get(job, [])))]
    processes = []
    try:
        for task in tasks:
            environ = dict(os.environ)
            if task is not None:
                environ["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": task[0], "index": task[1]}})
            processes.append(subprocess.Popen(command, cwd=REPO, env=environ, stdout=subprocess.PIPE,
                                              stderr=subprocess.STDOUT, text=True))
        outputs = [p.communicate(timeout=timeout)[0] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, out in zip(processes, outputs):
        if p.returncode != 0:
            raise RuntimeError("train.py failed:\n" + out[-3000:])
    return outputs[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default="", help="training tfrecords (at least 2 files); empty: synthesize")
    parser.add_argument("--batch_size", type=int, default=2, help="images per step per replica (even)")
    parser.add_argument("--steps", type=int, default=8, help="steps per configuration (> 3)")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench_scale_")
    try:
        data_dir = args.data_dir
        if not data_dir:
            data_dir = os.path.join(work, "data")
            subprocess.run([sys.executable, "-m", "preprocess.synthesize", "--num=8", "--out=%s" % data_dir,
                            "--seed=9", "--workers=1", "--records_per_shard=4"], cwd=REPO, check=True,
                           capture_output=True)
        rows = []

        def measure(name, images_per_step, **kwargs):
            folder = os.path.join(work, "ckpt_%d" % len(rows))
            rate = _steps_per_second(_train(data_dir, folder, args.batch_size, args.steps, **kwargs))
            rows.append((name, images_per_step, rate, rate * images_per_step))
            print("%-44s %3d images/step  %6.3f steps/s  %6.2f images/s" % rows[-1], flush=True)

        b = args.batch_size
        print("batch %d per replica, %d steps each, median rate after step 2 (cpu count %d)"
              % (b, args.steps, os.cpu_count()), flush=True)
        measure("one process, 1 tower", b)
        measure("one process, 2 towers (2 logical CPU devices)", b, extra=["--num_gpus=2"])
        chief, = free_local_ports(1)
        measure("cluster: chief only (1 replica)", b, cluster={"chief": ["127.0.0.1:%d" % chief]})
        chief, worker = free_local_ports(2)
        measure("cluster: chief + 1 worker (2 replicas)", 2 * b,
                cluster={"chief": ["127.0.0.1:%d" % chief], "worker": ["127.0.0.1:%d" % worker]})
        base = rows[0][3]
        print("images/s relative to one process, 1 tower: " + ", ".join(
            "%s %.2f" % (name.split(" (")[0], value / base) for name, _, _, value in rows[1:]))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
