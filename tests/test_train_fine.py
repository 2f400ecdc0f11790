"""train.py --stage=fine and model.fine.FineStage: only the fine network learns unless
--train_coarse, kill and resume, the self-contained export, the coarse checkpoint's checks."""
import glob
import json
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from absl import flags as absl_flags

import train
from tests.train_runs import run_train, synthesize_tiny_set, train_until_killed
from model import coarse, fine, training
from model.data import make_dataset
from model.face import FaceModel

tf.disable_eager_execution()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASED_COARSE = os.path.join(REPO, fine.DEFAULT_COARSE_CHECKPOINT)
UV_SIZE = 32
RENDER_SIZE = 96
# Small and fast: a 32 x 32 map, an 8-channel U-Net.
TINY_FLAGS = ["--stage=fine", "--uv_size=%d" % UV_SIZE, "--max_channels=8", "--batch_size=1",
              "--coarse_checkpoint=%s" % RELEASED_COARSE]



@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
    return synthesize_tiny_set(tmp_path_factory.mktemp("synthetic"), 4)


@pytest.fixture(scope="module")
def face_model():
    return FaceModel()


def _fixed_batch(synthetic_dir, size=2):
    with tf.Graph().as_default(), tf.Session() as session:
        batch = tf.data.make_one_shot_iterator(make_dataset(
            str(synthetic_dir / "*.tfrecord"), size, augment=False, shuffle=False)).get_next()
        return {key: value for key, value in session.run(batch).items()
                if key in ("image", "landmarks", "segmentation")}


def _train_on_a_fixed_batch(stage, batch, steps):
    """(losses before, losses after, coarse network values before, after, names of the trained
    variables) of `steps` Adam steps of stage.tower on one batch, the coarse network restored by
    stage.initialize as on a fresh run."""
    with tf.Graph().as_default(), tf.Session() as session:
        tf.set_random_seed(0)
        terms, _ = stage.tower({key: tf.constant(value) for key, value in batch.items()})
        trainable = stage.trainable_variables()
        optimizer = tf.train.AdamOptimizer(1e-4)
        step = optimizer.apply_gradients(training.clipped_gradients(optimizer, terms["total"], trainable, 1.0))
        session.run(tf.global_variables_initializer())
        stage.initialize(session, resumed=False)
        coarse_variables = [v for v in tf.global_variables() if v.name.startswith(coarse.SCOPE + "/")
                            and "Adam" not in v.name]
        coarse_before = session.run(coarse_variables)
        first = session.run(terms)
        for _ in range(steps):
            session.run(step)
        last = session.run(terms)
        coarse_after = session.run(coarse_variables)
    return first, last, coarse_before, coarse_after, [v.op.name for v in trainable]


@pytest.mark.slow
def test_fine_steps_lower_the_fine_loss_and_leave_the_restored_coarse_network_bit_identical(synthetic_dir,
                                                                                           face_model):
    stage = fine.FineStage(face_model, "unused", 2, fine.PAPER_WEIGHTS, RELEASED_COARSE, uv_size=UV_SIZE,
                           max_channels=16, render_size=RENDER_SIZE)
    first, last, before, after, trained = _train_on_a_fixed_batch(stage, _fixed_batch(synthetic_dir), 15)
    assert trained and all(name.startswith(fine.SCOPE + "/") for name in trained)
    assert all(np.isfinite(value) for value in first.values())
    assert last["total"] < first["total"]
    assert last["photometric"] < first["photometric"]
    # The coarse network is the released one (restored, not the random initialisation), unchanged.
    released = tf.train.load_variable(tf.train.latest_checkpoint(RELEASED_COARSE), "coarse/head_light/bias")
    for value_before, value_after in zip(before, after):
        np.testing.assert_array_equal(value_before, value_after)
    assert any(np.array_equal(value, released) for value in before)


@pytest.mark.slow
def test_train_coarse_fine_tunes_the_coarse_network_with_the_coarse_losses_added(synthetic_dir, face_model):
    stage = fine.FineStage(face_model, "unused", 2, fine.PAPER_WEIGHTS, RELEASED_COARSE, uv_size=UV_SIZE,
                           max_channels=16, render_size=RENDER_SIZE, train_coarse=True)
    first, last, before, after, trained = _train_on_a_fixed_batch(stage, _fixed_batch(synthetic_dir), 3)
    assert any(name.startswith(coarse.SCOPE + "/") for name in trained)
    assert any(name.startswith(fine.SCOPE + "/") for name in trained)
    assert {"coarse_photometric", "coarse_landmark", "coarse_regularization"} <= set(first)
    w = fine.PAPER_WEIGHTS
    fine_total = (w.photo * first["photometric"] + w.disp * first["disp"] + w.render_disp * first["render_disp"]
                  + w.disp_eyebrow_nose * first["disp_eyebrow_nose"] + w.disp_normal * first["disp_normal"]
                  + w.smooth * first["smooth"] + w.smooth_uv * first["smooth_uv"]
                  + w.smooth_normal * (first["smooth_normal"] + first["smooth_triangle_normal"]))
    np.testing.assert_allclose(first["total"], fine_total + fine.COARSE_LOSS_SCALE * first["coarse_total"],
                               rtol=1e-5)
    assert any(not np.array_equal(b, a) for b, a in zip(before, after))


def _fake_coarse_checkpoint(folder, **changes):
    """A coarse checkpoint prefix whose stage.json is the released one's with `changes`."""
    folder.mkdir()
    config = training.read_stage_config(RELEASED_COARSE)
    config.update(changes)
    training.write_stage_config(str(folder), config)
    (folder / "model.ckpt-1.index").write_bytes(b"")
    return str(folder / "model.ckpt-1")


def test_a_coarse_checkpoint_of_another_face_model_is_refused_naming_both(synthetic_dir, tmp_path):
    prefix = _fake_coarse_checkpoint(tmp_path / "other", face_model_sha256="0" * 64, face_model_file="bfm.npz")
    result = run_train("--data_dir=%s" % synthetic_dir, "--checkpoint_dir=%s" % (tmp_path / "ckpt"),
                       *TINY_FLAGS[:-1], "--coarse_checkpoint=%s" % prefix)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("train.py: --coarse_checkpoint: %s was trained with the face model bfm.npz (sha256 %s)"
                           % (prefix, "0" * 64)), last
    assert FaceModel().sha256 in last
    assert not (tmp_path / "ckpt").exists()


def test_a_checkpoint_that_is_not_a_coarse_one_or_missing_is_refused(synthetic_dir, tmp_path):
    prefix = _fake_coarse_checkpoint(tmp_path / "fine", stage="fine")
    common = ["--data_dir=%s" % synthetic_dir, "--checkpoint_dir=%s" % (tmp_path / "ckpt")] + TINY_FLAGS[:-1]
    result = run_train(*common, "--coarse_checkpoint=%s" % prefix)
    assert result.returncode != 0
    assert "--coarse_checkpoint: %s is a checkpoint of the fine stage, not a coarse network" % prefix \
        in result.stderr
    result = run_train(*common, "--coarse_checkpoint=%s" % (tmp_path / "nothing"))
    assert result.returncode != 0
    assert "train.py: --coarse_checkpoint: no coarse checkpoint at %s" % (tmp_path / "nothing") in result.stderr


@pytest.mark.slow
def test_fine_training_killed_mid_run_resumes_at_its_step_and_exports_both_networks(synthetic_dir, tmp_path):
    checkpoints = tmp_path / "ckpt"
    common = ["--data_dir=%s" % synthetic_dir, "--checkpoint_dir=%s" % checkpoints, "--log_step=1",
              "--save_step=2", "--image_summary_step=1"] + TINY_FLAGS
    killed_at = train_until_killed(common, checkpoints)
    assert killed_at >= 4 and killed_at % 2 == 0

    result = run_train("--step=%d" % (killed_at + 2), *common)
    assert result.returncode == 0, result.stderr
    assert "resuming from" in result.stdout and "at step %d" % killed_at in result.stdout
    # Resumed: the coarse network comes from the training checkpoint, not from --coarse_checkpoint.
    assert "coarse network (compact) from the training checkpoint, frozen" in result.stdout
    assert "step %d/%d" % (killed_at + 1, killed_at + 2) in result.stdout
    assert training.latest_step(str(checkpoints))[1] == killed_at + 2

    exported = tf.train.latest_checkpoint(str(checkpoints / training.NETWORK_DIR))
    assert exported.endswith("model.ckpt-%d" % (killed_at + 2))
    stored = dict(tf.train.list_variables(exported))
    assert not [name for name in stored if "Adam" in name or name == "global_step"]
    released = dict(tf.train.list_variables(tf.train.latest_checkpoint(RELEASED_COARSE)))
    coarse_names = {name for name in stored if name.startswith(coarse.SCOPE + "/")}
    assert coarse_names == set(released)
    for name in ("coarse/head_pose/weights", "coarse/compact/stem/kernel"):
        np.testing.assert_array_equal(tf.train.load_variable(exported, name),
                                      tf.train.load_variable(RELEASED_COARSE, name))
    fine_names = {name for name in stored if name.startswith(fine.SCOPE + "/")}
    assert fine_names and coarse_names | fine_names == set(stored)
    with open(os.path.join(os.path.dirname(exported), training.STAGE_CONFIG_NAME)) as f:
        config = json.load(f)
    face_model = FaceModel()
    assert config["stage"] == "fine" and config["backbone"] == "compact"
    for key, value in training.face_model_config(face_model).items():
        assert config[key] == value
    assert config["uv_size"] == UV_SIZE and config["max_channels"] == 8
    assert config["max_displacement"] == fine.DEFAULT_MAX_DISPLACEMENT
    assert config["displacement_direction"] == "normal" and config["train_coarse"] is False
    assert config["coarse_checkpoint"] == RELEASED_COARSE
    # The picture summary: input | coarse | fine render | UV photo | displacement, five panels.
    # (The resumed run's events file: the killed run's ends mid-record.)
    events = max(glob.glob(str(checkpoints / "events.out.tfevents.*")), key=os.path.getmtime)
    shapes = [value.image.width / value.image.height for event in tf.train.summary_iterator(events)
              for value in event.summary.value if value.HasField("image")]
    assert shapes and all(ratio == 5 for ratio in shapes)


def test_a_fine_resume_with_another_network_width_or_train_coarse_is_refused(face_model):
    config = fine.stage_config(face_model, "compact", 256, 128, 1.0, "normal", "x", False)
    training.check_stage_config(config, dict(config, coarse_checkpoint="y", max_displacement=2.0), "ckpt")
    with pytest.raises(training.StageConfigMismatch, match="max_channels: checkpoint 128, this run 64"):
        training.check_stage_config(config, dict(config, max_channels=64), "ckpt")
    with pytest.raises(training.StageConfigMismatch, match="train_coarse: checkpoint False, this run True"):
        training.check_stage_config(config, dict(config, train_coarse=True), "ckpt")


@pytest.mark.parametrize("flag, words", [
    ("--uv_size=48", "--uv_size must be a power of two"),
    ("--max_channels=1024", "flag --max_channels=1024: 1024 is not"),
    ("--max_displacement=0", "flag --max_displacement=0.0: must be a finite number > 0"),
    ("--disp_weight=-1", "flag --disp_weight=-1.0: must be a finite number >= 0"),
    ("--displacement_direction=x", "flag --displacement_direction=x: value should be one of <normal|z>"),
])
def test_an_impossible_fine_flag_is_refused_naming_it(flag, words):
    with pytest.raises(absl_flags.IllegalFlagValueError) as error:
        train.FLAGS(["train.py", "--stage=fine", flag])
    train.FLAGS.unparse_flags()
    assert words in str(error.value)


def test_stage_defaults_apply_to_unset_flags_only():
    train.FLAGS(["train.py", "--stage=fine"])
    try:
        settings = train.loop_settings()
        assert settings.checkpoint_dir == "results/fine" and settings.step == train.STAGE_DEFAULTS["fine"]["step"]
        assert settings.learning_rate == train.STAGE_DEFAULTS["fine"]["learning_rate"]
    finally:
        train.FLAGS.unparse_flags()
    train.FLAGS(["train.py", "--learning_rate=0.003"])
    try:
        settings = train.loop_settings()
        # The coarse stage's defaults are what they were before stages had their own.
        assert settings.checkpoint_dir == "results/coarse" and settings.step == 2000
        assert (settings.lr_decay_step, settings.lr_decay_rate) == (1000, 0.8) and settings.learning_rate == 0.003
    finally:
        train.FLAGS.unparse_flags()
    # The floor is checked against the stage's default when --learning_rate is not given.
    with pytest.raises(absl_flags.IllegalFlagValueError, match="--min_learning_rate must be <= --learning_rate"):
        train.FLAGS(["train.py", "--stage=fine", "--min_learning_rate=%g" % 3e-4])
    train.FLAGS.unparse_flags()
    train.FLAGS(["train.py", "--min_learning_rate=%g" % 3e-4])   # coarse: 5e-4, fine
    train.FLAGS.unparse_flags()


def test_fine_init_starts_the_fine_network_from_a_checkpoint_and_a_wrong_one_is_named(tmp_path, face_model):
    from tests.fine_export import make_fine_export
    source = make_fine_export(tmp_path / "source", face_model, uv_size=UV_SIZE, max_channels=8, output_std=0.1,
                              shading_cue=True, seed=4)
    stage = fine.FineStage(face_model, "unused", 1, fine.DEFAULT_WEIGHTS, RELEASED_COARSE, uv_size=UV_SIZE,
                           max_channels=8, render_size=RENDER_SIZE, shading_cue=True, fine_init=source)
    with tf.Graph().as_default(), tf.Session() as session:
        stage.build_network()
        session.run(tf.global_variables_initializer())
        said = stage.initialize(session, resumed=False)
        values = {v.op.name: session.run(v) for v in fine.FineNet.variables()}
    assert any("--fine_init" in line for line in said)
    prefix = tf.train.latest_checkpoint(source)
    for name, value in values.items():
        np.testing.assert_array_equal(value, tf.train.load_variable(prefix, name))
    # Without the cue the network reads 4 channels: the checkpoint's 6-channel first layer is refused, named.
    other = fine.FineStage(face_model, "unused", 1, fine.DEFAULT_WEIGHTS, RELEASED_COARSE, uv_size=UV_SIZE,
                           max_channels=8, render_size=RENDER_SIZE, fine_init=source)
    with tf.Graph().as_default(), tf.Session() as session:
        other.build_network()
        session.run(tf.global_variables_initializer())
        with pytest.raises(ValueError, match="conv0/kernel"):
            other.initialize(session, resumed=False)
    with pytest.raises(FileNotFoundError, match="--fine_init"):
        fine.FineStage(face_model, "unused", 1, fine.DEFAULT_WEIGHTS, RELEASED_COARSE, uv_size=UV_SIZE,
                       max_channels=8, fine_init=str(tmp_path / "nothing"))


@pytest.fixture(scope="module")
def synthetic_dir_32(tmp_path_factory):
    """4 synthetic faces whose ground-truth maps are UV_SIZE x UV_SIZE (the pretrain stage's size)."""
    import subprocess
    import sys
    out = tmp_path_factory.mktemp("synthetic32")
    subprocess.run([sys.executable, "-m", "preprocess.synthesize", "--num=4", "--out=%s" % out, "--seed=3",
                    "--workers=1", "--map_size=%d" % UV_SIZE], cwd=REPO, check=True, capture_output=True, timeout=300)
    return out


@pytest.mark.slow
def test_fine_pretrain_learns_the_ground_truth_maps_and_warm_starts_the_fine_stage(synthetic_dir_32, tmp_path,
                                                                                   face_model):
    stage = fine.FineStage(face_model, str(synthetic_dir_32 / "*.tfrecord"), 2, fine.DEFAULT_WEIGHTS,
                           RELEASED_COARSE, uv_size=UV_SIZE, max_channels=8, render_size=RENDER_SIZE,
                           max_displacement=1.0, displacement_highpass=0.0, shading_cue=True, pretrain=True)
    with tf.Graph().as_default(), tf.Session() as session:
        batch = session.run(tf.data.make_one_shot_iterator(make_dataset(
            str(synthetic_dir_32 / "*.tfrecord"), 2, augment=False, shuffle=False)).get_next())
    with tf.Graph().as_default(), tf.Session() as session:
        terms, _ = stage.tower({key: tf.constant(value) for key, value in batch.items()
                                if key != "source/filename"})
        trainable = stage.trainable_variables()
        assert trainable and all(v.op.name.startswith(fine.SCOPE + "/") for v in trainable)
        optimizer = tf.train.AdamOptimizer(1e-3)
        step = optimizer.minimize(terms["total"], var_list=trainable)
        session.run(tf.global_variables_initializer())
        stage.initialize(session, resumed=False)
        first = session.run(terms)
        # Zero map at the start: the error is the maps' own mean square.
        np.testing.assert_allclose(first["mse"], first["gt_ms"], rtol=1e-5)
        for _ in range(100):
            session.run(step)
        last = session.run(terms)
    assert last["mse"] < 0.6 * first["mse"], (last["mse"], first["mse"])
    # train.py end to end: the warm start, then the fine stage from it.
    common = ["--data_dir=%s" % synthetic_dir_32, "--log_step=1", "--save_step=2", "--shading_cue",
              "--max_displacement=1", "--displacement_highpass=0"] + TINY_FLAGS
    result = run_train("--fine_pretrain", "--step=2", "--checkpoint_dir=%s" % (tmp_path / "pre"), *common)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mse" in result.stdout and "gt_ms" in result.stdout
    result = run_train("--fine_init=%s" % (tmp_path / "pre" / training.NETWORK_DIR), "--step=1",
                       "--checkpoint_dir=%s" % (tmp_path / "fine"), *common)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(--fine_init)" in result.stdout and "photometric" in result.stdout
