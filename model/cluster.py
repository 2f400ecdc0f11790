"""Several machines: synchronous data-parallel training on TensorFlow's own distributed runtime.

The cluster is given the standard way, by the environment variable TF_CONFIG of each task:

    {"cluster": {"chief": ["host0:2222"], "worker": ["host1:2222", "host2:2222"], "ps": ["host3:2222"]},
     "task": {"type": "worker", "index": 0}}

"ps" is optional (without it the chief's task holds the variables); without "chief", worker 0 is
the chief. Every chief and worker task is a replica: it reads its own shard of the tfrecord files
(file-level: replica r of R reads files r, r + R, ... of the sorted list; model.data.shard_files),
builds the same graph and computes gradients on its own batch; each step's update is the mean of
all R replicas' gradients, applied once. Only the chief restores and writes checkpoints, writes
summaries, the stage config and the export; a ps task only serves its variables (it runs until the
launcher ends it). --batch_size is per replica: a step trains R x batch_size images. The chief's log
line and summaries show the chief's own replica's losses (each worker logs its own).

How (between-graph replication, the TF1 pattern, all of it in TensorFlow 2.21's tf.compat.v1):
  - each task starts a gRPC `tf.distribute.Server` for its TF_CONFIG entry;
  - `tf.train.replica_device_setter` puts the variables on the ps tasks (or the chief) and the
    task's ops on its own device;
  - `tf.train.SyncReplicasOptimizer` (replicas_to_aggregate = total replicas = R) wraps the loop's
    Adam: each replica pushes its clipped gradients into conditional accumulators and waits for a
    token; the chief's queue runner averages R gradients, applies them once and hands out R tokens
    (none at the start, so every step is strictly synchronous); a gradient computed on stale
    variables is dropped by the accumulators;
  - sessions are plain `tf.Session(server.target)` with device filters (a task sees the variable
    hosts and itself only, so a dead worker never blocks another task's session): the chief
    initialises or restores, exactly as a single-process run, then runs the optimizer's chief init
    and its queue runner, and last sets a flag variable; a worker waits
    (tf.train.SessionManager.wait_for_session) until the variables and that flag are initialised,
    so it never computes a gradient on variables the chief is still restoring, and then sets its
    local step from the global step. So a restarted worker
    rejoins the running job by starting again with the same TF_CONFIG and picks up at the current
    global step. Meanwhile the job does not stall: the token queue is shared, so the live replicas
    also take the dead one's tokens and each update averages R gradients from them (two or more
    from one replica, each computed on the current variables); the dead replica's shard is not read
    until it is back.

Why not a tf.distribute strategy: in TensorFlow 2.21 the strategies are written for tf.function and
Keras; their use from compat.v1 sessions went with the distribute coordinator
(`tf.compat.v1.distribute.experimental.ParameterServerStrategy` and
`MultiWorkerMirroredStrategy` need `strategy.scope()`, `experimental_run_v2`-style replica
functions and, for sessions, the independent-worker mode that TF 2 no longer drives), and
they would replace the loop rather than plug into it. The pieces above are public compat.v1 API,
run with the loop unchanged (same Stage, Saver, summaries, export), and need nothing outside
TensorFlow. The price: SyncReplicasOptimizer and replica_device_setter are deprecated (they still
ship and work in 2.21; tests/test_scale.py runs a chief and a worker on 127.0.0.1).

Known limits: a worker whose process restarts begins its shard's data order again (seeded by
--seed, not by the global step it rejoins at). When a worker dies after pushing a gradient but
before taking its token, that token is left in the queue; the restarted worker then runs one step
ahead of the others, and an update may average two of its gradients (never a stale one). The chief
restarting restores the latest checkpoint; the workers then must be restarted too (their sessions
end with the chief's task when it hosts the variables). With ps tasks that outlive a chief restart,
the ready flag stays set, so workers may resume before the new chief has restored.
"""
import json
import os
import time

import tensorflow.compat.v1 as tf

REPLICA_TYPES = ("chief", "worker")
TASK_TYPES = REPLICA_TYPES + ("ps",)
# How long a worker waits for the chief to initialise the variables, and the chief for the workers
# to report that they finished, before giving up (seconds).
WAIT_FOR_CHIEF_SECS = 1800
WAIT_FOR_WORKERS_SECS = 120


class ClusterConfigError(ValueError):
    """TF_CONFIG is malformed or names a task the cluster lacks."""


class ClusterTimeout(RuntimeError):
    """A worker waited WAIT_FOR_CHIEF_SECS for the chief in vain."""


class ClusterTask(object):
    """One task of a cluster: what it is, where its variables and ops go, how it syncs.

    Args:
      cluster: dict job name -> list of "host:port" (TF_CONFIG's "cluster").
      task_type: "chief", "worker" or "ps".
      task_index: index within its job.
    """

    def __init__(self, cluster, task_type, task_index):
        if not isinstance(cluster, dict) or not cluster:
            raise ClusterConfigError("TF_CONFIG: \"cluster\" must be a non-empty object of job -> addresses")
        for job, addresses in cluster.items():
            if job not in TASK_TYPES:
                raise ClusterConfigError("TF_CONFIG: job %r is not supported (jobs: %s)" % (job, ", ".join(TASK_TYPES)))
            if not isinstance(addresses, list) or not addresses or not all(isinstance(a, str) for a in addresses):
                raise ClusterConfigError("TF_CONFIG: cluster job %r must be a non-empty list of \"host:port\"" % job)
        if not any(job in cluster for job in REPLICA_TYPES):
            raise ClusterConfigError("TF_CONFIG: the cluster has neither a chief nor a worker job")
        if "chief" in cluster and len(cluster["chief"]) != 1:
            raise ClusterConfigError("TF_CONFIG: the chief job must have exactly one task, has %d" % len(cluster["chief"]))
        if task_type not in cluster:
            raise ClusterConfigError("TF_CONFIG: task type %r is not a job of the cluster (%s)"
                                     % (task_type, ", ".join(sorted(cluster))))
        if not isinstance(task_index, int) or not 0 <= task_index < len(cluster[task_type]):
            raise ClusterConfigError("TF_CONFIG: task index %r out of range for job %r of %d task(s)"
                                     % (task_index, task_type, len(cluster[task_type])))
        self.cluster = {job: list(addresses) for job, addresses in cluster.items()}
        self.task_type = task_type
        self.task_index = task_index
        self.replicas = ["/job:%s/task:%d" % (job, i) for job in REPLICA_TYPES for i in range(len(cluster.get(job, [])))]
        self.device = "/job:%s/task:%d" % (task_type, task_index)
        self.chief_device = self.replicas[0]
        self.server = None
        # CPU devices of this task's server: > 1 when in-graph towers run on logical CPU devices.
        self.cpu_devices = 1
        self._sync = None
        self._finished = None
        self._finish = None

    @classmethod
    def from_environment(cls, environ=None):
        """The task TF_CONFIG describes, or None when TF_CONFIG is unset or empty (one process)."""
        text = (os.environ if environ is None else environ).get("TF_CONFIG", "").strip()
        if not text:
            return None
        try:
            config = json.loads(text)
        except ValueError as error:
            raise ClusterConfigError("TF_CONFIG is not JSON: %s" % error) from None
        if not isinstance(config, dict) or "cluster" not in config or not isinstance(config.get("task"), dict):
            raise ClusterConfigError("TF_CONFIG must be {\"cluster\": {...}, \"task\": {\"type\": ..., \"index\": ...}}")
        task = config["task"]
        return cls(config["cluster"], task.get("type"), task.get("index", 0))

    # ------------------------------------------------------------------ what this task is

    @property
    def is_ps(self):
        return self.task_type == "ps"

    @property
    def is_chief(self):
        return self.device == self.chief_device

    @property
    def num_replicas(self):
        return len(self.replicas)

    @property
    def replica_index(self):
        return self.replicas.index(self.device)

    @property
    def data_shard(self):
        """(index, count) of this replica's tfrecord files (model.data.make_dataset's shard)."""
        return self.replica_index, self.num_replicas

    @property
    def variable_hosts(self):
        return ["/job:ps"] if "ps" in self.cluster else [self.chief_device]

    def describe(self):
        return "%s (replica %d of %d; variables on %s)" % (
            self.device, self.replica_index, self.num_replicas, ", ".join(self.variable_hosts)) \
            if not self.is_ps else "%s (parameter server)" % self.device

    # ------------------------------------------------------------------ runtime

    def start_server(self):
        """Starts this task's gRPC server (the port of its TF_CONFIG address, all interfaces)."""
        self.server = tf.distribute.Server(tf.train.ClusterSpec(self.cluster), job_name=self.task_type,
                                           task_index=self.task_index, config=self.session_config(),
                                           start=True)
        return self.server

    def session_config(self):
        """Device filters: this task and the variable hosts only (and cpu_devices CPU devices)."""
        config = tf.ConfigProto(allow_soft_placement=True, device_filters=self.variable_hosts + [self.device])
        if self.cpu_devices > 1:
            config.device_count["CPU"] = self.cpu_devices
        return config

    def device_scope(self):
        """Context for building the graph: variables on the ps tasks (round robin) or the chief,
        everything else on this task."""
        if "ps" in self.cluster:
            setter = tf.train.replica_device_setter(worker_device=self.device,
                                                    cluster=tf.train.ClusterSpec(self.cluster))
        else:
            setter = tf.train.replica_device_setter(ps_tasks=1, ps_device="/job:chief",
                                                    worker_device=self.device)
        return tf.device(setter)

    def synchronous_optimizer(self, optimizer):
        """Wraps the loop's optimizer: one update per step from all replicas' gradients."""
        self._sync = tf.train.SyncReplicasOptimizer(optimizer, replicas_to_aggregate=self.num_replicas,
                                                    total_num_replicas=self.num_replicas)
        return self._sync

    def build_extras(self):
        """Ops the loop adds after the training step (before the graph is finalised): the chief's
        sync init and queue runner, and a counter of workers that finished (so the chief's task,
        which may host the variables, outlives the workers' last step)."""
        # Placed by device_scope's setter with the other variables; not in the loop's Saver (made before).
        self._finished = tf.get_variable("cluster_finished_workers", [], tf.int32,
                                         initializer=tf.zeros_initializer(), trainable=False)
        self._finish = tf.assign_add(self._finished, 1)
        # Initialised by the chief alone, last of all (outside tf.global_variables, so neither its
        # initializer nor its Saver touch it): a worker starts only once the chief has restored the
        # checkpoint, loaded the frozen networks and set up the synchronisation.
        self._chief_ready = tf.get_variable("cluster_chief_ready", [], tf.int32, initializer=tf.ones_initializer(),
                                            trainable=False, collections=[])
        if self.is_chief:
            self._chief_runner = self._sync.get_chief_queue_runner()
            self._init_tokens = self._sync.get_init_tokens_op(num_tokens=0)
        else:
            self._ready = tf.report_uninitialized_variables(tf.global_variables() + [self._chief_ready])

    def chief_start(self, session):
        """After the chief initialised or restored the variables and the stage loaded its frozen
        networks: sync state at the current global step, the queue runner that applies the
        aggregated gradients, then the flag the workers wait for."""
        session.run(self._sync.chief_init_op)
        session.run(self._init_tokens)
        self._coordinator = tf.train.Coordinator()
        self._threads = self._chief_runner.create_threads(session, coord=self._coordinator, daemon=True, start=True)
        session.run(self._chief_ready.initializer)

    def chief_finish(self, session, log):
        """Waits (at most WAIT_FOR_WORKERS_SECS) for the workers to report their last step, then
        stops the queue runner."""
        workers = self.num_replicas - 1
        deadline = time.time() + WAIT_FOR_WORKERS_SECS
        done = 0
        while workers and time.time() < deadline:
            done = int(session.run(self._finished))
            if done >= workers:
                break
            time.sleep(0.2)
        if workers and done < workers:
            log("train.py: %d of %d worker(s) did not report their end within %d s; stopping anyway"
                % (workers - done, workers, WAIT_FOR_WORKERS_SECS))
        self._coordinator.request_stop()

    def worker_session(self):
        """A worker's session, once the chief has initialised the variables (waits for it)."""
        manager = tf.train.SessionManager(ready_op=self._ready,
                                          ready_for_local_init_op=self._sync.ready_for_local_init_op,
                                          local_init_op=self._sync.local_step_init_op,
                                          recovery_wait_secs=1)
        session = manager.wait_for_session(self.server.target, config=self.session_config(),
                                           max_wait_secs=WAIT_FOR_CHIEF_SECS)
        if session is None:
            raise ClusterTimeout("worker %s waited %d s for the chief %s to start training (is it running, "
                                 "or has it already finished?)" % (self.device, WAIT_FOR_CHIEF_SECS, self.chief_device))
        return session

    def worker_finish(self, session):
        """Reports this worker's end to the chief (nothing when the chief has already gone)."""
        try:
            session.run(self._finish)
        except (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError):
            pass


def run_worker(stage, settings, build_step, log):
    """A worker task: the same graph as the chief; steps until the global step reaches
    settings.step; writes nothing (no checkpoints, summaries or export). Returns the last global step."""
    cluster = settings.cluster
    with tf.Graph().as_default():
        tf.set_random_seed(settings.seed)
        with cluster.device_scope():
            graph = build_step(stage, settings, 0)
            cluster.build_extras()
        log("train.py: worker %s waiting for the chief to initialise the variables" % cluster.device)
        session = cluster.worker_session()
        session.graph.finalize()
        step = int(session.run(graph["global_step"]))
        log("train.py: worker %s joined at global step %d" % (cluster.device, step))
        try:
            while step < settings.step:
                fetches = dict(step=graph["step_after"])
                if (step + 1) % settings.log_step == 0:
                    fetches["losses"] = graph["losses"]
                result = session.run(fetches)
                step = int(result["step"])
                if "losses" in result:
                    log("worker %s step %d/%d | %s" % (cluster.device, step, settings.step,
                                                       " ".join("%s %.4g" % kv for kv in result["losses"].items())))
            cluster.worker_finish(session)
        finally:
            session.close()
    log("train.py: worker %s done at step %d" % (cluster.device, step))
    return step


def run_ps(cluster, log):
    """A parameter-server task: serves its variables until the process is ended."""
    log("train.py: parameter server %s serving (ends when the launcher stops it)" % cluster.device)
    cluster.server.join()

