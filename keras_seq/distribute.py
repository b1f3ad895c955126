"""Training under TensorFlow's own distribution engine (`tf.distribute`) and Keras 3's on JAX.

The pieces `keras_seq.g2p.train` (and any keras-seq training script) uses:

- `make_strategy(name, tpu=None)`: the `tf.distribute.Strategy` for a name of `STRATEGIES`:
  ``"default"`` (one device), ``"data-parallel"`` or ``"mirrored"`` (`MirroredStrategy` over the
  visible GPUs, or over logical CPU devices made with
  `tf.config.set_logical_device_configuration`), ``"multiworker"``
  (`MultiWorkerMirroredStrategy`, the cluster from the ``TF_CONFIG`` environment variable) and
  ``"tpu"`` (`TPUStrategy` over a `TPUClusterResolver(tpu=...)`). Create it at the start of the
  program: `MultiWorkerMirroredStrategy` must configure the collectives before TensorFlow runs
  any op. A strategy is passed one way: configuration (`worker_dir`, `make_strategy`, the CLI,
  `keras_seq.g2p.train.train`) names it; only the training loop (`fit`) gets the object. On the
  JAX backend, `make_strategy` gives a small stand-in with ``num_replicas_in_sync`` and
  ``scope()``: one device for "default"; `jax_distribution()`, `keras.distribution.DataParallel`
  over the local devices (a TPU VM's chips for "tpu"), for "data-parallel", "mirrored" and "tpu".
- `fit(model, strategy, dataset, ...)`: `model.fit` for the default, mirrored and TPU strategies
  and on JAX (there under the distribution's scope, where Keras's JAX trainer splits each batch); the custom training loop `DistributedFit` for ``MultiWorkerMirroredStrategy``, where
  `model.fit` fails in Keras 3.15 (keras-team/keras#20585, ``Attempt to convert a value
  (PerReplica:...) to a Tensor`` in the metrics update of the multi-worker train step).
- `DistributedFit` (``custom_fit(...)`` is ``DistributedFit(...).run()``): a training step run
  with `strategy.run` over `strategy.experimental_distribute_dataset` (the dataset auto-sharded
  across workers by tf.data: each global batch is split across all replicas), the loss a *sum*
  over each replica's (unmasked) elements divided by the global count of elements
  (all-reduced), so the summed gradients are those of the global batch's mean loss, exactly as
  on one device. Its methods are the named steps: `set_up`, `restore_checkpoint`,
  `train_epoch`, `train_step`, `evaluate`, `save_checkpoint`, `end_epoch`. It runs the same
  Keras callbacks as `fit` (Epoch N/M lines and the `Progbar`, History, learning-rate
  schedules, ...) and replaces `keras.callbacks.BackupAndRestore` callbacks by its own
  checkpoints, written to the same files (``latest.weights.h5`` and
  ``training_metadata.json`` in the backup directory), atomically (a temporary file, then
  `os.replace`), by the chief only, every ``save_freq`` steps and at every epoch end. Unlike
  `fit` (which restarts an interrupted epoch from its start), a resumed `DistributedFit`
  continues *inside* the epoch: it replays the data order (one iterator creation per finished
  epoch advances the tf.data shuffle seed as the uninterrupted run did) and skips the batches
  already trained on, so an interrupted and resumed run ends with the weights of an
  uninterrupted one.
- A dead worker makes the others fail, not hang: a collective that fails (a peer's connection
  reset, a lost heartbeat) raises `WorkerStalledError` with a one-line message, and so does a
  watchdog thread when no step finishes within ``step_timeout`` seconds (a peer that hangs, or
  vanishes without closing its connections; `_Watchdog` says how a thread makes the main thread
  raise: it aborts the collectives the step waits on). TensorFlow cannot run collectives in
  the process after that, and its shutdown may wait on the dead peer, so the library raises and
  the program ends the process: the CLI prints the line and exits at once (`os._exit`) with
  `EXIT_STALLED`; restart all workers with ``--resume``.
- `worker_dir(out_dir, strategy_name)`: where this process writes: the run directory on the
  chief, a ``.worker-N`` subdirectory on the other workers (TensorFlow's convention: every
  worker runs the same code; only the chief's files are the run's).

TPU constraints (TensorFlow's ``"tpu"`` path cannot run here; JAX's runs over CPU devices):
every batch must have a static shape (``static_shapes=True``, which ``strategy="tpu"``
implies: full batches of fixed shapes: on JAX one shape per length bucket, on TensorFlow one
shape for all batches), no Python control flow on tensor values in ``call`` (the keras-seq
layers loop with `jax.lax.scan` / `tf.while_loop`), and the training step must compile with
XLA (``jit_compile=True``) once per shape; `check_tpu_constraints` checks all three on CPU, on
either backend.
"""

from __future__ import annotations

import _thread
import json
import os
import threading
import time
from pathlib import Path

import keras

__all__ = [
    "STRATEGIES",
    "EXIT_STALLED",
    "make_strategy",
    "is_multiworker",
    "task_info",
    "worker_dir",
    "chief_dir",
    "fit",
    "DistributedFit",
    "custom_fit",
    "jax_distribution",
    "check_tpu_constraints",
    "WorkerStalledError",
]

STRATEGIES = ("default", "data-parallel", "mirrored", "multiworker", "tpu")
EXIT_STALLED = 75  # EX_TEMPFAIL: restart all workers with --resume
WORKER_DIR_PREFIX = ".worker-"
_METADATA, _WEIGHTS = "training_metadata.json", "latest.weights.h5"


class WorkerStalledError(RuntimeError):
    """A worker died or cannot be reached: a collective failed, or no training step finished in
    time. The process cannot train on; a program ends it with `EXIT_STALLED`."""


# ---------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------


def task_info():
    """``(task_type, task_id, num_workers, is_chief)`` from ``TF_CONFIG`` (one local worker without it)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    cluster = config.get("cluster", {})
    task = config.get("task", {})
    task_type, task_id = task.get("type", "worker"), int(task.get("index", 0))
    num_workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and not cluster.get("chief"))
    return task_type, task_id, max(num_workers, 1), is_chief


def make_strategy(name=None, tpu=None, *, collective_timeout=None):
    """The `tf.distribute.Strategy` for a strategy name.

    Configuration (the CLI, `keras_seq.g2p.train.train`, `worker_dir`) names a strategy; the
    object made here once, at the start of the program, is what the training loop gets.

    Args:
        name: One of `STRATEGIES`: "default" (or None: `tf.distribute.get_strategy()`, one
            device), "mirrored", "multiworker" (cluster from ``TF_CONFIG``; without it, one
            local worker) or "tpu".
        tpu: For "tpu": the `TPUClusterResolver` argument (a TPU name, a ``grpc://`` address,
            or None/"" for the TPU of this VM / Colab / Cloud TPU environment).
        collective_timeout: For "multiworker": seconds after which a collective operation
            fails (`CommunicationOptions(timeout_seconds=...)`); None: no collective timeout
            (the watchdog of `DistributedFit` bounds a stalled run instead: a collective timeout
            shorter than a peer's first XLA compilation fails healthy runs).

    "data-parallel" is the backend-neutral name of data parallelism over the local devices:
    `MirroredStrategy` on TensorFlow.

    On the JAX backend there is no `tf.distribute`: `make_strategy` gives a small stand-in with
    what training code uses of a strategy, ``num_replicas_in_sync`` and ``scope()`` (which
    `fit` also trains under, as Keras's JAX trainer reads the distribution when it shards each
    batch): "default" is one device (no distribution); "data-parallel" (and its TensorFlow name
    "mirrored") and "tpu" are `keras.distribution.DataParallel` over the local devices (on a
    Cloud TPU VM, its TPU chips): variables replicated, each global batch split across the
    devices, gradients those of the global batch. "multiworker" raises ValueError.
    """
    name = _strategy_name(name)
    if keras.backend.backend() == "jax":
        return _jax_strategy(name)
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name in ("mirrored", "data-parallel"):
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING,
            timeout_seconds=collective_timeout,
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")  # "tpu"
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _strategy_name(name):
    """`name` checked against `STRATEGIES` (None: "default")."""
    if name is None:
        return "default"
    if not isinstance(name, str):
        raise TypeError(f"a strategy is named by a string ({', '.join(STRATEGIES)}), got {type(name).__name__}; "
                        "make_strategy(name) makes the object that fit takes")
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}: use one of {', '.join(STRATEGIES)}")
    return name


def is_multiworker(strategy):
    if strategy is None:
        return False
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def worker_dir(out_dir, strategy_name=None):
    """The directory this process writes a run to: `out_dir` itself on the chief (and without
    ``TF_CONFIG``), ``out_dir/.worker-N`` on the other workers of a multi-worker run
    (`strategy_name` "multiworker"; a name of `STRATEGIES`, None: "default")."""
    out_dir = Path(out_dir)
    if _strategy_name(strategy_name) != "multiworker":
        return out_dir
    _, task_id, _, chief = task_info()
    return out_dir if chief else out_dir / f"{WORKER_DIR_PREFIX}{task_id}"


def chief_dir(path):
    """The chief's counterpart of a path under a worker's `worker_dir`."""
    path = Path(path)
    parts = list(path.parts)
    for i, part in enumerate(parts):
        if part.startswith(WORKER_DIR_PREFIX):
            return Path(*parts[:i], *parts[i + 1:])
    return path


class _KerasDistributionStrategy:
    """What training code uses of a `tf.distribute.Strategy`, for a Keras distribution on JAX."""

    def __init__(self, distribution):
        self.distribution = distribution
        self.num_replicas_in_sync = len(distribution.device_mesh.devices.flatten()) if distribution else 1

    def scope(self):
        import contextlib

        return self.distribution.scope() if self.distribution is not None else contextlib.nullcontext()


def _jax_strategy(name):
    if name == "multiworker":
        raise ValueError("strategy 'multiworker' needs the TensorFlow backend; on JAX use 'data-parallel' "
                         "(keras.distribution.DataParallel over the local devices) or 'tpu'")
    return _KerasDistributionStrategy(None if name == "default" else jax_distribution())


def jax_distribution():
    """`keras.distribution.DataParallel` over the local JAX devices when there are several, else None."""
    devices = keras.distribution.list_devices()
    if len(devices) < 2:
        return None
    return keras.distribution.DataParallel(devices=devices)


# ---------------------------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------------------------


def fit(model, strategy, dataset, *, epochs, validation_data=None, callbacks=None, verbose=1,
        loop=None, step_timeout=None):
    """Trains `model` (compiled under `strategy.scope()`, the object of `make_strategy`):
    `model.fit`, or `DistributedFit` for a `MultiWorkerMirroredStrategy` (or ``loop="custom"``).
    Returns the History; raises `WorkerStalledError` (see `DistributedFit`)."""
    if isinstance(strategy, _KerasDistributionStrategy):  # JAX: batches are sharded as the distribution says
        with strategy.scope():
            _build_without_iterating(model, dataset)
            return model.fit(dataset, validation_data=validation_data, epochs=epochs,
                             callbacks=callbacks, verbose=verbose, shuffle=False)
    if loop is None:
        loop = "custom" if is_multiworker(strategy) else "fit"
    if loop == "fit":
        return model.fit(dataset, validation_data=validation_data, epochs=epochs,
                         callbacks=callbacks, verbose=verbose, shuffle=False)
    if loop != "custom":
        raise ValueError(f"loop must be 'fit' or 'custom', got {loop!r}")
    return custom_fit(model, strategy, dataset, epochs=epochs, validation_data=validation_data,
                      callbacks=callbacks, verbose=verbose, step_timeout=step_timeout)


def _build_without_iterating(model, dataset):
    """Builds the compiled loss and metrics from `dataset`'s element_spec, so that Keras's JAX
    `fit` does not iterate `dataset` once more to build them: that extra iterator would draw
    another tf.data reshuffle seed, and every epoch would see another order than on TensorFlow
    (whose `fit` builds while tracing). Only shapes and dtypes are used (unknown sizes: 1)."""
    import numpy as np

    build = getattr(model, "_symbolic_build", None)  # Keras 3's own build, from one data batch
    if build is None:
        return
    if isinstance(dataset, keras.utils.PyDataset):  # no TensorFlow: its batches do not draw seeds
        build(data_batch=dataset[0])
        return
    import tensorflow as tf

    batch = tf.nest.map_structure(
        lambda spec: np.zeros([d if d is not None else 1 for d in spec.shape], spec.dtype.as_numpy_dtype),
        dataset.element_spec)
    build(data_batch=batch)


def _per_element_loss(loss):
    """``f(y_true, y_pred) -> (values, weights)`` for a compiled Keras loss (no reduction)."""
    from keras import ops

    if not isinstance(loss, keras.losses.Loss):
        raise TypeError(f"custom_fit needs a keras.losses.Loss object as the model's loss, got {loss!r}")
    config = loss.get_config()
    config["reduction"] = "none"
    per_element = type(loss).from_config(config)
    ignore_class = config.get("ignore_class")

    def fn(y_true, y_pred):
        values = ops.cast(per_element(y_true, y_pred), "float32")
        if ignore_class is not None:
            weights = ops.cast(ops.not_equal(y_true, ignore_class), "float32")
            weights = ops.reshape(weights, ops.shape(values))
        else:
            weights = ops.ones_like(values)
        return values * weights, weights

    return fn


class _Checkpoints:
    """The backup files of `keras.callbacks.BackupAndRestore` (same names, same directory),
    written atomically by the chief, read by every worker from the chief's directory.

    ``training_metadata.json``: ``{"epoch": e, "batch": b, "steps_in_epoch": n,
    "global_step": g}``: epoch ``e`` (0-based) has ``n`` steps done (0: it starts afresh);
    ``epoch``/``batch`` keep `BackupAndRestore`'s meaning, so `fit` can resume from them too.
    """

    def __init__(self, backup_dir, save_freq, is_chief):
        self.write_dir = Path(backup_dir)
        self.read_dir = chief_dir(backup_dir)
        self.save_freq = None if save_freq in (None, "epoch") else int(save_freq)
        self.is_chief = is_chief
        self.seconds = []  # time of each save

    def load(self, model):
        meta = self.read_dir / _METADATA
        weights = self.read_dir / _WEIGHTS
        if not weights.exists():
            return 0, 0, 0
        model.load_weights(str(weights))
        if not meta.exists():
            return 0, 0, 0
        data = json.loads(meta.read_text())
        return int(data["epoch"]), int(data.get("steps_in_epoch", 0)), int(data.get("global_step", 0))

    def save(self, model, epoch, steps_in_epoch, global_step):
        start = time.perf_counter()
        target = self.write_dir
        target.mkdir(parents=True, exist_ok=True)
        # Every worker saves (reading mirrored variables is local); only the chief's files count.
        tmp = target / (_WEIGHTS + ".tmp.weights.h5")
        model.save_weights(str(tmp), overwrite=True)
        os.replace(tmp, target / _WEIGHTS)
        meta = {"epoch": epoch, "batch": max(steps_in_epoch - 1, 0), "steps_in_epoch": steps_in_epoch,
                "global_step": global_step}
        tmp_meta = target / (_METADATA + ".tmp")
        tmp_meta.write_text(json.dumps(meta))
        os.replace(tmp_meta, target / _METADATA)
        self.seconds.append(time.perf_counter() - start)


class _Watchdog:
    """Makes the training loop raise `WorkerStalledError` when `beat()` is not called for
    `timeout` seconds (`first_timeout` after `start()` and `relax()`).

    A thread cannot raise in another one, so the watchdog thread, when the limit passes:

    1. records the one-line message (``error``); the main thread raises `WorkerStalledError`
       with it at its next `beat()`, `relax()` or `check()` (every step boundary of the loop);
    2. calls `on_stall` (the loop passes `_abort_collectives` under a multi-worker strategy,
       what `MultiWorkerMirroredStrategy`'s own peer health check does): a step blocked in an
       all-reduce that waits for a dead peer fails at once, and the loop turns that error into
       `WorkerStalledError` with the recorded message;
    3. if the main thread has not stopped the watchdog within `grace` seconds (it is busy in
       Python code, a callback for instance), calls `_thread.interrupt_main()`: a
       KeyboardInterrupt at its next Python instruction, which the loop also turns into
       `WorkerStalledError`.

    A main thread blocked in native code other than a collective is not reached. Ending the
    process (TensorFlow's shutdown may wait on the dead peer) is the caller's decision: the CLI
    maps `WorkerStalledError` to the exit code `EXIT_STALLED`.
    """

    def __init__(self, timeout, what="a training step", *, on_stall=None, grace=10.0):
        self.timeout, self.what = timeout, what
        self.on_stall, self.grace = on_stall, grace
        self.error = None  # the one-line message, once the limit has passed
        self.limit = self.first_timeout = timeout
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = None

    def start(self, first_timeout=None):
        if not self.timeout:
            return self
        self.limit = self.first_timeout = first_timeout or self.timeout
        self._last = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True, name="keras-seq-watchdog")
        self._thread.start()
        return self

    def relax(self):
        """Restarts the clock with the first-step allowance (epoch ends: callbacks, tracing)."""
        self.check()
        self._last = time.monotonic()
        self.limit = max(self.limit, self.first_timeout or 0)

    def beat(self):
        """A step finished: restarts the clock with the step limit."""
        self.check()
        self._last = time.monotonic()
        self.limit = self.timeout

    def check(self):
        """Raises `WorkerStalledError` once the limit has passed."""
        if self.error is not None:
            raise WorkerStalledError(self.error)

    def stop(self):
        """Stops the thread; it interrupts the main thread no more after this returns."""
        with self._lock:
            self._stop.set()

    def _run(self):
        while not self._stop.wait(min(0.5, self.timeout / 4)):
            waited = time.monotonic() - self._last
            if waited > self.limit:
                break
        else:
            return
        _, task_id, workers, _ = task_info()
        self.error = (
            f"{self.what} did not finish in {waited:.0f} s (limit {self.limit:.0f} s; worker {task_id} "
            f"of {workers}): a worker has probably died or cannot be reached. Stopping; restart all "
            "workers with --resume to continue from the last checkpoint."
        )
        if self.on_stall is not None:
            self.on_stall(self.error)
        if self._stop.wait(self.grace):
            return
        with self._lock:
            if not self._stop.is_set():
                _thread.interrupt_main()


def _abort_collectives(message):
    """Makes running and later collective operations of this process fail (UnavailableError)."""
    import tensorflow as tf
    from tensorflow.python.eager import context

    context.context().abort_collective_ops(tf.errors.UNAVAILABLE, message)


class DistributedFit:
    """`model.fit`'s job with a `strategy.run` training step, in named steps (see the module
    docstring): `set_up`, `restore_checkpoint`, `train_epoch` (of `train_step`s), `evaluate`,
    `save_checkpoint`, `end_epoch`; `run` calls them in order and returns the History.

    Args:
        model: A Keras model compiled under ``strategy.scope()`` with a `keras.losses.Loss`.
        strategy: Any `tf.distribute.Strategy` (written for `MultiWorkerMirroredStrategy`).
        dataset: A `tf.data.Dataset` of ``(inputs, targets)`` *global* batches; the same
            pipeline (same seed) on every worker: tf.data auto-sharding splits each batch.
        epochs: Total epochs (a resumed run counts those done).
        validation_data: A dataset for ``val_loss`` (distributed the same way), or None.
        callbacks: Keras callbacks; `BackupAndRestore` ones become this loop's checkpoints (their
            ``backup_dir`` and ``save_freq``, plus every epoch end).
        verbose: 0, 1 (progress bar) or 2 (one line per epoch), as `fit`.
        step_timeout: Seconds a step (or a validation pass) may take before the loop raises
            `WorkerStalledError` (env ``KERAS_SEQ_STEP_TIMEOUT``; default 600; 0 disables it).
        first_step_timeout: The same for the first step of each epoch, which also traces and
            compiles (default: 3 x step_timeout).

    Raises (from `run`):
        WorkerStalledError: A collective failed under a multi-worker strategy (a peer died), or
            the watchdog saw no step finish in time. The process cannot run collectives any
            more and TensorFlow's shutdown may wait on the dead peer: end it (the CLI exits with
            `EXIT_STALLED`) and restart all workers with resume.

    Example:

        loop = DistributedFit(model, strategy, train_ds, epochs=3, callbacks=[backup])
        history = loop.run()
    """

    def __init__(self, model, strategy, dataset, *, epochs, validation_data=None, callbacks=None, verbose=1,
                 step_timeout=None, first_step_timeout=None):
        self.model, self.strategy, self.dataset = model, strategy, dataset
        self.epochs, self.validation_data, self.verbose = epochs, validation_data, verbose
        if step_timeout is None:
            step_timeout = float(os.environ.get("KERAS_SEQ_STEP_TIMEOUT", 600))
        self.step_timeout = step_timeout
        self.first_step_timeout = first_step_timeout or 3 * step_timeout
        callbacks = list(callbacks or [])
        backups = [c for c in callbacks if isinstance(c, keras.callbacks.BackupAndRestore)]
        self.user_callbacks = [c for c in callbacks if not isinstance(c, keras.callbacks.BackupAndRestore)]
        self.multiworker = is_multiworker(strategy)
        is_chief = task_info()[3] if self.multiworker else True
        self.checkpoints = None
        if backups:
            self.checkpoints = _Checkpoints(backups[0].backup_dir, backups[0].save_freq, is_chief)
        self.watchdog = _Watchdog(step_timeout, on_stall=_abort_collectives if self.multiworker else None)
        self.global_step = 0

    # -- the loop ------------------------------------------------------------------------------

    def run(self):
        """Trains `epochs` epochs (from the checkpoint, if any); returns the History."""
        self.set_up()
        initial_epoch, skip_steps = self.restore_checkpoint()
        self.model.stop_training = False
        self.watchdog.start(self.first_step_timeout)
        self.callbacks.on_train_begin()
        logs, epoch = {}, initial_epoch
        try:
            try:
                # One iterator per finished epoch: the shuffle order of epoch k is that of the
                # uninterrupted run (tf.data draws a new shuffle seed at each iterator creation).
                for _ in range(initial_epoch):
                    iter(self.dist_train)
                for epoch in range(initial_epoch, self.epochs):
                    logs = self.train_epoch(epoch, skip_steps if epoch == initial_epoch else 0)
                    if self.model.stop_training:
                        break
            finally:
                self.watchdog.stop()
        except BaseException as e:
            stalled = self._stalled_error(e, epoch)
            if stalled is None:
                raise
            raise stalled from e
        self.callbacks.on_train_end(logs)
        history = self.model.history
        history.checkpoint_seconds = self.checkpoints.seconds if self.checkpoints is not None else []
        return history

    def set_up(self):
        """Builds the model and optimizer, distributes the datasets, wraps the steps in
        `tf.function`s and creates the callbacks (with History and the progress bar)."""
        import tensorflow as tf

        strategy, model = self.strategy, self.model
        self.loss_fn = _per_element_loss(model.loss)
        with strategy.scope():
            if not model.built:
                x0, _ = next(iter(self.dataset.take(1)))
                model(x0)
            if not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
        self.dist_train = strategy.experimental_distribute_dataset(self.dataset)
        self.dist_val = None
        self._eval_step = None
        if self.validation_data is not None:
            self.dist_val = strategy.experimental_distribute_dataset(self.validation_data)
            self._eval_step = tf.function(self._eval_on, input_signature=list(self.dist_val.element_spec),
                                          reduce_retracing=True)
        self._train_step = tf.function(self._train_on_next)
        self.callbacks = keras.callbacks.CallbackList(
            self.user_callbacks, add_history=True, add_progbar=self.verbose != 0, verbose=self.verbose,
            epochs=self.epochs, steps=None, model=model,
        )

    def restore_checkpoint(self):
        """Loads the last checkpoint (every worker, from the chief's files); returns
        ``(epoch, steps done in it)`` to resume from, ``(0, 0)`` without one."""
        if self.checkpoints is None:
            return 0, 0
        with self.strategy.scope():
            epoch, steps, self.global_step = self.checkpoints.load(self.model)
        return epoch, steps

    def train_epoch(self, epoch, skip_steps=0):
        """One epoch: its callbacks, the steps (after skipping `skip_steps` batches already
        trained on), checkpoints every ``save_freq`` steps, validation; returns its logs."""
        self.callbacks.on_epoch_begin(epoch)
        iterator = iter(self.dist_train)
        step = 0
        for _ in range(skip_steps):
            next(iterator)  # batches trained on before the interruption
            step += 1
        total, count, logs = 0.0, 0.0, {}
        self.watchdog.relax()
        while True:
            self.callbacks.on_train_batch_begin(step)
            result = self.train_step(iterator)
            if result is None:
                break
            total, count = total + result[0], count + result[1]
            step += 1
            self.global_step += 1
            logs = {"loss": total / max(count, 1.0)}
            self.callbacks.on_train_batch_end(step - 1, logs)
            freq = self.checkpoints.save_freq if self.checkpoints is not None else None
            if freq and self.global_step % freq == 0:
                self.save_checkpoint(epoch, step)
            if self.model.stop_training:
                break
        if self.dist_val is not None:
            logs["val_loss"] = self.evaluate()
        self.save_checkpoint(epoch + 1, 0)
        self.end_epoch(epoch, logs)
        return logs

    def train_step(self, iterator):
        """Trains on the next global batch; returns ``(loss sum, element count)`` over all
        replicas as floats, or None at the end of the data."""
        import tensorflow as tf

        try:
            total, count = self._train_step(iterator)
        except (StopIteration, tf.errors.OutOfRangeError):
            return None
        result = float(total), float(count)
        self.watchdog.beat()
        return result

    def evaluate(self):
        """The validation loss: the global mean over the unmasked elements of `validation_data`."""
        self.watchdog.relax()
        total, count = 0.0, 0.0
        for x, y in self.dist_val:
            s, c = self._eval_step(x, y)
            total, count = total + float(s), count + float(c)
            self.watchdog.beat()
        return total / max(count, 1.0)

    def save_checkpoint(self, epoch, steps_in_epoch):
        """Writes the checkpoint (``steps_in_epoch`` steps of ``epoch`` done), if there are backups."""
        if self.checkpoints is not None:
            self.checkpoints.save(self.model, epoch, steps_in_epoch, self.global_step)

    def end_epoch(self, epoch, logs):
        """Adds the learning rate to `logs` and runs the epoch-end callbacks (with the
        first-step allowance: they may decode, save models, trace)."""
        from keras import ops

        logs["learning_rate"] = float(ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.watchdog.relax()
        self.callbacks.on_epoch_end(epoch, logs)
        self.watchdog.relax()

    # -- inside the tf.functions -----------------------------------------------------------------

    def _losses(self, x, y, training):
        from keras import ops

        values, weights = self.loss_fn(y, self.model(x, training=training))
        return ops.sum(values), ops.sum(weights)

    def _replica_train(self, x, y):
        import tensorflow as tf
        from keras import ops

        model, optimizer = self.model, self.model.optimizer
        ctx = tf.distribute.get_replica_context()
        with tf.GradientTape() as tape:
            total, count = self._losses(x, y, True)
            global_count = ctx.all_reduce(tf.distribute.ReduceOp.SUM, count)
            loss = total / ops.maximum(global_count, 1.0)
            if model.losses:
                loss = loss + ops.sum(model.losses) / self.strategy.num_replicas_in_sync
            scaled = optimizer.scale_loss(loss)
        variables = model.trainable_variables
        grads = tape.gradient(scaled, variables)
        optimizer.apply_gradients(zip(grads, variables))  # sums the replicas' gradients
        return total, count

    def _replica_eval(self, x, y):
        return self._losses(x, y, False)

    def _reduced(self, fn, x, y):
        import tensorflow as tf

        total, count = self.strategy.run(fn, args=(x, y))
        return (self.strategy.reduce(tf.distribute.ReduceOp.SUM, total, axis=None),
                self.strategy.reduce(tf.distribute.ReduceOp.SUM, count, axis=None))

    def _train_on_next(self, iterator):
        # The batch is taken inside the function (as Keras's own train function does): no
        # Python round trip of the per-replica values; one trace for every batch shape.
        x, y = next(iterator)
        return self._reduced(self._replica_train, x, y)

    def _eval_on(self, x, y):
        return self._reduced(self._replica_eval, x, y)

    # -- failures ----------------------------------------------------------------------------------

    def _stalled_error(self, error, epoch):
        """The `WorkerStalledError` that `error` (raised in the loop) stands for, or None."""
        if isinstance(error, WorkerStalledError):
            return error
        if self.watchdog.error is not None and isinstance(error, (Exception, KeyboardInterrupt)):
            # After the watchdog fired: its KeyboardInterrupt, or a failure of the aborted collectives.
            return WorkerStalledError(self.watchdog.error)
        if self.multiworker and isinstance(error, _collective_errors()):
            # A peer died (connection reset, heartbeat lost, ...): TensorFlow cannot run
            # collectives in this process any more ("Restart your program to reset").
            first = (str(error).strip().splitlines() or [""])[0][:300]
            _, task_id, workers, _ = task_info()
            return WorkerStalledError(
                f"worker {task_id} of {workers} lost the cluster ({type(error).__name__}: {first}) in epoch "
                f"{epoch + 1}: a worker has died or cannot be reached. Stopping; restart all workers with "
                "--resume to continue from the last checkpoint."
            )
        return None


def custom_fit(model, strategy, dataset, *, epochs, validation_data=None, callbacks=None, verbose=1,
               step_timeout=None, first_step_timeout=None):
    """``DistributedFit(...).run()``: see `DistributedFit` for the arguments; returns the History
    (``history.checkpoint_seconds`` lists the save times). Raises `WorkerStalledError`."""
    return DistributedFit(model, strategy, dataset, epochs=epochs, validation_data=validation_data,
                          callbacks=callbacks, verbose=verbose, step_timeout=step_timeout,
                          first_step_timeout=first_step_timeout).run()


def _collective_errors():
    import tensorflow as tf

    return (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
            tf.errors.AbortedError, tf.errors.InternalError)


# ---------------------------------------------------------------------------------------------
# TPU readiness
# ---------------------------------------------------------------------------------------------


def check_tpu_constraints(model, dataset, steps=None, strategy=None):
    """Checks, on any device and either backend, what a TPU needs of a compiled model and its
    training dataset:

    - the model's training step compiles with XLA (``jit_compile=True``; on JAX every step is
      `jax.jit`) and is traced only for fully static batch shapes (an unknown dimension in a
      traced batch is a dynamic shape: a TPU would not compile it), for full batches only (one
      batch size), with finite losses;
    - on TensorFlow, every batch of `dataset` (its ``element_spec``) has one fully static shape
      and the step is traced for that one shape (Keras's traced step, ``reduce_retracing``,
      turns a step traced for several shapes into one of dynamic shape; TensorFlow may trace
      one shape twice); on JAX, where `jax.jit` compiles each shape once and never relaxes it,
      a few fixed shapes (one per length bucket) are allowed, each traced once.

    It trains `model` one epoch of `dataset` (or its first `steps` batches; its weights change)
    under `strategy` (a `make_strategy` object; JAX: its distribution places the batches), and
    leaves it with ``jit_compile=True``. Returns the list of losses (one per epoch); raises
    ValueError naming the first violation.
    """
    import contextlib

    one_shape = keras.backend.backend() == "tensorflow"
    if one_shape:
        import tensorflow as tf

        for spec in tf.nest.flatten(dataset.element_spec):
            if not spec.shape.is_fully_defined():
                raise ValueError(f"TPU: a batch component has a dynamic shape {spec.shape} "
                                 "(pad to one length and batch with drop_remainder=True)")
    traced = []
    train_step = model.train_step

    def counted(*args):  # Python runs only while the backend traces the step (jax.jit / tf.function)
        traced.append([tuple(getattr(t, "shape", ())) for t in keras.tree.flatten(args[-1])])
        return train_step(*args)

    model.jit_compile = True
    if not model.jit_compile:
        raise ValueError("TPU: the model cannot be compiled with XLA (a layer has supports_jit=False)")
    model.train_step = counted
    try:
        model.make_train_function(force=True)
        scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
        with scope:
            history = model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    finally:
        del model.train_step
        model.make_train_function(force=True)
    shapes = sorted({tuple(batch) for batch in traced}, key=str)
    if any(d is None for shape in shapes for batch in shape for d in batch):
        raise ValueError(f"TPU: the training step was traced for the batch shapes {shapes}: a dynamic shape")
    sizes = sorted({batch[0] for shape in shapes for batch in shape if batch})
    if len(sizes) > 1:
        raise ValueError(f"TPU: the training step was traced for batches of {sizes} rows: partial batches "
                         "compile a program each (batch with drop_remainder=True)")
    if one_shape and len(shapes) != 1:
        raise ValueError(f"TPU: the training step was traced for the batch shapes {shapes}: TensorFlow relaxes "
                         "a step traced for several shapes to a dynamic shape (one static shape compiles once)")
    if not one_shape and len(traced) != len(shapes):
        raise ValueError(f"TPU: the training step was traced {len(traced)} times for {len(shapes)} batch shapes: "
                         "a dynamic shape (each static shape compiles once)")
    loss = history.history["loss"]
    if not all(map(lambda v: v == v and abs(v) != float("inf"), loss)):
        raise ValueError(f"TPU: the XLA-compiled training step gave a non-finite loss {loss}")
    return loss
