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
  - scale (build_step): settings.num_towers in-graph towers, the batch split into equal slices,
    gradients averaged on the host; settings.cluster (model/cluster.py) one task of a synchronous
    data-parallel cluster, where only the chief runs the checkpoint, summary and export parts.

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
    "num_towers",          # in-graph towers (train.py's --num_gpus); default 1
    "cluster",             # a model.cluster.ClusterTask (several machines) or None; default None
])
LoopSettings.__new__.__defaults__ = (1, None)
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
    """What a training stage supplies to the loop.

    The graph is built in three parts so that the loop can build the model once per tower
    (in-graph data parallelism, `--num_gpus`):
      - `inputs(start_step)`: the data, one whole batch;
      - `tower(batch)`: model and losses on a batch or on one tower's slice of it, its variables
        made with tf.get_variable, so that a call under
        `tf.variable_scope(tf.get_variable_scope(), reuse=True)` shares the first call's;
      - `trainable_variables()`: what the optimizer updates (called after `tower`).
    `build` is their one-tower composition.
    """

    name = None  # "coarse", "fine": the stage config's `stage`

    @abc.abstractmethod
    def config(self):
        """JSON-serialisable dict with at least the MATCHED_CONFIG_KEYS."""

    @abc.abstractmethod
    def inputs(self, start_step):
        """Builds the data pipeline in the default graph (data order may depend on start_step).
        Returns (batch, skipped): batch a dict of tensors, each with the batch as its leading
        (static) dimension; skipped a model.data.SkippedCounter or None."""

    @abc.abstractmethod
    def tower(self, batch):
        """Builds model and losses on `batch` (a whole batch or one tower's slice).
        Returns (losses, image_summary): losses an OrderedDict name -> scalar with "total", each a
        mean over the batch's samples (so that the mean over equal slices is the whole batch's:
        towers are then exact up to float summation order); image_summary a tf.summary.image
        tensor or None."""

    @abc.abstractmethod
    def trainable_variables(self):
        """The variables the optimizer updates (called after `tower`)."""

    def frozen_variables(self):
        """Variables that training checkpoints leave out (frozen networks that `initialize` reloads
        from their own files on every start). Default: none."""
        return []

    def build(self, start_step):
        """Builds data, model and losses in the default graph, one tower. Returns a StageGraph."""
        batch, skipped = self.inputs(start_step)
        losses, image_summary = self.tower(batch)
        return StageGraph(losses=losses, trainable=self.trainable_variables(), frozen=self.frozen_variables(),
                          image_summary=image_summary, skipped=skipped)

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


# ---------------------------------------------------------------------------- towers

# Op types that hold variables: a tower's variables stay on the host, shared by all towers.
_VARIABLE_OPS = ("Variable", "VariableV2", "VarHandleOp", "AutoReloadVariable")


def tower_devices(num_towers):
    """The devices of `num_towers` towers: "/gpu:i" when the machine has that many GPUs, otherwise
    the logical CPU devices "/cpu:i" (configure_virtual_cpus makes them)."""
    if num_towers <= 1:
        return [None]
    if len(tf.config.list_physical_devices("GPU")) >= num_towers:
        return ["/gpu:%d" % i for i in range(num_towers)]
    return ["/cpu:%d" % i for i in range(num_towers)]


def configure_virtual_cpus(count):
    """Splits the host CPU into `count` logical devices (tf.config.set_logical_device_configuration),
    the stand-in for GPUs on a machine without them. Must run before TensorFlow touches its
    devices; when that has already happened (one process running several graphs, as pytest),
    the session config of `session_config` makes the same devices for the loop's session.
    Returns True when the logical configuration was set."""
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
        return True
    except RuntimeError:
        return False


def session_config(num_towers):
    """The loop's session config: None for one tower (TensorFlow's default), otherwise soft placement
    and at least num_towers CPU devices (where the towers are CPUs)."""
    if num_towers <= 1:
        return None
    config = tf.ConfigProto(allow_soft_placement=True)
    config.device_count["CPU"] = max(num_towers, len(tf.config.list_logical_devices("CPU")))
    return config


def split_batch(batch, count):
    """A batch dict -> `count` dicts of equal slices along the leading dimension.
    Raises ValueError when the (static) batch size is unknown or does not divide by count."""
    slices = [dict() for _ in range(count)]
    for key, value in batch.items():
        size = value.shape[0] if value.shape.rank else None
        if size is None or size % count:
            raise ValueError("batch entry %r has leading dimension %s, which does not split into %d "
                             "equal tower slices" % (key, size, count))
        for index, part in enumerate(tf.split(value, count, axis=0)):
            slices[index][key] = part
    return slices


def _tower_placement(device):
    """Device function of one tower: its variables on the host (shared), everything else on `device`."""
    def place(op):
        return "/cpu:0" if op.type in _VARIABLE_OPS else device
    return place


def average_gradients(tower_pairs):
    """[(gradient, variable)] per tower -> [(mean gradient, variable)] (variables in the first
    tower's order; a variable without gradient is dropped)."""
    averaged = []
    for pairs in zip(*tower_pairs):
        variable = pairs[0][1]
        gradients = [g for g, _ in pairs if g is not None]
        if not gradients:
            continue
        averaged.append((tf.add_n(gradients) / float(len(gradients)) if len(gradients) > 1 else gradients[0],
                         variable))
    return averaged


def build_step(stage, settings, start_step, devices=None):
    """Builds the stage and one training step in the default graph.

    devices: one tower per entry (None: one tower, no placement: the graph as a single-device
    run builds it). With several, the batch from `stage.inputs` is split into equal slices,
    `stage.tower` is built on each slice on its device with the variables shared (reuse), each
    tower's gradients are computed on its device, averaged on the host, clipped element-wise and
    applied once; the logged losses are the towers' means, the image summary the first tower's. With losses that are means over
    samples (GroupNorm normalises each sample alone, so no statistic crosses the slices), N towers
    compute the one-tower update up to float summation order.

    With settings.cluster, the variables live where the cluster puts them and the update is a
    synchronous aggregation over the replicas (model.cluster).

    Returns a dict of the tensors and ops the loop runs (also `gradients`: the clipped
    (gradient, variable) pairs applied).
    """
    devices = devices or [None]
    cluster = settings.cluster
    batch, skipped = stage.inputs(start_step)
    if len(devices) == 1:
        losses, image_summary = stage.tower(batch)
        tower_losses = [losses]
    else:
        tower_losses = []
        for index, (device, part) in enumerate(zip(devices, split_batch(batch, len(devices)))):
            with tf.device(_tower_placement(device)), tf.name_scope("tower_%d" % index), \
                    tf.variable_scope(tf.get_variable_scope(), reuse=index > 0):
                losses, tower_image_summary = stage.tower(part)
            tower_losses.append(losses)
            if index == 0:
                image_summary = tower_image_summary
        with tf.device("/cpu:0"):
            losses = collections.OrderedDict(
                (name, tf.add_n([t[name] for t in tower_losses]) / float(len(devices)))
                for name in tower_losses[0])
    trainable = stage.trainable_variables()
    global_step = tf.train.get_or_create_global_step()
    learning_rate = learning_rate_schedule(global_step, settings.learning_rate, settings.lr_decay_step,
                                           settings.lr_decay_rate, settings.min_learning_rate)
    optimizer = tf.train.AdamOptimizer(learning_rate)
    if cluster is not None:
        optimizer = cluster.synchronous_optimizer(optimizer)
    if len(devices) == 1:
        gradients = clipped_gradients(optimizer, losses["total"], trainable, settings.gradient_clip)
    else:
        per_tower = []
        for index, (device, tower) in enumerate(zip(devices, tower_losses)):
            with tf.device(device), tf.name_scope("tower_%d_gradients" % index):
                per_tower.append(optimizer.compute_gradients(tower["total"], var_list=trainable,
                                                             colocate_gradients_with_ops=True))
        with tf.device("/cpu:0"):
            gradients = [(tf.clip_by_value(g, -settings.gradient_clip, settings.gradient_clip), v)
                         for g, v in average_gradients(per_tower)]
    train_op = optimizer.apply_gradients(gradients, global_step=global_step)
    # Read after the update: a plain fetch of global_step in the same run may see either value.
    with tf.control_dependencies([train_op]):
        step_after = tf.identity(global_step.read_value())
    scalars = [tf.summary.scalar("loss/" + name, value) for name, value in losses.items()]
    scalars.append(tf.summary.scalar("learning_rate", learning_rate))
    frozen = {v.name for v in stage.frozen_variables()}
    saved = [v for v in tf.global_variables() if v.name not in frozen]
    return dict(losses=losses, step_after=step_after, learning_rate=learning_rate, gradients=gradients,
                optimizer=optimizer, global_step=global_step,
                images_per_tower=next(iter(batch.values())).shape[0] // len(devices),
                scalar_summary=tf.summary.merge(scalars), image_summary=image_summary,
                skipped=skipped,
                saver=tf.train.Saver(saved, max_to_keep=KEPT_CHECKPOINTS, save_relative_paths=True))


def _print(line):
    print(line, flush=True)


def train(stage, settings, log=_print):
    """Trains `stage` until settings.step; returns the exported network checkpoint's path.

    With settings.num_towers > 1, in-graph towers (build_step). With settings.cluster, one task of a
    synchronous data-parallel cluster (model.cluster): the chief runs this loop (checkpoints,
    summaries, export), a worker steps until the global step reaches settings.step and returns
    None, a ps task serves its variables until the process is ended.

    Raises TrainingDiverged (a loss not finite), StageConfigMismatch (checkpoint_dir holds another
    stage configuration's checkpoints).
    """
    cluster = settings.cluster
    if cluster is not None:
        from model import cluster as cluster_lib
        log("train.py: cluster task %s" % cluster.describe())
        if any(d and d.startswith("/cpu:") for d in tower_devices(settings.num_towers)):
            cluster.cpu_devices = settings.num_towers
        cluster.start_server()
        if cluster.is_ps:
            cluster_lib.run_ps(cluster, log)
            return None
        if not cluster.is_chief:
            cluster_lib.run_worker(stage, settings, build_step, log)
            return None
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
        devices = tower_devices(settings.num_towers)
        if cluster is None:
            graph = build_step(stage, settings, start_step, devices)
            session = tf.Session(config=session_config(settings.num_towers))
        else:
            with cluster.device_scope():
                graph = build_step(stage, settings, start_step, devices)
                cluster.build_extras()
            session = tf.Session(cluster.server.target, config=cluster.session_config())
        writer = tf.summary.FileWriter(checkpoint_dir)
        session.run(tf.global_variables_initializer())
        if checkpoint:
            graph["saver"].restore(session, checkpoint)
            log("train.py: resuming from %s at step %d" % (checkpoint, start_step))
        else:
            log("train.py: starting from scratch (no checkpoint in %s)" % checkpoint_dir)
        for line in stage.initialize(session, resumed=checkpoint is not None):
            log("train.py: " + line)
        if len(devices) > 1:
            log("train.py: %d towers on %s, %d images each" % (len(devices), " ".join(devices),
                                                               int(graph["images_per_tower"])))
        if cluster is not None:
            cluster.chief_start(session)
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
            if cluster is not None:
                cluster.chief_finish(session, log)
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
