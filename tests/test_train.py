"""train.py: schedule, clipping, divergence stop, learning on synthetic faces, resuming after a kill."""
import glob
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import train
from model import coarse
from model.data import make_dataset
from model.face import FaceModel

tf.disable_eager_execution()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_train(*flags, timeout=300):
    return subprocess.run([sys.executable, os.path.join(REPO, "train.py")] + list(flags), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
    """A tiny synthetic training set written by preprocess/synthesize.py."""
    out = tmp_path_factory.mktemp("synthetic")
    subprocess.run([sys.executable, "-m", "preprocess.synthesize", "--num=8", "--out=%s" % out,
                    "--seed=3", "--workers=1"], cwd=REPO, check=True, capture_output=True, timeout=300)
    assert glob.glob(str(out / "*.tfrecord"))
    return out


def test_learning_rate_decays_exponentially_down_to_the_floor():
    with tf.Graph().as_default(), tf.Session() as session:
        step = tf.placeholder(tf.int64, [])
        rate = train.learning_rate_schedule(step, 1e-3, 100, 0.5, 2e-4)
        values = [session.run(rate, {step: s}) for s in (0, 100, 200, 1000)]
    np.testing.assert_allclose(values, [1e-3, 5e-4, 2.5e-4, 2e-4], rtol=1e-5)


def test_gradients_are_clipped_element_wise():
    with tf.Graph().as_default(), tf.Session() as session:
        variable = tf.get_variable("x", initializer=tf.constant([0.0, 0.0, 0.0]))
        loss = tf.reduce_sum(variable * tf.constant([5.0, -0.3, -7.0]))
        pairs = train.clipped_gradients(tf.train.GradientDescentOptimizer(1.0), loss, [variable], 1.0)
        session.run(tf.global_variables_initializer())
        np.testing.assert_allclose(session.run(pairs[0][0]), [1.0, -0.3, -1.0])


def test_a_nan_loss_stops_training_naming_the_step_and_the_loss():
    train.check_finite(6, {"total": 1.0, "landmark": 3.0})
    with pytest.raises(train.TrainingDiverged, match=r"landmark.*at step 7"):
        train.check_finite(7, {"total": 1.0, "landmark": float("nan")})


def test_fine_stage_is_refused_until_it_exists():
    result = run_train("--stage=fine")
    assert result.returncode != 0
    assert "--stage=fine is not implemented" in result.stderr


def test_empty_data_dir_is_a_clear_error(tmp_path):
    result = run_train("--data_dir=%s" % tmp_path, "--checkpoint_dir=%s" % (tmp_path / "ckpt"))
    assert result.returncode != 0
    assert "--data_dir=%s holds no" % tmp_path in result.stderr


@pytest.mark.slow
def test_a_few_training_steps_lower_the_total_loss(synthetic_dir):
    face_model = FaceModel()
    with tf.Graph().as_default(), tf.Session() as session:
        tf.set_random_seed(0)
        batch = tf.data.make_one_shot_iterator(make_dataset(
            str(synthetic_dir / "*.tfrecord"), 4, augment=False, shuffle=False)).get_next()
        fixed = {key: tf.constant(value) for key, value in session.run(batch).items()
                 if key in ("image", "landmarks", "segmentation")}
        net = coarse.CoarseNet(face_model.k_id, face_model.k_exp, face_model.k_tex)
        model = coarse.CoarseModel(face_model, net)
        weights = coarse.LossWeights(1.9, 1.6e-3, 0.0, 1e-3, 8e-4, 1e-3)
        total = model.losses(fixed, model.forward(fixed["image"]), weights)["total"]
        optimizer = tf.train.AdamOptimizer(1e-3)
        step = optimizer.apply_gradients(train.clipped_gradients(optimizer, total, tf.trainable_variables(), 1.0))
        session.run(tf.global_variables_initializer())
        before = session.run(total)
        for _ in range(15):
            session.run(step)
        after = session.run(total)
    assert np.isfinite(before) and after < 0.8 * before


@pytest.mark.slow
def test_training_killed_mid_run_resumes_from_its_last_checkpoint_at_the_same_step(synthetic_dir, tmp_path):
    checkpoints = tmp_path / "ckpt"
    common = ["--data_dir=%s" % synthetic_dir, "--checkpoint_dir=%s" % checkpoints, "--batch_size=2",
              "--log_step=1", "--save_step=2"]
    process = subprocess.Popen([sys.executable, os.path.join(REPO, "train.py"), "--step=100000"] + common,
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while train.latest_step(str(checkpoints))[1] < 4 and time.time() < deadline:
            time.sleep(0.5)
            assert process.poll() is None, "train.py ended before it was killed"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    _, killed_at = train.latest_step(str(checkpoints))
    assert killed_at >= 4 and killed_at % 2 == 0

    result = run_train("--step=%d" % (killed_at + 2), *common)
    assert result.returncode == 0, result.stderr
    assert "resuming from" in result.stdout and "at step %d" % killed_at in result.stdout
    assert "step %d/%d" % (killed_at + 1, killed_at + 2) in result.stdout
    assert train.latest_step(str(checkpoints))[1] == killed_at + 2


@pytest.mark.slow
def test_finished_training_exports_the_network_weights_without_optimizer_state(synthetic_dir, tmp_path):
    result = run_train("--data_dir=%s" % synthetic_dir, "--checkpoint_dir=%s" % tmp_path, "--batch_size=2",
                       "--step=2", "--log_step=1", "--save_step=2")
    assert result.returncode == 0, result.stderr
    exported = tf.train.latest_checkpoint(str(tmp_path / train.NETWORK_DIR))
    assert exported is not None and exported.endswith("model.ckpt-2")
    names = [name for name, _ in tf.train.list_variables(exported)]
    assert names and all(name.startswith(coarse.SCOPE + "/") and "Adam" not in name for name in names)
