"""Scale-out: in-graph towers (--num_gpus, model/training.build_step) and a synchronous cluster on
TensorFlow's distributed runtime (TF_CONFIG, model/cluster.py).

`pytest -k "tower or cluster"` selects these. Towers run on logical CPU devices here (no GPU);
the cluster runs as processes on 127.0.0.1, every one of them killed at the end.
"""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from absl import flags as absl_flags
import tensorflow.compat.v1 as tf

import train
from model import coarse, training
from model.cluster import ClusterConfigError, ClusterTask
from model.launch import free_local_ports, tf_config
from model.data import DataError, shard_files
from model.face import FaceModel

tf.disable_eager_execution()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def two_shards(tmp_path_factory):
    """4 synthetic faces in two tfrecord files (one per replica of a 2-task cluster)."""
    out = tmp_path_factory.mktemp("synthetic_shards")
    subprocess.run([sys.executable, "-m", "preprocess.synthesize", "--num=4", "--out=%s" % out, "--seed=5",
                    "--workers=1", "--records_per_shard=2"], cwd=REPO, check=True, capture_output=True, timeout=300)
    assert len(glob.glob(str(out / "*.tfrecord"))) == 2
    return out


# ---------------------------------------------------------------------------- towers


class _FixedBatchStage(coarse.CoarseStage):
    """The coarse stage on one constant batch (the same data for every graph and tower split)."""

    def __init__(self, arrays):
        super().__init__(FaceModel(), "unused", len(arrays["image"]),
                         coarse.TRAINING_LOSS_WEIGHTS._replace(perceptual=0.0))
        self.arrays = arrays

    def inputs(self, start_step):
        return {key: tf.constant(value) for key, value in self.arrays.items()}, None


def _fixed_batch(size):
    rng = np.random.default_rng(0)
    segmentation = np.zeros((size, 300, 300), np.int32)
    for b in range(size):  # face regions of different areas: the photometric normaliser differs per image
        segmentation[b, 60:240 - 30 * b, 60:240] = 1
    return dict(image=rng.random((size, 300, 300, 3)).astype(np.float32),
                landmarks=(150 + 40 * rng.standard_normal((size, 68, 2))).astype(np.float32),
                segmentation=segmentation)


# No clipping (clip 1e9): clipped elements would agree whatever the towers computed.
_SETTINGS = training.LoopSettings(checkpoint_dir="", step=1, save_step=1, log_step=1, image_summary_step=1,
                                  learning_rate=1e-3, lr_decay_step=100, lr_decay_rate=0.9,
                                  min_learning_rate=1e-6, gradient_clip=1e9, seed=0)


def _one_step(devices, arrays, initial=None):
    """(initial variables, applied gradients, variables after one step, devices of the session,
    devices the ops were placed on) for the towers on `devices`."""
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        graph = training.build_step(_FixedBatchStage(arrays), _SETTINGS, 0, devices)
        with tf.Session(config=training.session_config(len(devices or [None]))) as session:
            session.run(tf.global_variables_initializer())
            variables = tf.trainable_variables()
            if initial is not None:  # op creation order (hence op seeds) differs between the graphs
                for v in variables:
                    v.load(initial[v.op.name], session)
            before = {v.op.name: session.run(v) for v in variables}
            gradients = session.run({v.op.name: g for g, v in graph["gradients"]})
            session.run(graph["step_after"])
            after = {v.op.name: session.run(v) for v in variables}
            session_devices = [d.name for d in session.list_devices()]
        placed = {op.device for op in tf.get_default_graph().get_operations()}
    return before, gradients, after, session_devices, placed


@pytest.mark.slow
def test_tower_two_towers_at_batch_4_give_the_update_of_one_tower_at_batch_4():
    arrays = _fixed_batch(4)
    before, one_gradients, one_after, _, _ = _one_step(None, arrays)
    _, two_gradients, two_after, session_devices, placed = _one_step(["/cpu:0", "/cpu:1"], arrays, before)
    assert any(name.endswith("CPU:1") for name in session_devices)
    assert "/device:CPU:1" in placed and "/device:CPU:0" in placed
    assert sorted(one_gradients) == sorted(two_gradients) and len(one_gradients) > 10
    # GroupNorm is per sample and every loss a mean over samples: exact up to float summation order.
    for name, gradient in one_gradients.items():
        scale = np.max(np.abs(gradient)) + 1e-12
        np.testing.assert_allclose(two_gradients[name] / scale, gradient / scale, atol=1e-5, err_msg=name)
    moved = max(np.max(np.abs(one_after[name] - before[name])) for name in before)
    assert moved > 1e-4  # the step did update the variables
    for name in before:
        np.testing.assert_allclose(two_after[name], one_after[name], atol=1e-6, err_msg=name)


def test_tower_slices_must_be_equal():
    with tf.Graph().as_default():
        batch = {"image": tf.zeros([6, 2]), "landmarks": tf.zeros([6, 3, 2])}
        parts = training.split_batch(batch, 3)
        assert [p["landmarks"].shape.as_list() for p in parts] == [[2, 3, 2]] * 3
        with pytest.raises(ValueError, match=r"'image' has leading dimension 6, which does not split into 4"):
            training.split_batch(batch, 4)


def test_tower_batch_size_that_does_not_divide_by_num_gpus_is_a_flag_error():
    with pytest.raises(absl_flags.IllegalFlagValueError, match="--batch_size must divide by --num_gpus"):
        train.FLAGS(["train.py", "--batch_size=6", "--num_gpus=4"])
    train.FLAGS.unparse_flags()
    train.FLAGS(["train.py", "--batch_size=6", "--num_gpus=3"])
    train.FLAGS.unparse_flags()


@pytest.mark.slow
def test_tower_train_py_num_gpus_2_trains_on_two_logical_cpu_devices(two_shards, tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "train.py"), "--data_dir=%s" % two_shards,
         "--checkpoint_dir=%s" % tmp_path, "--batch_size=2", "--num_gpus=2", "--step=1", "--log_step=1"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train.py: 2 towers on /cpu:0 /cpu:1, 1 images each" in result.stdout
    assert "step 1/1 |" in result.stdout
    assert training.latest_step(str(tmp_path))[1] == 1


# ---------------------------------------------------------------------------- cluster


def test_cluster_tf_config_gives_replicas_shards_and_the_chief():
    cluster = {"chief": ["a:1"], "worker": ["b:1", "c:1"], "ps": ["d:1"]}
    tasks = [ClusterTask(cluster, t, i) for t, i in (("chief", 0), ("worker", 0), ("worker", 1), ("ps", 0))]
    assert [t.is_chief for t in tasks] == [True, False, False, False]
    assert [t.data_shard for t in tasks[:3]] == [(0, 3), (1, 3), (2, 3)]
    assert tasks[3].is_ps and tasks[0].variable_hosts == ["/job:ps"]
    # Without a chief job worker 0 is the chief; without ps the chief holds the variables.
    no_chief = ClusterTask({"worker": ["b:1", "c:1"]}, "worker", 0)
    assert no_chief.is_chief and no_chief.data_shard == (0, 2) and no_chief.variable_hosts == ["/job:worker/task:0"]
    environ = {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}})}
    assert ClusterTask.from_environment(environ).device == "/job:worker/task:1"
    assert ClusterTask.from_environment({}) is None


@pytest.mark.parametrize("text, words", [
    ("{not json", "TF_CONFIG is not JSON"),
    ('{"cluster": {"chief": ["a:1"]}}', "TF_CONFIG must be"),
    ('{"cluster": {"chief": ["a:1"]}, "task": {"type": "worker", "index": 0}}', "task type 'worker' is not a job"),
    ('{"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", "index": 1}}',
     "task index 1 out of range for job 'worker' of 1"),
    ('{"cluster": {"chief": ["a:1"], "evaluator": ["b:1"]}, "task": {"type": "chief", "index": 0}}',
     "job 'evaluator' is not supported"),
    ('{"cluster": {"chief": ["a:1", "b:1"]}, "task": {"type": "chief", "index": 0}}', "exactly one task"),
])
def test_cluster_bad_tf_config_is_a_clear_error(text, words):
    with pytest.raises(ClusterConfigError, match=words):
        ClusterTask.from_environment({"TF_CONFIG": text})


def test_cluster_launcher_helper_writes_each_replicas_tf_config():
    hosts = ["n0", "n1", "n2"]
    tasks = [ClusterTask.from_environment({"TF_CONFIG": tf_config(hosts, 2222, r)}) for r in range(3)]
    assert [t.device for t in tasks] == ["/job:chief/task:0", "/job:worker/task:0", "/job:worker/task:1"]
    assert [t.data_shard for t in tasks] == [(0, 3), (1, 3), (2, 3)]
    assert tasks[2].cluster == {"chief": ["n0:2222"], "worker": ["n1:2222", "n2:2222"]}
    result = subprocess.run([sys.executable, "-m", "model.launch", "--hosts=a,b", "--port=7", "--replica=1"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert json.loads(result.stdout) == {"cluster": {"chief": ["a:7"], "worker": ["b:7"]},
                                         "task": {"type": "worker", "index": 0}}
    with pytest.raises(ValueError, match=r"replica 3 is not in \[0, 3\)"):
        tf_config(hosts, 2222, 3)


def test_cluster_file_shards_are_disjoint_and_cover_the_files():
    files = ["f%d" % i for i in range(5)]
    shards = [shard_files(files, (i, 3), "f*") for i in range(3)]
    assert shards == [["f0", "f3"], ["f1", "f4"], ["f2"]]
    with pytest.raises(DataError, match=r"shard 5 of 6 gets no file: only 5 tfrecord file\(s\) match 'f\*'"):
        shard_files(files, (5, 6), "f*")


@pytest.mark.slow
def test_cluster_chief_and_worker_train_in_step_and_a_killed_worker_rejoins(two_shards, tmp_path):
    # A ps task holds the variables, so a worker can join while the chief is paused (SIGSTOP): with
    # the variables on the chief, the chief alone goes on taking the dead worker's tokens and may
    # finish before a restarted worker has even imported TensorFlow (it did, once, in CI).
    ps_port, chief_port, worker_port = free_local_ports(3)
    cluster = {"ps": ["127.0.0.1:%d" % ps_port], "chief": ["127.0.0.1:%d" % chief_port],
               "worker": ["127.0.0.1:%d" % worker_port]}
    checkpoints = tmp_path / "ckpt"
    total = 6
    flags = ["--data_dir=%s" % two_shards, "--checkpoint_dir=%s" % checkpoints, "--batch_size=1",
             "--step=%d" % total, "--log_step=1", "--save_step=1"]
    processes = []

    def start(task_type, name):
        environ = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": task_type, "index": 0}}))
        log = open(str(tmp_path / name), "w")
        processes.append(subprocess.Popen([sys.executable, os.path.join(REPO, "train.py")] + flags, cwd=REPO,
                                          env=environ, stdout=log, stderr=subprocess.STDOUT))
        return processes[-1]

    def read(name):
        return (tmp_path / name).read_text()

    def wait_for(condition, what, alive):
        deadline = time.time() + 240
        while not condition() and time.time() < deadline:
            for process, name in alive:
                assert process.poll() is None, "%s ended: %s" % (name, read(name)[-3000:])
            time.sleep(0.2)
        assert condition(), "%s not within 240 s" % what

    try:
        ps = start("ps", "ps.log")
        chief = start("chief", "chief.log")
        worker = start("worker", "worker.log")
        running = [(ps, "ps.log"), (chief, "chief.log"), (worker, "worker.log")]
        wait_for(lambda: training.latest_step(str(checkpoints))[1] >= 2, "a checkpoint at step 2", running)
        chief.send_signal(signal.SIGSTOP)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        rejoined = start("worker", "worker_again.log")
        wait_for(lambda: "joined at global step" in read("worker_again.log"), "the restarted worker joining",
                 [(ps, "ps.log"), (rejoined, "worker_again.log")])
        chief.send_signal(signal.SIGCONT)
        assert chief.wait(timeout=240) == 0, read("chief.log")[-3000:]
        assert rejoined.wait(timeout=60) == 0, read("worker_again.log")[-3000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait()
    assert training.latest_step(str(checkpoints))[1] == total
    chief_log, first, again = read("chief.log"), read("worker.log"), read("worker_again.log")
    assert "replica 0 of 2" in chief_log and "parameter server" in read("ps.log")
    assert all("\nstep %d/%d |" % (step, total) in chief_log for step in range(1, total + 1))
    # Synchronous: one update per step from both replicas, so both see global step 1 after their
    # first step (asynchronous replicas would each add one: one of them would see 2).
    assert "worker /job:worker/task:0 step 1/%d |" % total in first
    # The restarted worker picks up at the global step the chief was paused at and trains on to the end.
    joined = int(again.split("joined at global step ")[1].split()[0])
    assert 2 <= joined < total, again[-2000:]
    assert "worker /job:worker/task:0 step %d/%d |" % (total, total) in again, again[-2000:]
    # Only the chief writes: the export is the chief's, and no worker wrote elsewhere.
    assert tf.train.latest_checkpoint(str(checkpoints / training.NETWORK_DIR)).endswith("model.ckpt-%d" % total)
