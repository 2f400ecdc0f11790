"""Trains the coarse stage (self-supervised 3DMM regression) from tfrecords.

    python train.py --stage=coarse --data_dir=data/synthetic --checkpoint_dir=results/coarse

Graph mode (tf.compat.v1). Adam on the coarse network with an exponentially decaying learning rate,
floored at --min_learning_rate, and element-wise gradient clipping. A checkpoint every --save_step
steps (and at the end); a run started again with the same --checkpoint_dir resumes from the latest
one at its global step. TensorBoard summaries (losses, learning rate, and input | render | landmarks
pictures) go to --checkpoint_dir. The run stops with an error naming the step when a loss is not
finite; checkpoints written before that step are untouched. At the end (or when started again at
--step) the network's weights alone are written to --checkpoint_dir/network/: that is what test.py
loads and what a release ships.

The fine stage (--stage=fine) belongs to a later issue and is refused.
"""
import os
import sys
import time

import numpy as np
import tensorflow.compat.v1 as tf
from absl import app

from model import checkpoint_files, coarse, flag_ranges
from model.data import DataError, SkippedCounter, data_error, make_dataset
from model.face import FaceModel
from model.vgg_face import VggFace, load_vgg_face_mat
from preprocess import schema

flags = tf.app.flags
FLAGS = flags.FLAGS

flags.DEFINE_enum("stage", "coarse", ["coarse", "fine"], "Which stage to train.")
flags.DEFINE_string("data_dir", "data/synthetic", "Folder of training tfrecords (*%s)." % schema.SHARD_SUFFIX)
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
flags.DEFINE_float("photo_weight", 1.9, "Weight of the photometric loss.")
flags.DEFINE_float("landmark_weight", 1.6e-3, "Weight of the landmark loss (224-pixel units squared).")
flags.DEFINE_float("perceptual_weight", 0.2, "Weight of the perceptual loss (used with --vgg_face_path).")
flags.DEFINE_float("id_weight", 1e-3, "Regularisation weight of the identity coefficients.")
flags.DEFINE_float("exp_weight", 8e-4, "Regularisation weight of the expression coefficients.")
flags.DEFINE_float("tex_weight", 1e-3, "Regularisation weight of the albedo coefficients.")
for _weight in ("photo_weight", "landmark_weight", "perceptual_weight", "id_weight", "exp_weight", "tex_weight"):
    flag_ranges.require(_weight, at_least=0)
flags.DEFINE_integer("seed", 0, "Random seed (weights initialisation; data order is seed + start step).",
                     lower_bound=0, upper_bound=2 ** 31 - 1)
flags.DEFINE_bool("skip_bad_records", False,
                  "Skip tfrecord files and records that can't be read (each named on stderr, counted "
                  "in the log line and the summaries skipped/files, skipped/records) instead of "
                  "stopping with an error naming the file.")

CHECKPOINT_NAME = "model.ckpt"
# Training checkpoints kept in --checkpoint_dir; older ones, earlier runs' included, are deleted.
KEPT_CHECKPOINTS = 3
# Sub-folder of --checkpoint_dir for the network's weights alone (no optimizer state): what test.py
# needs and what a release ships, a third of a training checkpoint's size.
NETWORK_DIR = "network"
# Pictures per image summary.
_SUMMARY_IMAGES = 3


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite."""


def check_finite(step, values):
    """Raises TrainingDiverged naming `step` and the loss when any of `values` (name -> float) is not finite."""
    bad = [name for name, value in values.items() if not np.isfinite(value)]
    if bad:
        raise TrainingDiverged(
            "loss %s became %s at step %d; stopping (the checkpoints written before this step are "
            "intact: lower --learning_rate or --gradient_clip and resume)"
            % (", ".join(bad), ", ".join(str(values[name]) for name in bad), step))


def learning_rate_schedule(global_step, learning_rate, decay_step, decay_rate, minimum):
    """lr(step) = max(learning_rate * decay_rate ** (step / decay_step), minimum)."""
    decayed = tf.train.exponential_decay(learning_rate, global_step, decay_step, decay_rate)
    return tf.maximum(decayed, minimum)


def clipped_gradients(optimizer, loss, variables, clip):
    """Gradients of `loss` clipped element-wise to [-clip, clip] (variables without gradient skipped)."""
    pairs = optimizer.compute_gradients(loss, var_list=variables)
    return [(tf.clip_by_value(g, -clip, clip), v) for g, v in pairs if g is not None]


def latest_step(checkpoint_dir):
    """(checkpoint path, global step) of the latest checkpoint in the folder, or (None, 0)."""
    path = tf.train.latest_checkpoint(checkpoint_dir)
    if path is None:
        return None, 0
    return path, int(tf.train.load_variable(path, "global_step"))


def export_network(checkpoint, face_model, backbone, out_dir):
    """Copies the coarse network's variables from a training checkpoint into a checkpoint of their own,
    out_dir/model.ckpt-<global step>. Returns its path."""
    step = int(tf.train.load_variable(checkpoint, "global_step"))
    with tf.Graph().as_default():
        net = coarse.CoarseNet(face_model.k_id, face_model.k_exp, face_model.k_tex, backbone)
        net(tf.zeros([1, coarse.ENCODER_SIZE, coarse.ENCODER_SIZE, 3]))
        saver = tf.train.Saver(net.variables(), save_relative_paths=True)
        with tf.Session() as session:
            saver.restore(session, checkpoint)
            path = saver.save(session, os.path.join(out_dir, CHECKPOINT_NAME), global_step=step,
                              write_meta_graph=False)
    checkpoint_files.keep_only_latest(out_dir, CHECKPOINT_NAME)
    return path


def format_duration(seconds):
    seconds = int(round(seconds))
    return "%d:%02d:%02d" % (seconds // 3600, seconds // 60 % 60, seconds % 60)


def _image_summary(batch, outputs):
    def panels(images, renders, masks, predicted, target):
        return np.stack([coarse.overlay_panels(*sample) for sample in zip(images, renders, masks, predicted, target)])
    scale = coarse.ENCODER_SIZE / float(coarse.CROP_SIZE)
    pictures = tf.numpy_function(
        panels, [outputs["input"][:_SUMMARY_IMAGES], outputs["render"][:_SUMMARY_IMAGES],
                 outputs["mask"][:_SUMMARY_IMAGES], outputs["landmarks"][:_SUMMARY_IMAGES],
                 batch["landmarks"][:_SUMMARY_IMAGES] * scale], tf.uint8)
    return tf.summary.image("input_render_landmarks", pictures, max_outputs=_SUMMARY_IMAGES)


def _data_pattern():
    return os.path.join(FLAGS.data_dir, "*" + schema.SHARD_SUFFIX)


def build_coarse_training(face_model, start_step):
    """The training graph. Returns a dict of the tensors and ops the loop runs."""
    skipped = SkippedCounter() if FLAGS.skip_bad_records else None
    dataset = make_dataset(_data_pattern(), FLAGS.batch_size, augment=True, seed=FLAGS.seed + start_step,
                           skipped=skipped)
    batch = tf.data.make_one_shot_iterator(dataset).get_next()

    vgg_weights = load_vgg_face_mat(FLAGS.vgg_face_path) if FLAGS.vgg_face_path else None
    net = coarse.CoarseNet(face_model.k_id, face_model.k_exp, face_model.k_tex, FLAGS.backbone,
                           vgg_weights if FLAGS.backbone == "vgg_face" else None)
    perceptual_net = None
    if vgg_weights is not None and FLAGS.perceptual_weight > 0:
        perceptual_net = VggFace.from_weights("perceptual_vgg_face", vgg_weights, trainable=False)
    model = coarse.CoarseModel(face_model, net, perceptual_net=perceptual_net)
    outputs = model.forward(batch["image"])
    weights = coarse.LossWeights(FLAGS.photo_weight, FLAGS.landmark_weight, FLAGS.perceptual_weight,
                                 FLAGS.id_weight, FLAGS.exp_weight, FLAGS.tex_weight)
    losses = model.losses(batch, outputs, weights)

    global_step = tf.train.get_or_create_global_step()
    learning_rate = learning_rate_schedule(global_step, FLAGS.learning_rate, FLAGS.lr_decay_step,
                                           FLAGS.lr_decay_rate, FLAGS.min_learning_rate)
    optimizer = tf.train.AdamOptimizer(learning_rate)
    gradients = clipped_gradients(optimizer, losses["total"], tf.trainable_variables(coarse.SCOPE + "/"),
                                  FLAGS.gradient_clip)
    train_op = optimizer.apply_gradients(gradients, global_step=global_step)
    # Read after the update: a plain fetch of global_step in the same run may see either value.
    with tf.control_dependencies([train_op]):
        step_after = tf.identity(global_step.read_value())

    scalars = [tf.summary.scalar("loss/" + name, value) for name, value in losses.items()]
    scalars.append(tf.summary.scalar("learning_rate", learning_rate))
    # The frozen perceptual network is reloaded from its .mat file on every start, never saved.
    saved = [v for v in tf.global_variables() if not v.name.startswith("perceptual_vgg_face/")]
    return dict(train_op=train_op, losses=losses, step_after=step_after, learning_rate=learning_rate,
                scalar_summary=tf.summary.merge(scalars), image_summary=_image_summary(batch, outputs),
                saver=tf.train.Saver(saved, max_to_keep=KEPT_CHECKPOINTS, save_relative_paths=True), net=net, perceptual_net=perceptual_net,
                vgg_weights=vgg_weights, skipped=skipped)


def train_coarse():
    face_model = FaceModel(FLAGS.face_model_path or None)
    checkpoint, start_step = latest_step(FLAGS.checkpoint_dir)
    network_dir = os.path.join(FLAGS.checkpoint_dir, NETWORK_DIR)
    if start_step >= FLAGS.step:
        print("train.py: the latest checkpoint %s is at step %d >= --step=%d; nothing to train"
              % (checkpoint, start_step, FLAGS.step))
        print("train.py: network weights in %s"
              % export_network(checkpoint, face_model, FLAGS.backbone, network_dir))
        return
    tf.set_random_seed(FLAGS.seed)
    graph = build_coarse_training(face_model, start_step)
    tf.io.gfile.makedirs(FLAGS.checkpoint_dir)
    writer = tf.summary.FileWriter(FLAGS.checkpoint_dir)
    session = tf.Session()
    session.run(tf.global_variables_initializer())
    if checkpoint:
        graph["saver"].restore(session, checkpoint)
        print("train.py: resuming from %s at step %d" % (checkpoint, start_step))
    else:
        print("train.py: starting from scratch (no checkpoint in %s)" % FLAGS.checkpoint_dir)
        if FLAGS.backbone == "vgg_face" and graph["vgg_weights"] is not None:
            graph["net"].init_from_vgg(session)
            print("train.py: vgg_face encoder initialised from %s" % FLAGS.vgg_face_path)
    if graph["perceptual_net"] is not None:
        graph["perceptual_net"].load(session, graph["vgg_weights"])
        print("train.py: perceptual loss on (frozen VGG-Face from %s)" % FLAGS.vgg_face_path)
    else:
        print("train.py: perceptual loss off (%s)" % ("--perceptual_weight=0" if FLAGS.vgg_face_path
                                                       else "no --vgg_face_path"))
    session.graph.finalize()
    removed, deleted = checkpoint_files.tidy_for_resume(graph["saver"], FLAGS.checkpoint_dir, CHECKPOINT_NAME,
                                                        KEPT_CHECKPOINTS)
    for path in removed:
        print("train.py: removed %s (left by a save that was killed)" % path)
    if deleted:
        print("train.py: deleted %d old checkpoint(s) beyond the %d kept: %s"
              % (len(deleted), KEPT_CHECKPOINTS, " ".join(os.path.basename(p) for p in deleted)))

    save_path = os.path.join(FLAGS.checkpoint_dir, CHECKPOINT_NAME)
    step = start_step
    last_time, last_step = time.time(), step
    while step < FLAGS.step:
        fetches = dict(losses=graph["losses"], step=graph["step_after"])
        if (step + 1) % FLAGS.log_step == 0:
            fetches["scalars"] = graph["scalar_summary"]
            fetches["learning_rate"] = graph["learning_rate"]
        if (step + 1) % FLAGS.image_summary_step == 0:
            fetches["images"] = graph["image_summary"]
        result = session.run(fetches)
        step = int(result["step"])
        check_finite(step, result["losses"])
        if "scalars" in result:
            writer.add_summary(result["scalars"], step)
            skipped_text = ""
            if graph["skipped"] is not None:
                writer.add_summary(tf.Summary(value=[
                    tf.Summary.Value(tag="skipped/files", simple_value=graph["skipped"].files),
                    tf.Summary.Value(tag="skipped/records", simple_value=graph["skipped"].records)]), step)
                skipped_text = " | skipped %d files %d records" % (graph["skipped"].files,
                                                                   graph["skipped"].records)
            now = time.time()
            rate = (step - last_step) / max(now - last_time, 1e-9)
            last_time, last_step = now, step
            print("step %d/%d | %s | lr %.2e | %.2f steps/s | ETA %s%s" % (
                step, FLAGS.step, " ".join("%s %.4g" % kv for kv in result["losses"].items()),
                result["learning_rate"], rate, format_duration((FLAGS.step - step) / max(rate, 1e-9)),
                skipped_text), flush=True)
        if "images" in result:
            writer.add_summary(result["images"], step)
        if step % FLAGS.save_step == 0 or step >= FLAGS.step:
            graph["saver"].save(session, save_path, global_step=step, write_meta_graph=False)
    writer.close()
    session.close()
    print("train.py: done at step %d; checkpoint in %s" % (step, FLAGS.checkpoint_dir))
    print("train.py: network weights in %s" % export_network(
        tf.train.latest_checkpoint(FLAGS.checkpoint_dir), face_model, FLAGS.backbone, network_dir))


def main(argv):
    if len(argv) > 1:
        sys.exit("train.py: unexpected arguments %s (flags are --name=value)" % " ".join(argv[1:]))
    if FLAGS.stage == "fine":
        sys.exit("train.py: --stage=fine is not implemented yet (the fine stage is a later issue); "
                 "only --stage=coarse trains")
    if not tf.io.gfile.glob(_data_pattern()):
        sys.exit("train.py: --data_dir=%s holds no *%s files (make some with preprocess/synthesize.py "
                 "or preprocess/make_tfrecords.py)" % (FLAGS.data_dir, schema.SHARD_SUFFIX))
    if FLAGS.vgg_face_path and not os.path.isfile(FLAGS.vgg_face_path):
        sys.exit("train.py: --vgg_face_path=%s does not exist" % FLAGS.vgg_face_path)
    try:
        train_coarse()
    except TrainingDiverged as error:
        sys.exit("train.py: %s" % error)
    except DataError as error:
        sys.exit("train.py: bad training data: %s" % error)
    except tf.errors.InvalidArgumentError as error:
        message = data_error(error)
        if message is None:
            raise
        hint = "" if message.startswith("none of") else " (--skip_bad_records skips such files and records)"
        sys.exit("train.py: bad training data: %s%s" % (message, hint))


if __name__ == "__main__":
    tf.disable_eager_execution()
    # absl's app.run, not tf.app.run, which shows a bad flag value as a traceback instead of one line.
    app.run(main)
