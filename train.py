"""Trains a stage from tfrecords: the coarse stage (self-supervised 3DMM regression).

    python train.py --stage=coarse --data_dir=data/synthetic --checkpoint_dir=results/coarse

Graph mode (tf.compat.v1). The loop is model/training.py, shared by both stages: Adam on the
stage's network with an exponentially decaying learning rate, floored at --min_learning_rate, and
element-wise gradient clipping. A checkpoint every --save_step steps (and at the end); a run
started again with the same --checkpoint_dir resumes from the latest one at its global step (and
refuses one of another face model or backbone: the stage config stage.json says which). TensorBoard
summaries (losses, learning rate, and input | render | landmarks pictures) go to --checkpoint_dir.
The run stops with an error naming the step when a loss is not finite; checkpoints written before
that step are untouched. At the end (or when started again at --step) the network's weights alone
and the stage config are written to --checkpoint_dir/network/: that is what test.py loads (it
reads the backbone and the face model from the stage config) and what a release ships.

Scale: --num_gpus=N builds N in-graph towers (each a slice of the batch, gradients averaged on the
host; logical CPU devices where the machine lacks the GPUs). With TF_CONFIG set, the process is one
task of a synchronous data-parallel cluster on TensorFlow's distributed runtime (model/cluster.py):
each replica reads its own shard of the tfrecord files, --batch_size is per replica, and only the
chief writes checkpoints, summaries and the export.

The fine stage (--stage=fine) belongs to a later issue and is refused.
"""
import os
import sys

import tensorflow.compat.v1 as tf
from absl import app

from model import coarse, data, flag_ranges, training
from model.cluster import ClusterConfigError, ClusterTask, ClusterTimeout
from model.data import DataError, data_error
from model.face import FaceModel
from model.vgg_face import load_vgg_face_mat
from preprocess import schema

flags = tf.app.flags
FLAGS = flags.FLAGS

flags.DEFINE_enum("stage", "coarse", ["coarse", "fine"], "Which stage to train.")
flags.DEFINE_string("data_dir", "data/synthetic", "Folder of training tfrecords (*%s); several, "
                    "comma-separated, are mixed (e.g. photos from make_tfrecords.py and synthetic "
                    "faces)." % schema.SHARD_SUFFIX)
flags.DEFINE_string("data_ratio", "", "Sampling weights of the --data_dir folders, comma-separated "
                    "(e.g. 2,1); empty: in proportion to their record counts (each record as likely "
                    "as any other, as if the folders were one).")


@flags.multi_flags_validator(["data_dir", "data_ratio"])
def _check_data_ratio(values):
    try:
        data.parse_ratio(values["data_ratio"], len(data.split_folders(values["data_dir"])))
    except ValueError as error:
        raise flags.ValidationError(str(error)) from None
    return True


flags.DEFINE_string("checkpoint_dir", "results/coarse", "Checkpoints and TensorBoard summaries.")
flags.DEFINE_string("face_model_path", "", "Face model npz; empty = resources/face_model.npz.")
flags.DEFINE_enum("backbone", "compact", list(coarse.BACKBONES), "Encoder of the coarse network.")
flags.DEFINE_string("vgg_face_path", "",
                    "MatConvNet vgg-face.mat. When given: turns the perceptual loss on and, with "
                    "--backbone=vgg_face, initialises the encoder from it. Empty: perceptual loss off.")
flags.DEFINE_integer("batch_size", 16, "Images per step.", lower_bound=1)
flags.DEFINE_float("learning_rate", 5e-4, "Initial Adam learning rate.")
flag_ranges.require("learning_rate", above=0)
flags.DEFINE_integer("lr_decay_step", 1000, "Steps per decay of the learning rate by lr_decay_rate.",
                     lower_bound=1)
flags.DEFINE_float("lr_decay_rate", 0.8, "Learning rate factor per lr_decay_step (continuous decay).")
flag_ranges.require("lr_decay_rate", above=0, at_most=1)
flags.DEFINE_float("min_learning_rate", 1e-6, "Floor of the decayed learning rate.")
flag_ranges.require("min_learning_rate", at_least=0)
flags.register_multi_flags_validator(
    ["min_learning_rate", "learning_rate"], lambda v: v["min_learning_rate"] <= v["learning_rate"],
    message="--min_learning_rate must be <= --learning_rate (the floor would raise the rate)")
flags.DEFINE_float("gradient_clip", 1.0, "Each gradient element is clipped to [-gradient_clip, gradient_clip].")
flag_ranges.require("gradient_clip", above=0)
flags.DEFINE_integer("step", 2000, "Global step at which training ends.", lower_bound=1)
flags.DEFINE_integer("save_step", 250, "Checkpoint every this many steps.", lower_bound=1)
flags.DEFINE_integer("log_step", 20, "Log line and scalar summaries every this many steps.", lower_bound=1)
flags.DEFINE_integer("image_summary_step", 200, "Input | render | landmarks summary every this many steps.",
                     lower_bound=1)
flags.DEFINE_float("photo_weight", coarse.TRAINING_LOSS_WEIGHTS.photo, "Weight of the photometric loss.")
flags.DEFINE_float("landmark_weight", coarse.TRAINING_LOSS_WEIGHTS.landmark, "Weight of the landmark loss (224-pixel units squared).")
flags.DEFINE_float("perceptual_weight", coarse.TRAINING_LOSS_WEIGHTS.perceptual, "Weight of the perceptual loss (used with --vgg_face_path).")
flags.DEFINE_float("id_weight", coarse.TRAINING_LOSS_WEIGHTS.id, "Regularisation weight of the identity coefficients.")
flags.DEFINE_float("exp_weight", coarse.TRAINING_LOSS_WEIGHTS.exp, "Regularisation weight of the expression coefficients.")
flags.DEFINE_float("tex_weight", coarse.TRAINING_LOSS_WEIGHTS.tex, "Regularisation weight of the albedo coefficients.")
for _weight in ("photo_weight", "landmark_weight", "perceptual_weight", "id_weight", "exp_weight", "tex_weight"):
    flag_ranges.require(_weight, at_least=0)
flags.DEFINE_integer("seed", 0, "Random seed (weights initialisation; data order is seed + start step).",
                     lower_bound=0, upper_bound=2 ** 31 - 1)
flags.DEFINE_integer("num_gpus", 1,
                     "In-graph towers: the batch split into this many equal slices, one per GPU "
                     "(/gpu:i), or per logical CPU device on a machine without that many GPUs; "
                     "gradients averaged on the host. --batch_size must divide by it.", lower_bound=1)
flags.register_multi_flags_validator(
    ["batch_size", "num_gpus"], lambda v: v["batch_size"] % v["num_gpus"] == 0,
    message="--batch_size must divide by --num_gpus (each tower gets an equal slice of the batch)")
flags.DEFINE_bool("skip_bad_records", False,
                  "Skip tfrecord files and records that can't be read (each named on stderr, counted "
                  "in the log line and the summaries skipped/files, skipped/records) instead of "
                  "stopping with an error naming the file.")


def _data_pattern():
    """The glob of --data_dir's tfrecords, or a model.data.Mixture of several folders."""
    folders = data.split_folders(FLAGS.data_dir)
    if len(folders) == 1 and not FLAGS.data_ratio:
        return os.path.join(folders[0], "*" + schema.SHARD_SUFFIX)
    return data.Mixture(folders, data.parse_ratio(FLAGS.data_ratio, len(folders)))


def coarse_stage(shard=None):
    """The coarse stage the flags describe (shard: this cluster replica's files, or None)."""
    weights = coarse.LossWeights(FLAGS.photo_weight, FLAGS.landmark_weight, FLAGS.perceptual_weight,
                                 FLAGS.id_weight, FLAGS.exp_weight, FLAGS.tex_weight)
    vgg_weights = load_vgg_face_mat(FLAGS.vgg_face_path) if FLAGS.vgg_face_path else None
    return coarse.CoarseStage(FaceModel(FLAGS.face_model_path or None), _data_pattern(), FLAGS.batch_size,
                              weights, FLAGS.backbone, vgg_weights, FLAGS.seed, FLAGS.skip_bad_records,
                              shard=shard)


def loop_settings(cluster=None):
    return training.LoopSettings(
        checkpoint_dir=FLAGS.checkpoint_dir, step=FLAGS.step, save_step=FLAGS.save_step,
        log_step=FLAGS.log_step, image_summary_step=FLAGS.image_summary_step,
        learning_rate=FLAGS.learning_rate, lr_decay_step=FLAGS.lr_decay_step,
        lr_decay_rate=FLAGS.lr_decay_rate, min_learning_rate=FLAGS.min_learning_rate,
        gradient_clip=FLAGS.gradient_clip, seed=FLAGS.seed, num_towers=FLAGS.num_gpus, cluster=cluster)


def main(argv):
    if len(argv) > 1:
        sys.exit("train.py: unexpected arguments %s (flags are --name=value)" % " ".join(argv[1:]))
    if FLAGS.num_gpus > 1 and len(tf.config.list_physical_devices("GPU")) < FLAGS.num_gpus:
        # Before anything touches the devices: the towers run on logical CPU devices.
        training.configure_virtual_cpus(FLAGS.num_gpus)
    try:
        cluster = ClusterTask.from_environment()
    except ClusterConfigError as error:
        sys.exit("train.py: %s" % error)
    if FLAGS.stage == "fine":
        sys.exit("train.py: --stage=fine is not implemented yet (the fine stage is a later issue); "
                 "only --stage=coarse trains")
    for folder in ([] if cluster is not None and cluster.is_ps
                   else data.split_folders(FLAGS.data_dir) or [FLAGS.data_dir]):
        if not tf.io.gfile.glob(os.path.join(folder, "*" + schema.SHARD_SUFFIX)):
            sys.exit("train.py: --data_dir=%s holds no *%s files (make some with preprocess/synthesize.py "
                     "or preprocess/make_tfrecords.py)" % (folder, schema.SHARD_SUFFIX))
    if FLAGS.vgg_face_path and not os.path.isfile(FLAGS.vgg_face_path):
        sys.exit("train.py: --vgg_face_path=%s does not exist" % FLAGS.vgg_face_path)
    shard = cluster.data_shard if cluster is not None and not cluster.is_ps else None
    try:
        training.train(coarse_stage(shard), loop_settings(cluster))
    except (training.TrainingDiverged, training.StageConfigMismatch) as error:
        sys.exit("train.py: %s" % error)
    except DataError as error:
        sys.exit("train.py: bad training data: %s" % error)
    except tf.errors.InvalidArgumentError as error:
        message = data_error(error)
        if message is None:
            raise
        hint = "" if message.startswith("none of") else " (--skip_bad_records skips such files and records)"
        sys.exit("train.py: bad training data: %s%s" % (message, hint))
    except ClusterTimeout as error:
        sys.exit("train.py: %s" % error)
    except (tf.errors.UnavailableError, tf.errors.AbortedError) as error:
        if cluster is None:
            raise
        sys.exit("train.py: cluster task %s lost a task it needs (%s: %s); start it again with the same "
                 "TF_CONFIG to rejoin" % (cluster.device, type(error).__name__, error.message.splitlines()[0]))


if __name__ == "__main__":
    tf.disable_eager_execution()
    # absl's app.run, not tf.app.run, which shows a bad flag value as a traceback instead of one line.
    app.run(main)
