"""train.py as the tests run it: a subprocess, a tiny synthetic set, a run killed mid-training."""
import glob
import os
import signal
import subprocess
import sys
import time

from model import training

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_train(*flags, timeout=300):
    """train.py with `flags`, to the end; the CompletedProcess (text stdout and stderr)."""
    return subprocess.run([sys.executable, os.path.join(REPO, "train.py")] + list(flags), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def synthesize_tiny_set(out, num):
    """`num` synthetic faces (seed 3) written to the folder `out` by preprocess/synthesize.py."""
    subprocess.run([sys.executable, "-m", "preprocess.synthesize", "--num=%d" % num, "--out=%s" % out,
                    "--seed=3", "--workers=1"], cwd=REPO, check=True, capture_output=True, timeout=300)
    assert glob.glob(os.path.join(str(out), "*.tfrecord"))
    return out


def train_until_killed(flags, checkpoint_dir, min_step=4, timeout=240):
    """Starts train.py with `flags` and a far final step, SIGKILLs it once checkpoint_dir holds a
    checkpoint at min_step or later; returns that latest checkpoint's step."""
    process = subprocess.Popen([sys.executable, os.path.join(REPO, "train.py"), "--step=100000"] + list(flags),
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + timeout
        while training.latest_step(str(checkpoint_dir))[1] < min_step and time.time() < deadline:
            time.sleep(0.5)
            assert process.poll() is None, "train.py ended before it was killed"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    return training.latest_step(str(checkpoint_dir))[1]
