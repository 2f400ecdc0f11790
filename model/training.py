"""One training loop for both stages: resume, save, summaries, NaN stop, progress and ETA, export.

A stage (the coarse stage: model.coarse.CoarseStage; the fine stage plugs in the same way)
supplies its data, model, losses and trainable variables through the `Stage` interface; the loop
owns everything else:
  - Adam on the stage's trainable variables with an exponentially decaying learning rate, floored,
    and element-wise gradient clipping;
  - a checkpoint every save_step steps and at the end (`checkpoint_dir/model.ckpt-<step>`, the newest
    KEPT_CHECKPOINTS kept, earlier runs' included, and killed saves' temporaries removed:
    model/checkpoint_files.py); a run started again with the same checkpoint_dir resumes from the
    latest one at its global step;
  - TensorBoard summaries in checkpoint_dir: every loss and the learning rate every log_step steps,
    the stage's pictures every image_summary_step steps;
  - a log line every log_step steps with the losses, the learning rate, steps/s and the ETA (and
    the files and records the data reader skipped, when the stage skips bad records);
  - an error naming the step and the loss when a loss is not finite (earlier checkpoints intact);
  - at the end (or when started again at the final step) the network's weights alone in
    checkpoint_dir/network/, with the stage config (stage.json): what test.py loads and a release ships.

The stage config (`Stage.config()`: stage, backbone, face model file and SHA-256, coefficient and UV
sizes, ...) is written to checkpoint_dir when training starts and checked on every resume, so a run
cannot continue a checkpoint of another face model or network; `read_stage_config` and
`check_face_model` are what inference uses to match a checkpoint without flags.
"""
import abc
import collections
import json
import os
import time

import numpy as np
import tensorflow.compat.v1 as tf

from model import checkpoint_files, output_files

CHECKPOINT_NAME = "model.ckpt"
# Training checkpoints kept in checkpoint_dir; older ones, earlier runs' included, are deleted.
KEPT_CHECKPOINTS = 3
# Sub-folder of checkpoint_dir for the network's weights alone (no optimizer state): what test.py
# needs and what a release ships, a third of a training checkpoint's size.
NETWORK_DIR = "network"
STAGE_CONFIG_NAME = "stage.json"
# Stage config entries that must agree between a checkpoint and the run that resumes or loads it
# (max_channels: the fine network's shapes; train_coarse: which variables have Adam slots).
MATCHED_CONFIG_KEYS = ("stage", "backbone", "face_model_sha256", "coeff_size", "uv_size", "max_channels",
                       "train_coarse")

LoopSettings = collections.namedtuple("LoopSettings", [
    "checkpoint_dir",      # checkpoints, summaries, stage config, network/ export
    "step",                # global step at which training ends
    "save_step", "log_step", "image_summary_step",
    "learning_rate", "lr_decay_step", "lr_decay_rate", "min_learning_rate",
    "gradient_clip",       # each gradient element clipped to [-clip, clip]
    "seed",                # graph-level random seed
])
LoopSettings.__doc__ = "What the loop is told (train.py's flags of the same names)."

StageGraph = collections.namedtuple("StageGraph", ["losses", "trainable", "frozen", "image_summary", "skipped"])
StageGraph.__doc__ = """What `Stage.build` returns.

losses: OrderedDict name -> scalar tensor; "total" is minimised, all are logged and summarised.
trainable: the variables the optimizer updates.
frozen: variables that training checkpoints leave out (frozen networks that `Stage.initialize`
  reloads from their own files on every start).
image_summary: a tf.summary.image tensor, or None.
skipped: the model.data.SkippedCounter of the stage's dataset when it skips bad records, or None.
"""


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite."""


class StageConfigMismatch(ValueError):
    """A checkpoint's stage config disagrees with the run that uses it."""


class Stage(abc.ABC):
    """What a training stage supplies to the loop."""

    name = None  # "coarse", "fine": the stage config's `stage`

    @abc.abstractmethod
    def config(self):
        """JSON-serialisable dict with at least the MATCHED_CONFIG_KEYS."""

    @abc.abstractmethod
    def build(self, start_step):
        """Builds data, model and losses in the default graph (data order may depend on start_step).
        Returns a StageGraph."""

    @abc.abstractmethod
    def initialize(self, session, resumed):
        """Called after the variables are initialised or restored: loads pretrained weights that a
        fresh run starts from (resumed=False) and frozen networks (always). Returns log lines."""

    @abc.abstractmethod
    def build_network(self):
        """Builds the network alone in the default graph; returns the variables an export holds."""


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


def format_duration(seconds):
    seconds = int(round(seconds))
    return "%d:%02d:%02d" % (seconds // 3600, seconds // 60 % 60, seconds % 60)


# ---------------------------------------------------------------------------- stage config


def write_stage_config(folder, config):
    """Writes folder/stage.json (model.output_files: never a half-written config). Returns its path."""
    tf.io.gfile.makedirs(folder)
    path = os.path.join(folder, STAGE_CONFIG_NAME)
    with output_files.replacing(path, "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    return path


def read_stage_config(checkpoint):
    """The stage config beside a checkpoint.

    Args:
      checkpoint: a checkpoint folder, or a checkpoint prefix (its folder holds the config).
    Returns:
      dict.
    Raises:
      FileNotFoundError naming the expected file.
    """
    folder = checkpoint if os.path.isdir(checkpoint) else os.path.dirname(checkpoint)
    path = os.path.join(folder, STAGE_CONFIG_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError("%s: no stage config %s beside the checkpoint (train.py writes it; "
                                "a checkpoint without it cannot be matched to its face model)"
                                % (checkpoint, STAGE_CONFIG_NAME))
    with open(path) as f:
        return json.load(f)


def check_stage_config(found, expected, where):
    """Raises StageConfigMismatch listing every MATCHED_CONFIG_KEYS entry where `found` (a
    checkpoint's config, from `where`) and `expected` (this run's) differ."""
    differences = ["%s: checkpoint %r, this run %r" % (key, found.get(key), expected.get(key))
                   for key in MATCHED_CONFIG_KEYS if found.get(key) != expected.get(key)]
    if differences:
        raise StageConfigMismatch("%s was written for another configuration (%s)" % (where, "; ".join(differences)))


def check_face_model(config, face_model, where):
    """Raises StageConfigMismatch when `face_model` is not the file the checkpoint was trained with."""
    if config.get("face_model_sha256") != face_model.sha256:
        raise StageConfigMismatch(
            "%s was trained with the face model %s (sha256 %s), but %s has sha256 %s: pass the face "
            "model it was trained with (--face_model_path) or retrain"
            % (where, config.get("face_model_file"), config.get("face_model_sha256"),
               face_model.path, face_model.sha256))


def face_model_config(face_model):
    """The stage config entries that name a face model."""
    return dict(face_model_file=os.path.basename(face_model.path), face_model_sha256=face_model.sha256,
                coeff_size=face_model.coeff_size, k_id=face_model.k_id, k_exp=face_model.k_exp,
                k_tex=face_model.k_tex)


# ---------------------------------------------------------------------------- the loop


def export_network(stage, checkpoint, out_dir):
    """Copies the stage network's variables from a training checkpoint into a checkpoint of their
    own, out_dir/model.ckpt-<global step>, with the stage config beside it. Returns its path."""
    step = int(tf.train.load_variable(checkpoint, "global_step"))
    with tf.Graph().as_default():
        saver = tf.train.Saver(stage.build_network(), save_relative_paths=True)
        with tf.Session() as session:
            saver.restore(session, checkpoint)
            path = saver.save(session, os.path.join(out_dir, CHECKPOINT_NAME), global_step=step,
                              write_meta_graph=False)
    checkpoint_files.keep_only_latest(out_dir, CHECKPOINT_NAME)
    write_stage_config(out_dir, stage.config())
    return path


def _check_or_write_config(stage, checkpoint_dir):
    """Checks checkpoint_dir's stage config against this run's, or writes it (a new folder, or
    checkpoints from before stage configs existed, which are adopted as this run's)."""
    if os.path.isfile(os.path.join(checkpoint_dir, STAGE_CONFIG_NAME)):
        check_stage_config(read_stage_config(checkpoint_dir), stage.config(), checkpoint_dir)
    else:
        write_stage_config(checkpoint_dir, stage.config())


def _build(stage, settings, start_step):
    graph = stage.build(start_step)
    global_step = tf.train.get_or_create_global_step()
    learning_rate = learning_rate_schedule(global_step, settings.learning_rate, settings.lr_decay_step,
                                           settings.lr_decay_rate, settings.min_learning_rate)
    optimizer = tf.train.AdamOptimizer(learning_rate)
    gradients = clipped_gradients(optimizer, graph.losses["total"], graph.trainable, settings.gradient_clip)
    train_op = optimizer.apply_gradients(gradients, global_step=global_step)
    # Read after the update: a plain fetch of global_step in the same run may see either value.
    with tf.control_dependencies([train_op]):
        step_after = tf.identity(global_step.read_value())
    scalars = [tf.summary.scalar("loss/" + name, value) for name, value in graph.losses.items()]
    scalars.append(tf.summary.scalar("learning_rate", learning_rate))
    frozen = {v.name for v in graph.frozen}
    saved = [v for v in tf.global_variables() if v.name not in frozen]
    return dict(losses=graph.losses, step_after=step_after, learning_rate=learning_rate,
                scalar_summary=tf.summary.merge(scalars), image_summary=graph.image_summary,
                skipped=graph.skipped,
                saver=tf.train.Saver(saved, max_to_keep=KEPT_CHECKPOINTS, save_relative_paths=True))


def _print(line):
    print(line, flush=True)


def train(stage, settings, log=_print):
    """Trains `stage` until settings.step; returns the exported network checkpoint's path.

    Raises TrainingDiverged (a loss not finite), StageConfigMismatch (checkpoint_dir holds another
    stage configuration's checkpoints).
    """
    checkpoint_dir = settings.checkpoint_dir
    network_dir = os.path.join(checkpoint_dir, NETWORK_DIR)
    tf.io.gfile.makedirs(checkpoint_dir)
    _check_or_write_config(stage, checkpoint_dir)
    checkpoint, start_step = latest_step(checkpoint_dir)
    if start_step >= settings.step:
        log("train.py: the latest checkpoint %s is at step %d >= --step=%d; nothing to train"
            % (checkpoint, start_step, settings.step))
        path = export_network(stage, checkpoint, network_dir)
        log("train.py: network weights in %s" % path)
        return path
    with tf.Graph().as_default():
        tf.set_random_seed(settings.seed)
        graph = _build(stage, settings, start_step)
        writer = tf.summary.FileWriter(checkpoint_dir)
        session = tf.Session()
        session.run(tf.global_variables_initializer())
        if checkpoint:
            graph["saver"].restore(session, checkpoint)
            log("train.py: resuming from %s at step %d" % (checkpoint, start_step))
        else:
            log("train.py: starting from scratch (no checkpoint in %s)" % checkpoint_dir)
        for line in stage.initialize(session, resumed=checkpoint is not None):
            log("train.py: " + line)
        session.graph.finalize()
        removed, deleted = checkpoint_files.tidy_for_resume(graph["saver"], checkpoint_dir, CHECKPOINT_NAME,
                                                            KEPT_CHECKPOINTS)
        for path in removed:
            log("train.py: removed %s (left by a save that was killed)" % path)
        if deleted:
            log("train.py: deleted %d old checkpoint(s) beyond the %d kept: %s"
                % (len(deleted), KEPT_CHECKPOINTS, " ".join(os.path.basename(p) for p in deleted)))
        try:
            step = _run(session, graph, writer, settings, start_step, log)
        finally:
            writer.close()
            session.close()
    log("train.py: done at step %d; checkpoint in %s" % (step, checkpoint_dir))
    path = export_network(stage, tf.train.latest_checkpoint(checkpoint_dir), network_dir)
    log("train.py: network weights in %s" % path)
    return path


def _run(session, graph, writer, settings, start_step, log):
    save_path = os.path.join(settings.checkpoint_dir, CHECKPOINT_NAME)
    step = start_step
    last_time, last_step = time.time(), step
    while step < settings.step:
        fetches = dict(losses=graph["losses"], step=graph["step_after"])
        if (step + 1) % settings.log_step == 0:
            fetches["scalars"] = graph["scalar_summary"]
            fetches["learning_rate"] = graph["learning_rate"]
        if graph["image_summary"] is not None and (step + 1) % settings.image_summary_step == 0:
            fetches["images"] = graph["image_summary"]
        result = session.run(fetches)
        step = int(result["step"])
        check_finite(step, result["losses"])
        if "scalars" in result:
            writer.add_summary(result["scalars"], step)
            skipped_text = ""
            skipped = graph["skipped"]
            if skipped is not None:
                writer.add_summary(tf.Summary(value=[
                    tf.Summary.Value(tag="skipped/files", simple_value=skipped.files),
                    tf.Summary.Value(tag="skipped/records", simple_value=skipped.records)]), step)
                skipped_text = " | skipped %d files %d records" % (skipped.files, skipped.records)
            now = time.time()
            rate = (step - last_step) / max(now - last_time, 1e-9)
            last_time, last_step = now, step
            log("step %d/%d | %s | lr %.2e | %.2f steps/s | ETA %s%s" % (
                step, settings.step, " ".join("%s %.4g" % kv for kv in result["losses"].items()),
                result["learning_rate"], rate, format_duration((settings.step - step) / max(rate, 1e-9)),
                skipped_text))
        if "images" in result:
            writer.add_summary(result["images"], step)
        if step % settings.save_step == 0 or step >= settings.step:
            graph["saver"].save(session, save_path, global_step=step, write_meta_graph=False)
    return step
