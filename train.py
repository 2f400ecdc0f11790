"""Trains a stage from tfrecords: the coarse stage (self-supervised 3DMM regression), or the fine
stage (the UV displacement map of the detail layer) on top of a trained coarse network.

    python train.py --stage=coarse --data_dir=data/synthetic --checkpoint_dir=results/coarse
    python train.py --stage=fine --data_dir=data/synthetic --coarse_checkpoint=results/coarse/network

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

The fine stage (model/fine.py) reads the same tfrecords. A fresh run restores the coarse network
from --coarse_checkpoint (a coarse export: folder or prefix, with its stage.json; one trained with
another face model is refused) and keeps it frozen, training the fine network alone, unless
--train_coarse fine-tunes both (the coarse losses then join the fine ones). Both networks are in
its checkpoints and in its export, so --checkpoint_dir/network/ is self-contained.

Flags whose default depends on the stage (--checkpoint_dir, --batch_size, --learning_rate,
--lr_decay_step, --lr_decay_rate, --step) say both defaults in their help, and the paper's values.
"""
import collections
import os
import sys

import tensorflow.compat.v1 as tf
from absl import app

from model import coarse, data, fine, flag_ranges, training
from model.cluster import ClusterConfigError, ClusterTask, ClusterTimeout
from model.data import DataError, data_error
from model.face import FaceModel
from model.vgg_face import load_vgg_face_mat
from preprocess import schema

flags = tf.app.flags
FLAGS = flags.FLAGS

# Defaults that depend on --stage (a flag left unset takes its stage's). The fine stage's are for a
# CPU: a small batch and a larger learning rate than the paper's (batch 48, lr 1e-5 x 0.99 every
# 5,000 steps, 10,001 steps).
STAGE_DEFAULTS = {
    "coarse": dict(checkpoint_dir="results/coarse", batch_size=16, learning_rate=5e-4, lr_decay_step=1000,
                   lr_decay_rate=0.8, step=2000),
    "fine": dict(checkpoint_dir="results/fine", batch_size=4, learning_rate=1e-4, lr_decay_step=1000,
                 lr_decay_rate=0.9, step=1000),
}


def _defaults_help(name, paper=None):
    text = "; default %s" % ", ".join("%s (%s)" % (STAGE_DEFAULTS[stage][name], stage) for stage in STAGE_DEFAULTS)
    return text + ("; the paper's fine stage: %s." % paper if paper else ".")


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


flags.DEFINE_string("checkpoint_dir", None, "Checkpoints and TensorBoard summaries" + _defaults_help("checkpoint_dir"))
flags.DEFINE_string("face_model_path", "", "Face model npz; empty = resources/face_model.npz.")
flags.DEFINE_enum("backbone", "compact", list(coarse.BACKBONES),
                  "Encoder of the coarse network (coarse stage; the fine stage takes the coarse checkpoint's).")
flags.DEFINE_string("vgg_face_path", "",
                    "MatConvNet vgg-face.mat. When given: turns the perceptual loss on and, with "
                    "--backbone=vgg_face, initialises the encoder from it. Empty: perceptual loss off. "
                    "Coarse stage only.")
flags.DEFINE_integer("batch_size", None, "Images per step" + _defaults_help("batch_size", 48), lower_bound=1)
flags.DEFINE_float("learning_rate", None, "Initial Adam learning rate" + _defaults_help("learning_rate", "1e-5"))
flag_ranges.require("learning_rate", above=0)
flags.DEFINE_integer("lr_decay_step", None, "Steps per decay of the learning rate by lr_decay_rate"
                     + _defaults_help("lr_decay_step", 5000), lower_bound=1)
flags.DEFINE_float("lr_decay_rate", None, "Learning rate factor per lr_decay_step (continuous decay)"
                   + _defaults_help("lr_decay_rate", 0.99))
flag_ranges.require("lr_decay_rate", above=0, at_most=1)
flags.DEFINE_float("min_learning_rate", 1e-6, "Floor of the decayed learning rate (the paper's fine stage: 1e-7).")
flag_ranges.require("min_learning_rate", at_least=0)


def stage_default(name, values):
    """The value of flag `name` in `values` (a dict of flag values, or FLAGS), or its stage's default."""
    value = values[name] if isinstance(values, dict) else getattr(values, name)
    stage = values["stage"] if isinstance(values, dict) else values.stage
    return STAGE_DEFAULTS[stage][name] if value is None else value


flags.register_multi_flags_validator(
    ["min_learning_rate", "learning_rate", "stage"],
    lambda v: v["min_learning_rate"] <= stage_default("learning_rate", v),
    message="--min_learning_rate must be <= --learning_rate (the floor would raise the rate)")
flags.DEFINE_float("gradient_clip", 1.0, "Each gradient element is clipped to [-gradient_clip, gradient_clip].")
flag_ranges.require("gradient_clip", above=0)
flags.DEFINE_integer("step", None, "Global step at which training ends" + _defaults_help("step", "10,001"),
                     lower_bound=1)
flags.DEFINE_integer("save_step", 250, "Checkpoint every this many steps.", lower_bound=1)
flags.DEFINE_integer("log_step", 20, "Log line and scalar summaries every this many steps.", lower_bound=1)
flags.DEFINE_integer("image_summary_step", 200, "Picture summary every this many steps (coarse: input | render | "
                     "landmarks; fine: input | coarse | fine render | UV photo | displacement).",
                     lower_bound=1)
flags.DEFINE_float("photo_weight", coarse.TRAINING_LOSS_WEIGHTS.photo, "Weight of the photometric loss.")
flags.DEFINE_float("landmark_weight", coarse.TRAINING_LOSS_WEIGHTS.landmark, "Weight of the landmark loss (224-pixel units squared).")
flags.DEFINE_float("perceptual_weight", coarse.TRAINING_LOSS_WEIGHTS.perceptual, "Weight of the perceptual loss (used with --vgg_face_path).")
flags.DEFINE_float("id_weight", coarse.TRAINING_LOSS_WEIGHTS.id, "Regularisation weight of the identity coefficients.")
flags.DEFINE_float("exp_weight", coarse.TRAINING_LOSS_WEIGHTS.exp, "Regularisation weight of the expression coefficients.")
flags.DEFINE_float("tex_weight", coarse.TRAINING_LOSS_WEIGHTS.tex, "Regularisation weight of the albedo coefficients.")
flags.DEFINE_float("gt_shape_weight", 0.0, "Weight of the synthetic shape supervision: mean squared vertex "
                   "distance (mm^2, model frame) to the records' gt/coefficients, on the samples that carry them "
                   "(not in the paper, which had no ground truth: 0 = off; run_train.sh sets it).")
for _weight in ("photo_weight", "landmark_weight", "perceptual_weight", "id_weight", "exp_weight", "tex_weight",
                "gt_shape_weight"):
    flag_ranges.require(_weight, at_least=0)
# ---- the fine stage
flags.DEFINE_string("coarse_checkpoint", fine.DEFAULT_COARSE_CHECKPOINT,
                    "Fine stage: the coarse network a fresh run starts from, a coarse export (folder or "
                    "checkpoint prefix with stage.json beside it; results/coarse/network after a coarse run).")
flags.DEFINE_bool("train_coarse", False, "Fine stage: fine-tune the coarse network too (its losses, x %g for "
                  "the fine loss's 0-255 colour scale, join the total); off: frozen, as in the paper."
                  % fine.COARSE_LOSS_SCALE)
flags.DEFINE_integer("uv_size", fine.DEFAULT_UV_SIZE, "Fine stage: side of the UV displacement map (a power of "
                     "two: 256, or 512 as the paper).", lower_bound=8, upper_bound=1024)
flags.register_validator("uv_size", lambda value: value & (value - 1) == 0,
                         message="--uv_size must be a power of two (256, 512)")
flags.DEFINE_integer("max_channels", fine.DEFAULT_MAX_CHANNELS,
                     "Fine stage: cap of the U-Net's channel widths (%d = the paper's widths, a 66 MB network "
                     "at UV 256; %d keeps the export ~15 MB)." % (fine.PAPER_MAX_CHANNELS, fine.DEFAULT_MAX_CHANNELS),
                     lower_bound=1, upper_bound=fine.PAPER_MAX_CHANNELS)
flags.DEFINE_float("max_displacement", fine.DEFAULT_MAX_DISPLACEMENT,
                   "Fine stage: bound of the displacement, mm (tanh x this; the paper's is 1).")
flag_ranges.require("max_displacement", above=0)
flags.DEFINE_enum("displacement_direction", "normal", list(fine.DISPLACEMENT_DIRECTIONS),
                  "Fine stage: displace along the coarse surface normal, or model-space z (the paper).")


flags.DEFINE_float("displacement_highpass", fine.DEFAULT_DISPLACEMENT_HIGHPASS,
                   "Fine stage: band-limit the displacement map: minus its Gaussian blur of this sigma, texels "
                   "(0 = off, the paper's free map).")
flag_ranges.require("displacement_highpass", at_least=0)
flags.DEFINE_float("photo_gain_sigma", fine.DEFAULT_PHOTO_GAIN_SIGMA,
                   "Fine stage: scale, render pixels, of the smooth gain of the --photo_gain_weight term.")
flag_ranges.require("photo_gain_sigma", above=0)
flags.DEFINE_bool("shading_cue", fine.DEFAULT_SHADING_CUE,
                  "Fine stage: give the network, besides the photo's residual and visibility, how the coarse "
                  "render's shading answers a displacement slope per texel (fine.shading_cue; not in the paper: the "
                  "residual alone cannot tell a furrow lit from one side from a ridge lit from the other).")
flags.DEFINE_bool("ratio_input", fine.DEFAULT_RATIO_INPUT,
                  "Fine stage: the network reads the photo relative to the coarse render, (P - R) / (R + 0.05), and "
                  "the shading cue relative to the shade, instead of 2 (P - R) (not in the paper).")
flags.DEFINE_enum("fine_precision", "float32", list(fine.PRECISIONS),
                  "Fine stage: arithmetic of the U-Net's convolutions while training (variables, checkpoints and "
                  "inference stay float32; the full-resolution layers stay float32 too). bfloat16: the U-Net ~1.2 x and a "
                  "fine step 1.04-1.16 x faster on CPUs with AVX512-BF16 or AMX "
                  "(`lscpu | grep -o 'avx512_bf16\\|amx_bf16'`), slower where oneDNN has to emulate it.")
flags.DEFINE_string("fine_init", "",
                    "Fine stage: start a fresh run's fine network from this checkpoint (folder or prefix; a fine "
                    "export, a fine training folder, or bench/fine_supervised_gt.py's) instead of its initialisers; "
                    "a resumed run ignores it.")
flags.DEFINE_string("coarse_init", "",
                    "Coarse stage: start a fresh run's network from this coarse checkpoint (folder or prefix, e.g. "
                    "results/release/coarse) instead of its initialisers, to train a released network further; the "
                    "optimizer starts fresh and the schedule from --learning_rate at step 0 (5e-4 x 0.8^5 = 1.6384e-4 "
                    "continues a 5,000-step run's schedule). A resumed run ignores it.")
flags.DEFINE_bool("fine_pretrain", False,
                  "Fine stage: a supervised warm start instead of the fine losses: the network reads each synthetic "
                  "record through its ground-truth coarse face and learns its gt/displacement (mean squared error over "
                  "the detail mask; unaugmented records with ground truth only). Start the fine stage from it with "
                  "--fine_init (run_train.sh's pretrain stage).")
flags.DEFINE_enum("gt_chart", "own", list(fine.GT_CHARTS),
                  "Fine stage: the chart --gt_disp_weight compares the map in: own = the true detail where the photo "
                  "shows it, in the chart of the coarse face the photo is unwrapped through (texels that face sees); "
                  "true = the records' map in the true face's chart (which a coarse face a few mm off cannot read).")


def fine_weight_flag(name):
    """The flag of FineWeights field `name`."""
    return "fine_photo_weight" if name == "photo" else name + "_weight"


_FINE_WEIGHT_HELP = collections.OrderedDict([
    ("photo", "photometric loss (L2,1 on the skin, 0-255 scale)"),
    ("disp", "displacement magnitude on the detail mask"),
    ("render_disp", "rendered depth difference fine - coarse"),
    ("disp_eyebrow_nose", "displacement inside nose and brows"),
    ("disp_normal", "fine minus coarse vertex normals"),
    ("smooth", "dead-zone Laplacian smoothness of the dense vertices"),
    ("smooth_normal", "dead-zone smoothness of the vertex and triangle normals"),
    ("smooth_uv", "first-difference smoothness of the UV map"),
    ("symmetry", "symmetry of the map on the invisible side (DECA's; not in the paper: 0 = off)"),
    ("photo_gain", "photometric loss after a smooth gain matches the render to the photo "
                   "(--photo_gain_sigma; not in the paper, where it is 0)"),
    ("gt_disp", "synthetic supervision of the map: mean squared difference (mm^2) to the records' "
                "gt/displacement on the detail mask, on the samples that carry it (not in the paper: 0 = off; "
                "run_train.sh sets it)"),
])
for _name, _help in _FINE_WEIGHT_HELP.items():
    # <name>_weight as the coarse stage's flags; the photometric one is fine_photo_weight, since
    # --photo_weight is the coarse stage's.
    flags.DEFINE_float(fine_weight_flag(_name), getattr(fine.DEFAULT_WEIGHTS, _name),
                       "Fine stage: weight of the %s%s." % (_help, "" if _name in ("symmetry", "photo_gain", "gt_disp") else
                                                            " (the paper's: %g)" % getattr(fine.PAPER_WEIGHTS, _name)))
    flag_ranges.require(fine_weight_flag(_name), at_least=0)
flags.DEFINE_integer("seed", 0, "Random seed (weights initialisation; data order is seed + start step).",
                     lower_bound=0, upper_bound=2 ** 31 - 1)
flags.DEFINE_integer("num_gpus", 1,
                     "In-graph towers: the batch split into this many equal slices, one per GPU "
                     "(/gpu:i), or per logical CPU device on a machine without that many GPUs; "
                     "gradients averaged on the host. --batch_size must divide by it.", lower_bound=1)
flags.register_multi_flags_validator(
    ["batch_size", "num_gpus", "stage"], lambda v: stage_default("batch_size", v) % v["num_gpus"] == 0,
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


def coarse_stage(face_model, shard=None):
    """The coarse stage the flags describe (shard: this cluster replica's files, or None)."""
    vgg_weights = load_vgg_face_mat(FLAGS.vgg_face_path) if FLAGS.vgg_face_path else None
    return coarse.CoarseStage(face_model, _data_pattern(), _value("batch_size"), coarse_weights(), FLAGS.backbone,
                              vgg_weights, FLAGS.seed, FLAGS.skip_bad_records, shard=shard,
                              coarse_init=FLAGS.coarse_init or None)


def coarse_weights():
    return coarse.LossWeights(FLAGS.photo_weight, FLAGS.landmark_weight, FLAGS.perceptual_weight,
                              FLAGS.id_weight, FLAGS.exp_weight, FLAGS.tex_weight, FLAGS.gt_shape_weight)


def fine_stage(face_model, shard=None):
    """The fine stage the flags describe (raises as fine.FineStage for a bad --coarse_checkpoint)."""
    weights = fine.FineWeights(**{name: getattr(FLAGS, fine_weight_flag(name)) for name in fine.FineWeights._fields})
    return fine.FineStage(face_model, _data_pattern(), _value("batch_size"), weights, FLAGS.coarse_checkpoint,
                          FLAGS.uv_size, FLAGS.max_channels, FLAGS.max_displacement, FLAGS.displacement_direction,
                          FLAGS.train_coarse, coarse_weights(), seed=FLAGS.seed,
                          skip_bad_records=FLAGS.skip_bad_records, shard=shard,
                          displacement_highpass=FLAGS.displacement_highpass, photo_gain_sigma=FLAGS.photo_gain_sigma,
                          gt_chart=FLAGS.gt_chart, shading_cue=FLAGS.shading_cue,
                          ratio_input=FLAGS.ratio_input, fine_init=FLAGS.fine_init or None,
                          pretrain=FLAGS.fine_pretrain, precision=FLAGS.fine_precision)


def _value(name):
    return stage_default(name, FLAGS)


def loop_settings(cluster=None):
    return training.LoopSettings(
        checkpoint_dir=_value("checkpoint_dir"), step=_value("step"), save_step=FLAGS.save_step,
        log_step=FLAGS.log_step, image_summary_step=FLAGS.image_summary_step,
        learning_rate=_value("learning_rate"), lr_decay_step=_value("lr_decay_step"),
        lr_decay_rate=_value("lr_decay_rate"), min_learning_rate=FLAGS.min_learning_rate,
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
    for folder in ([] if cluster is not None and cluster.is_ps
                   else data.split_folders(FLAGS.data_dir) or [FLAGS.data_dir]):
        if not tf.io.gfile.glob(os.path.join(folder, "*" + schema.SHARD_SUFFIX)):
            sys.exit("train.py: --data_dir=%s holds no *%s files (make some with preprocess/synthesize.py "
                     "or preprocess/make_tfrecords.py)" % (folder, schema.SHARD_SUFFIX))
    if FLAGS.vgg_face_path and FLAGS.stage == "fine":
        sys.exit("train.py: --vgg_face_path is the coarse stage's (the fine stage has no perceptual loss)")
    if FLAGS.vgg_face_path and not os.path.isfile(FLAGS.vgg_face_path):
        sys.exit("train.py: --vgg_face_path=%s does not exist" % FLAGS.vgg_face_path)
    shard = cluster.data_shard if cluster is not None and not cluster.is_ps else None
    try:
        face_model = FaceModel(FLAGS.face_model_path or None)
        if FLAGS.stage == "fine":
            try:
                stage = fine_stage(face_model, shard)
            except (FileNotFoundError, training.StageConfigMismatch) as error:
                sys.exit("train.py: --coarse_checkpoint: %s" % error)
        else:
            try:
                stage = coarse_stage(face_model, shard)
            except FileNotFoundError as error:      # --coarse_init (the message names it)
                sys.exit("train.py: %s" % error)
        training.train(stage, loop_settings(cluster))
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
