"""Training under TensorFlow's own distribution engine (`tf.distribute`) and Keras 3's on JAX.

The pieces `keras_seq.g2p.train` (and any keras-seq training script) uses:

- `make_strategy(name, tpu=None)`: the `tf.distribute.Strategy` for ``"default"`` (one device),
  ``"mirrored"`` (`MirroredStrategy` over the visible GPUs, or over logical CPU devices made with
  `tf.config.set_logical_device_configuration`), ``"multiworker"``
  (`MultiWorkerMirroredStrategy`, the cluster from the ``TF_CONFIG`` environment variable) and
  ``"tpu"`` (`TPUStrategy` over a `TPUClusterResolver(tpu=...)`). Create it at the start of the
  program: `MultiWorkerMirroredStrategy` must configure the collectives before TensorFlow runs
  any op. On the JAX backend, `make_strategy` returns None and `jax_distribution()` gives
  `keras.distribution.DataParallel` over the local devices when there are several.
- `fit(model, strategy, dataset, ...)`: `model.fit` for the default, mirrored and TPU strategies
  and on JAX; the custom training loop `custom_fit` for ``MultiWorkerMirroredStrategy``, where
  `model.fit` fails in Keras 3.15 (keras-team/keras#20585, ``Attempt to convert a value
  (PerReplica:...) to a Tensor`` in the metrics update of the multi-worker train step).
- `custom_fit`: a training step run with `strategy.run` over
  `strategy.experimental_distribute_dataset` (the dataset auto-sharded across workers by
  tf.data: each global batch is split across all replicas), the loss a *sum* over each
  replica's (unmasked) elements divided by the global count of elements (all-reduced), so the
  summed gradients are those of the global batch's mean loss, exactly as on one device. It runs
  the same Keras callbacks as `fit` (Epoch N/M lines and the `Progbar`, History, learning-rate
  schedules, ...) and replaces `keras.callbacks.BackupAndRestore` callbacks by its own
  checkpoints, written to the same files (``latest.weights.h5`` and
  ``training_metadata.json`` in the backup directory), atomically (a temporary file, then
  `os.replace`), by the chief only, every ``save_freq`` steps and at every epoch end. Unlike
  `fit` (which restarts an interrupted epoch from its start), a resumed `custom_fit` continues
  *inside* the epoch: it replays the data order (one iterator creation per finished epoch
  advances the tf.data shuffle seed as the uninterrupted run did) and skips the batches already
  trained on, so an interrupted and resumed run ends with the weights of an uninterrupted one.
  A dead worker makes the others fail, not hang: a collective that fails (a peer's connection
  reset, a lost heartbeat) ends the process with a one-line message and exit code
  `EXIT_STALLED` (TensorFlow cannot run collectives after that, and its shutdown would wait on
  the dead peer), and a watchdog does the same when no step finishes within ``step_timeout``
  seconds (a peer that hangs, or vanishes without closing its connections).
- `worker_dir(out_dir)`: where this process writes: the run directory on the chief, a
  ``.worker-N`` subdirectory on the other workers (TensorFlow's convention: every worker runs the
  same code; only the chief's files are the run's).

TPU constraints (the ``"tpu"`` path cannot run here): every batch must have one static shape
(``static_shapes=True`` in `keras_seq.g2p.train`: padded batches, ``drop_remainder=True``), no
Python control flow on tensor values in ``call`` (the keras-seq layers loop with
`keras.ops` / `tf.while_loop`-style constructs), and the model must compile with XLA
(``jit_compile=True``); `check_tpu_constraints` checks the last two on CPU.
"""

from __future__ import annotations

import json
import os
import sys
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
    "custom_fit",
    "jax_distribution",
    "check_tpu_constraints",
    "WorkerStalledError",
]

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
EXIT_STALLED = 75  # EX_TEMPFAIL: restart all workers with --resume
WORKER_DIR_PREFIX = ".worker-"
_METADATA, _WEIGHTS = "training_metadata.json", "latest.weights.h5"


class WorkerStalledError(RuntimeError):
    """No training step finished in time (a worker died or the cluster cannot be reached)."""


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
    """The `tf.distribute.Strategy` for a name (a strategy object is returned as is).

    Args:
        name: None or "default" (`tf.distribute.get_strategy()`, one device), "mirrored",
            "multiworker" (cluster from ``TF_CONFIG``; without it, one local worker) or "tpu".
        tpu: For "tpu": the `TPUClusterResolver` argument (a TPU name, a ``grpc://`` address,
            or None/"" for the TPU of this VM / Colab / Cloud TPU environment).
        collective_timeout: For "multiworker": seconds after which a collective operation
            fails (`CommunicationOptions(timeout_seconds=...)`); None: no collective timeout
            (the watchdog of `custom_fit` bounds a stalled run instead: a collective timeout
            shorter than a peer's first XLA compilation fails healthy runs).

    On the JAX backend there is no `tf.distribute`: "default" and "mirrored" give a small
    stand-in with the two things training code uses of a strategy, ``num_replicas_in_sync``
    and ``scope()``, backed by `keras.distribution.DataParallel` over the local devices when
    there are several (the scope sets it as the global distribution: variables replicated, each
    batch split across the devices); "multiworker" and "tpu" raise ValueError.
    """
    if keras.backend.backend() == "jax":
        return _jax_strategy(name)
    import tensorflow as tf

    if name is None or name == "default":
        return tf.distribute.get_strategy()
    if isinstance(name, tf.distribute.Strategy):
        return name
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING,
            timeout_seconds=collective_timeout,
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown strategy {name!r}: use one of {', '.join(STRATEGIES)}")


def is_multiworker(strategy):
    if strategy is None:
        return False
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def worker_dir(out_dir, strategy_name=None):
    """The directory this process writes a run to: `out_dir` itself on the chief (and without
    ``TF_CONFIG``), ``out_dir/.worker-N`` on the other workers of a multi-worker run."""
    out_dir = Path(out_dir)
    if strategy_name != "multiworker":
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
    if name not in (None, "default", "mirrored"):
        raise ValueError(f"strategy {name!r} needs the TensorFlow backend; on JAX use 'default' or "
                         "'mirrored' (keras.distribution.DataParallel over the local devices)")
    return _KerasDistributionStrategy(jax_distribution())


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
    """Trains `model` (compiled under `strategy.scope()`): `model.fit`, or `custom_fit` for a
    `MultiWorkerMirroredStrategy` (or ``loop="custom"``). Returns the History."""
    if loop is None:
        loop = "custom" if is_multiworker(strategy) else "fit"
    if loop == "fit":
        return model.fit(dataset, validation_data=validation_data, epochs=epochs,
                         callbacks=callbacks, verbose=verbose, shuffle=False)
    if loop != "custom":
        raise ValueError(f"loop must be 'fit' or 'custom', got {loop!r}")
    return custom_fit(model, strategy, dataset, epochs=epochs, validation_data=validation_data,
                      callbacks=callbacks, verbose=verbose, step_timeout=step_timeout)


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
    """Ends the process (exit code `EXIT_STALLED`) when `beat()` is not called for `timeout` s."""

    def __init__(self, timeout, what="a training step"):
        self.timeout, self.what = timeout, what
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._thread = None
        self.limit = timeout

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
        self._last = time.monotonic()
        self.limit = max(self.limit, getattr(self, "first_timeout", self.timeout) or 0)

    def beat(self):
        self._last = time.monotonic()
        self.limit = self.timeout

    def stop(self):
        self._stop.set()

    def _run(self):
        while not self._stop.wait(0.5):
            waited = time.monotonic() - self._last
            if waited > self.limit:
                _, task_id, workers, _ = task_info()
                print(
                    f"\nkeras-seq: error: {self.what} did not finish in {waited:.0f} s (limit "
                    f"{self.limit:.0f} s; worker {task_id} of {workers}): a worker has probably "
                    "died or cannot be reached. Stopping; restart all workers with --resume to "
                    "continue from the last checkpoint.",
                    file=sys.stderr, flush=True,
                )
                os._exit(EXIT_STALLED)


def custom_fit(model, strategy, dataset, *, epochs, validation_data=None, callbacks=None, verbose=1,
               step_timeout=None, first_step_timeout=None):
    """`model.fit`'s job with a `strategy.run` training step (see the module docstring).

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
        step_timeout: Seconds a step (or a validation pass) may take before the process ends
            with `EXIT_STALLED` (env ``KERAS_SEQ_STEP_TIMEOUT``; default 600; 0 disables it).
        first_step_timeout: The same for the first step of each epoch, which also traces and
            compiles (default: 3 x step_timeout).

    Returns:
        A `keras.callbacks.History`; ``history.checkpoint_seconds`` lists the save times.
    """
    import tensorflow as tf
    from keras import ops

    if step_timeout is None:
        step_timeout = float(os.environ.get("KERAS_SEQ_STEP_TIMEOUT", 600))
    first_step_timeout = first_step_timeout or 3 * step_timeout
    callbacks = list(callbacks or [])
    backups = [c for c in callbacks if isinstance(c, keras.callbacks.BackupAndRestore)]
    others = [c for c in callbacks if not isinstance(c, keras.callbacks.BackupAndRestore)]
    _, _, _, is_chief = task_info() if is_multiworker(strategy) else (None, 0, 1, True)
    checkpoints = None
    if backups:
        b = backups[0]
        checkpoints = _Checkpoints(b.backup_dir, b.save_freq, is_chief)

    optimizer = model.optimizer
    loss_fn = _per_element_loss(model.loss)
    replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        if not model.built:
            x0, _ = next(iter(dataset.take(1)))
            model(x0)
        if not optimizer.built:
            optimizer.build(model.trainable_variables)

    dist_train = strategy.experimental_distribute_dataset(dataset)
    dist_val = strategy.experimental_distribute_dataset(validation_data) if validation_data is not None else None

    def losses(x, y, training):
        y_pred = model(x, training=training)
        values, weights = loss_fn(y, y_pred)
        return ops.sum(values), ops.sum(weights)

    def replica_train(x, y):
        ctx = tf.distribute.get_replica_context()
        with tf.GradientTape() as tape:
            total, count = losses(x, y, True)
            global_count = ctx.all_reduce(tf.distribute.ReduceOp.SUM, count)
            loss = total / ops.maximum(global_count, 1.0)
            if model.losses:
                loss = loss + ops.sum(model.losses) / replicas
            scaled = optimizer.scale_loss(loss)
        variables = model.trainable_variables
        grads = tape.gradient(scaled, variables)
        optimizer.apply_gradients(zip(grads, variables))  # sums the replicas' gradients
        return total, count

    def replica_eval(x, y):
        return losses(x, y, False)

    def reduced(fn, x, y):
        total, count = strategy.run(fn, args=(x, y))
        return (strategy.reduce(tf.distribute.ReduceOp.SUM, total, axis=None),
                strategy.reduce(tf.distribute.ReduceOp.SUM, count, axis=None))

    def train_on_next(iterator):
        # The batch is taken inside the function (as Keras's own train function does): no
        # Python round trip of the per-replica values; one trace for every batch shape.
        x, y = next(iterator)
        return reduced(replica_train, x, y)

    train_step = tf.function(train_on_next)
    eval_step = None
    if dist_val is not None:
        eval_step = tf.function(lambda x, y: reduced(replica_eval, x, y),
                                input_signature=list(dist_val.element_spec), reduce_retracing=True)

    callback_list = keras.callbacks.CallbackList(
        others, add_history=True, add_progbar=verbose != 0, verbose=verbose, epochs=epochs,
        steps=None, model=model,
    )
    initial_epoch, skip_steps, global_step = 0, 0, 0
    if checkpoints is not None:
        with strategy.scope():
            initial_epoch, skip_steps, global_step = checkpoints.load(model)
    model.stop_training = False
    watchdog = _Watchdog(step_timeout).start(first_step_timeout)
    callback_list.on_train_begin()
    logs, epoch = {}, initial_epoch
    try:
        # One iterator per finished epoch: the shuffle order of epoch k is that of the
        # uninterrupted run (tf.data draws a new shuffle seed at each iterator creation).
        for _ in range(initial_epoch):
            iter(dist_train)
        for epoch in range(initial_epoch, epochs):
            callback_list.on_epoch_begin(epoch)
            iterator = iter(dist_train)
            step = 0
            for _ in range(skip_steps if epoch == initial_epoch else 0):
                next(iterator)  # batches trained on before the interruption
                step += 1
            total, count = 0.0, 0.0
            watchdog.relax()
            while True:
                callback_list.on_train_batch_begin(step)
                try:
                    s, c = train_step(iterator)
                except (StopIteration, tf.errors.OutOfRangeError):
                    break
                total, count = total + float(s), count + float(c)
                watchdog.beat()
                step += 1
                global_step += 1
                logs = {"loss": total / max(count, 1.0)}
                callback_list.on_train_batch_end(step - 1, logs)
                if checkpoints is not None and checkpoints.save_freq and global_step % checkpoints.save_freq == 0:
                    checkpoints.save(model, epoch, step, global_step)
                if model.stop_training:
                    break
            logs = {"loss": total / max(count, 1.0)} if count else dict(logs)
            if eval_step is not None:
                watchdog.relax()
                v_total, v_count = 0.0, 0.0
                for x, y in dist_val:
                    s, c = eval_step(x, y)
                    v_total, v_count = v_total + float(s), v_count + float(c)
                    watchdog.beat()
                logs["val_loss"] = v_total / max(v_count, 1.0)
            if checkpoints is not None:
                checkpoints.save(model, epoch + 1, 0, global_step)
            logs["learning_rate"] = float(ops.convert_to_numpy(optimizer.learning_rate))
            watchdog.relax()
            callback_list.on_epoch_end(epoch, logs)
            watchdog.relax()
            if model.stop_training:
                break
    except _collective_errors() as e:
        if not is_multiworker(strategy):
            raise
        # A peer died (connection reset, heartbeat lost, ...). TensorFlow cannot run collectives
        # in this process any more ("Restart your program to reset"), and its shutdown would wait
        # on the dead peer: report and end the process.
        first = (str(e).strip().splitlines() or [""])[0][:300]
        _, task_id, workers, _ = task_info()
        print(f"\nkeras-seq: error: worker {task_id} of {workers} lost the cluster "
              f"({type(e).__name__}: {first}) in epoch {epoch + 1}: a worker has died or cannot be "
              "reached. Stopping; restart all workers with --resume to continue from the last "
              "checkpoint.", file=sys.stderr, flush=True)
        os._exit(EXIT_STALLED)
    finally:
        watchdog.stop()
    callback_list.on_train_end(logs)
    history = model.history
    history.checkpoint_seconds = checkpoints.seconds if checkpoints is not None else []
    return history


def _collective_errors():
    import tensorflow as tf

    return (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
            tf.errors.AbortedError, tf.errors.InternalError)


# ---------------------------------------------------------------------------------------------
# TPU readiness
# ---------------------------------------------------------------------------------------------


def check_tpu_constraints(model, dataset, steps=2):
    """Checks, on any device, what a TPU needs of a compiled model and its dataset:

    - every batch of `dataset` (its ``element_spec``) has a fully static shape (padded
      batches, ``drop_remainder=True``);
    - the model trains with ``jit_compile=True`` (XLA: no Python control flow on tensor values,
      no ops XLA cannot compile) for `steps` steps, with finite losses.

    The check trains `model` for `steps` steps (its weights change) and leaves it with
    ``jit_compile=True``. Returns the list of losses; raises ValueError naming the first violation.
    """
    import tensorflow as tf

    for spec in tf.nest.flatten(dataset.element_spec):
        if not spec.shape.is_fully_defined():
            raise ValueError(f"TPU: a batch component has a dynamic shape {spec.shape} "
                             "(pad to one length and batch with drop_remainder=True)")
    model.jit_compile = True
    model.make_train_function(force=True)
    history = model.fit(dataset.take(steps), epochs=1, verbose=0)
    loss = history.history["loss"]
    if not all(map(lambda v: v == v and abs(v) != float("inf"), loss)):
        raise ValueError(f"TPU: the XLA-compiled training step gave a non-finite loss {loss}")
    return loss
