"""train.py and its loop (model/training.py): schedule, clipping, divergence stop, learning on
synthetic faces, resuming after a kill, the stage config."""
import glob
import os
import re
import shutil

import numpy as np
import pytest
from absl import flags as absl_flags
import tensorflow.compat.v1 as tf

import train
from tests.train_runs import run_train, synthesize_tiny_set, train_until_killed
from model import checkpoint_files, coarse, training
from model.data import make_dataset
from model.face import FaceModel

tf.disable_eager_execution()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))



@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
    """A tiny synthetic training set written by preprocess/synthesize.py."""
    return synthesize_tiny_set(tmp_path_factory.mktemp("synthetic"), 8)


def test_learning_rate_decays_exponentially_down_to_the_floor():
    with tf.Graph().as_default(), tf.Session() as session:
        step = tf.placeholder(tf.int64, [])
        rate = training.learning_rate_schedule(step, 1e-3, 100, 0.5, 2e-4)
        values = [session.run(rate, {step: s}) for s in (0, 100, 200, 1000)]
    np.testing.assert_allclose(values, [1e-3, 5e-4, 2.5e-4, 2e-4], rtol=1e-5)


def test_gradients_are_clipped_element_wise():
    with tf.Graph().as_default(), tf.Session() as session:
        variable = tf.get_variable("x", initializer=tf.constant([0.0, 0.0, 0.0]))
        loss = tf.reduce_sum(variable * tf.constant([5.0, -0.3, -7.0]))
        pairs = training.clipped_gradients(tf.train.GradientDescentOptimizer(1.0), loss, [variable], 1.0)
        session.run(tf.global_variables_initializer())
        np.testing.assert_allclose(session.run(pairs[0][0]), [1.0, -0.3, -1.0])


def test_a_nan_loss_stops_training_naming_the_step_and_the_loss():
    training.check_finite(6, {"total": 1.0, "landmark": 3.0})
    with pytest.raises(training.TrainingDiverged, match=r"landmark.*at step 7"):
        training.check_finite(7, {"total": 1.0, "landmark": float("nan")})


def test_tfrecords_that_are_all_empty_are_a_one_line_error_not_a_hang(tmp_path):
    (tmp_path / "z.tfrecord").write_bytes(b"")
    result = run_train("--data_dir=%s" % tmp_path, "--checkpoint_dir=%s" % (tmp_path / "ckpt"))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "train.py: bad training data: all 1 tfrecord file(s) matching %r are empty"
        % str(tmp_path / "z.tfrecord").replace("z.tfrecord", "*.tfrecord"))


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
        step = optimizer.apply_gradients(training.clipped_gradients(optimizer, total, tf.trainable_variables(), 1.0))
        session.run(tf.global_variables_initializer())
        before = session.run(total)
        for _ in range(15):
            session.run(step)
        after = session.run(total)
    assert np.isfinite(before) and after < 0.8 * before


@pytest.mark.slow
def test_training_killed_mid_run_resumes_from_its_last_checkpoint_at_the_same_step_and_exports_at_the_end(
        synthetic_dir, tmp_path):
    checkpoints = tmp_path / "ckpt"
    common = ["--data_dir=%s" % synthetic_dir, "--checkpoint_dir=%s" % checkpoints, "--batch_size=2",
              "--log_step=1", "--save_step=2"]
    killed_at = train_until_killed(common, checkpoints)
    assert killed_at >= 4 and killed_at % 2 == 0
    # What a kill during a save leaves (the names tf's Saver and BundleWriter use).
    (checkpoints / "model.ckpt-9998_temp").mkdir()
    (checkpoints / "model.ckpt-9998_temp" / "part-00000-of-00001.data-00000-of-00001.tempstate77").write_bytes(b"x")
    (checkpoints / "model.ckpt-9998.index.tempstate78").write_bytes(b"x")
    (checkpoints / "checkpoint.tmp0123abcd").write_text("x")

    result = run_train("--step=%d" % (killed_at + 2), *common)
    assert result.returncode == 0, result.stderr
    assert "resuming from" in result.stdout and "at step %d" % killed_at in result.stdout
    assert "step %d/%d" % (killed_at + 1, killed_at + 2) in result.stdout
    assert training.latest_step(str(checkpoints))[1] == killed_at + 2
    # The killed run's older checkpoints count towards the three kept; its temporaries are gone.
    assert [os.path.basename(p) for p in checkpoint_files.checkpoints_on_disk(str(checkpoints), "model.ckpt")] == [
        "model.ckpt-%d" % step for step in (killed_at - 2, killed_at, killed_at + 2)]
    assert not [name for name in os.listdir(checkpoints) if "temp" in name or ".tmp" in name]
    # The finished run exported the network's weights, without optimizer state, with its stage config.
    exported = tf.train.latest_checkpoint(str(checkpoints / training.NETWORK_DIR))
    assert exported is not None and exported.endswith("model.ckpt-%d" % (killed_at + 2))
    names = [name for name, _ in tf.train.list_variables(exported)]
    assert names and all(name.startswith(coarse.SCOPE + "/") and "Adam" not in name for name in names)
    config = training.read_stage_config(exported)
    assert config["stage"] == "coarse" and config["backbone"] == "compact"
    assert config["face_model_sha256"] == FaceModel().sha256


def test_a_checkpoint_folder_of_another_backbone_is_refused(synthetic_dir, tmp_path):
    config = coarse.stage_config(FaceModel(), "vgg_face")
    training.write_stage_config(str(tmp_path), config)
    result = run_train("--data_dir=%s" % synthetic_dir, "--checkpoint_dir=%s" % tmp_path, "--step=1")
    assert result.returncode != 0
    assert "was written for another configuration (backbone: checkpoint 'vgg_face', this run 'compact')" \
        in result.stderr


def test_stage_config_mismatch_lists_every_differing_entry():
    found = dict(stage="coarse", backbone="compact", face_model_sha256="aa", coeff_size=185, uv_size=None)
    training.check_stage_config(found, dict(found), "ckpt")
    with pytest.raises(training.StageConfigMismatch, match=r"ckpt .*face_model_sha256: checkpoint 'aa', "
                                                          r"this run 'bb'; coeff_size: checkpoint 185, this run 99"):
        training.check_stage_config(found, dict(found, face_model_sha256="bb", coeff_size=99), "ckpt")


def _save_run(folder, steps, tidy=True):
    """One training "run": a fresh Saver (max_to_keep 3, as train.py) saving at `steps`, after
    tidy_for_resume (as train.py) or without it (as train.py did before)."""
    with tf.Graph().as_default(), tf.Session() as session:
        step = tf.train.get_or_create_global_step()
        saver = tf.train.Saver(max_to_keep=training.KEPT_CHECKPOINTS, save_relative_paths=True)
        removed, deleted = [], []
        if tidy:
            removed, deleted = checkpoint_files.tidy_for_resume(saver, folder, training.CHECKPOINT_NAME,
                                                                training.KEPT_CHECKPOINTS)
        session.run(tf.global_variables_initializer())
        for value in steps:
            session.run(step.assign(value))
            saver.save(session, os.path.join(folder, training.CHECKPOINT_NAME), global_step=value,
                       write_meta_graph=False)
    return removed, deleted


def test_checkpoints_of_earlier_runs_are_deleted_beyond_the_three_kept(tmp_path):
    folder = str(tmp_path)
    _save_run(folder, [1, 2, 3, 4], tidy=False)
    _save_run(folder, [5, 6, 7], tidy=False)      # the Saver forgets 2, 3, 4: six on disk
    assert len(checkpoint_files.checkpoints_on_disk(folder, "model.ckpt")) == 6
    _, deleted = _save_run(folder, [8, 9])
    assert [os.path.basename(p) for p in deleted] == ["model.ckpt-2", "model.ckpt-3", "model.ckpt-4"]
    assert sorted(os.listdir(folder)) == ["checkpoint"] + sorted(
        "model.ckpt-%d.%s" % (step, ext) for step in (7, 8, 9) for ext in ("data-00000-of-00001", "index"))
    assert [os.path.basename(p) for p in tf.train.get_checkpoint_state(folder).all_model_checkpoint_paths] == [
        "model.ckpt-7", "model.ckpt-8", "model.ckpt-9"]


def test_temporaries_of_killed_saves_are_removed_at_start(tmp_path):
    (tmp_path / "model.ckpt-8_temp").mkdir()
    (tmp_path / "model.ckpt-8_temp" / "part-00000-of-00001.data-00000-of-00001.tempstate1").write_bytes(b"x")
    (tmp_path / "model.ckpt-8.index.tempstate2").write_bytes(b"x")
    removed, _ = _save_run(str(tmp_path), [1])
    assert [os.path.basename(p) for p in removed] == ["model.ckpt-8.index.tempstate2", "model.ckpt-8_temp"]
    assert not [name for name in os.listdir(tmp_path) if "temp" in name]


@pytest.mark.parametrize("flag, words", [
    ("--gradient_clip=-1", "flag --gradient_clip=-1.0: must be a finite number > 0"),
    ("--gradient_clip=0", "flag --gradient_clip=0.0: must be a finite number > 0"),
    ("--learning_rate=0", "flag --learning_rate=0.0: must be a finite number > 0"),
    ("--learning_rate=nan", "flag --learning_rate=nan: must be a finite number > 0"),
    ("--photo_weight=-0.5", "flag --photo_weight=-0.5: must be a finite number >= 0"),
    ("--landmark_weight=inf", "flag --landmark_weight=inf: must be a finite number >= 0"),
    ("--lr_decay_rate=1.5", "flag --lr_decay_rate=1.5: must be a finite number > 0 and <= 1"),
    ("--min_learning_rate=1", "--min_learning_rate must be <= --learning_rate"),
    ("--seed=-1", "flag --seed=-1: -1 is not"),
    ("--batch_size=0", "flag --batch_size=0: 0 is not a positive integer"),
])
def test_an_impossible_flag_is_refused_naming_the_flag_and_value(flag, words):
    with pytest.raises(absl_flags.IllegalFlagValueError) as error:
        train.FLAGS(["train.py", flag])
    train.FLAGS.unparse_flags()
    assert words in str(error.value)


def test_a_bad_flag_is_one_line_before_anything_runs():
    result = run_train("--gradient_clip=nan")
    assert result.returncode != 0
    assert ("FATAL Flags parsing error: flag --gradient_clip=nan: must be a finite number > 0"
            in result.stderr.splitlines())
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_bad_shard_stops_training_naming_it_or_is_skipped_and_counted(synthetic_dir, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(synthetic_dir, data_dir)
    whole = open(glob.glob(str(data_dir / "*.tfrecord"))[0], "rb").read()
    (data_dir / "broken.tfrecord").write_bytes(whole[:len(whole) // 3])
    common = ["--data_dir=%s" % data_dir, "--batch_size=2", "--step=1", "--log_step=1"]
    result = run_train("--checkpoint_dir=%s" % (tmp_path / "a"), *common)
    assert result.returncode != 0
    assert "train.py: bad training data: unreadable tfrecord file %s" % (data_dir / "broken.tfrecord") in result.stderr

    result = run_train("--checkpoint_dir=%s" % (tmp_path / "b"), "--skip_bad_records", *common)
    assert result.returncode == 0, result.stderr
    assert "data: skipped unreadable tfrecord file %s" % (data_dir / "broken.tfrecord") in result.stderr
    files, records = map(int, re.search(r"skipped (\d+) files (\d+) records", result.stdout).groups())
    assert files >= 1 and records == 0
    events = glob.glob(str(tmp_path / "b" / "events.out.tfevents.*"))
    tags = {value.tag: value.simple_value for event in tf.train.summary_iterator(events[0])
            for value in event.summary.value}
    assert tags["skipped/files"] == files and tags["skipped/records"] == 0


def test_coarse_init_starts_a_fresh_run_from_the_released_network(synthetic_dir, tmp_path):
    release = os.path.join(REPO, "results", "release", "coarse")
    checkpoints = tmp_path / "ckpt"
    # A learning rate of ~0: after one step the network is still the release's.
    result = run_train("--data_dir=%s" % synthetic_dir, "--checkpoint_dir=%s" % checkpoints, "--batch_size=2",
                       "--step=1", "--learning_rate=1e-12", "--min_learning_rate=0",
                       "--coarse_init=%s" % release)
    assert result.returncode == 0, result.stderr
    assert "(--coarse_init)" in result.stdout
    exported = tf.train.latest_checkpoint(str(checkpoints / training.NETWORK_DIR))
    source = tf.train.latest_checkpoint(release)
    names = [name for name, _ in tf.train.list_variables(source)]
    assert len(names) > 10
    for name in names:
        np.testing.assert_allclose(tf.train.load_variable(exported, name), tf.train.load_variable(source, name),
                                   atol=1e-6, err_msg=name)


def test_coarse_init_refuses_a_missing_checkpoint_and_a_fine_export_naming_the_flag(synthetic_dir, tmp_path):
    face_model = FaceModel()
    weights = coarse.LossWeights(1.9, 1.6e-3, 0.0, 1e-3, 8e-4, 1e-3)
    with pytest.raises(FileNotFoundError, match="--coarse_init"):
        coarse.CoarseStage(face_model, "x/*.tfrecord", 2, weights, coarse_init=str(tmp_path / "nothing"))
    fine_release = os.path.join(REPO, "results", "release", "fine")
    with pytest.raises(training.StageConfigMismatch, match="--coarse_init"):
        coarse.CoarseStage(face_model, "x/*.tfrecord", 2, weights, coarse_init=fine_release)
    result = run_train("--coarse_init=%s" % (tmp_path / "nothing"), "--data_dir=%s" % synthetic_dir, "--step=1")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "train.py: --coarse_init: no checkpoint at %s" % (tmp_path / "nothing")
