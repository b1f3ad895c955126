"""One training loop for every encoder-decoder application: `train(application, config, ...)`.

- **Data.** ``train_examples`` / ``dev_examples`` are ``[(source, [target tokens, ...]), ...]``
  (the application read them). Without dev examples 5% of the sources are split off by a hash
  of the source. One training example per (source, target) pair, teacher-forced: decoder inputs
  ``[<s>, y1..yn]``, labels ``[y1..yn, </s>]``. Pairs whose source has more than
  ``max_input_length`` tokens are left out, with a message that says how many.
- **Pipeline.** `tf.data` (`keras_seq.training.data.make_dataset`, on either backend): shuffled
  every epoch, grouped by source length and padded per batch (on JAX, padded to fixed lengths
  per length bucket: one compiled step per bucket, all compiled in the first epoch);
  ``batch_size`` is the *global* batch.
- **Loss.** `SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)`: pads are masked.
- **Optimizer and learning rate.** Adam, the same step on TensorFlow and JAX either way
  (``optimizer``: ``"adam"``, `keras_seq.models.SliceAdam`, Keras's Adam as TensorFlow runs it,
  whose step is larger for an embedding row seen several times in a batch, reproduced on JAX;
  or ``"adam-dense"``, `keras_seq.models.Adam`, Adam's step from the summed gradient; each
  weight's gradient clipped to the norm ``clipnorm``) with a
  per-epoch schedule: ``"decay"`` keeps ``learning_rate`` for the first 40% of the epochs, then
  decays it geometrically to 5% of it at the last epoch, at most halving it from one epoch to the
  next (so a short run keeps a useful rate: 2 epochs train at 1x then 0.5x); ``"plateau"``
  halves it when the dev loss stops improving; ``"constant"``. ``decay`` is a pure function of
  the epoch, so a resumed run follows exactly the schedule of an uninterrupted one.
- **Outputs in ``out``.** The application's model directory of the epoch with the best first dev
  metric (the last epoch without dev data), rewritten when it improves; ``last/`` (the last
  finished epoch); ``epochs/epoch-K`` with ``keep_epochs``; ``backup/`` (weights, optimizer,
  epoch, written atomically every epoch and every ``checkpoint_steps`` steps); ``metrics.csv``
  (one row per epoch: loss, val_loss, the dev metrics, seconds, learning rate, elapsed);
  ``settings.json`` (the `TrainingConfig`); ``run.json`` (progress: epochs done, best epoch,
  finished or not).
- **Resume.** ``resume=True`` continues the run in ``out`` from its last backup (the epoch it
  stopped in restarts from its start); a run whose model settings, training data or vocabularies
  differ is refused. Without ``resume`` an existing run is refused unless ``overwrite=True``.
- **Distribution and precision.** ``strategy`` names a `keras_seq.distribute` strategy (the
  model, optimizer and metrics are created under its scope; "multiworker" trains with its custom
  loop; on JAX, "data-parallel" and "tpu" are `keras.distribution.DataParallel`, under which
  `fit` also runs); ``precision`` sets Keras's dtype policy while the model is built (restored
  after). "tpu" implies ``static_shapes``: full batches of fixed shapes (on JAX one per length
  bucket, on TensorFlow one for all batches).
- **Backends.** The same loop on TensorFlow and JAX; dev scores decode with the model's own
  backend (`jax.jit` on JAX). The run directory does not depend on the backend.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import keras
import numpy as np

from keras_seq import distribute as _distribute
from keras_seq.models.optimizers import Adam, SliceAdam
from keras_seq.text import PAD_ID, Vocabulary, make_teacher_forcing_arrays, split_text
from keras_seq.training.callbacks import (
    BACKUP_DIR,
    EPOCHS_DIR,
    LAST_DIR,
    METRICS_FILE,
    RUN_FILE,
    Backup,
    DevScores,
    MetricsCSV,
    SaveModel,
    read_metrics,
    write_json,
)
from keras_seq.training.data import fixed_subset, make_dataset, trim_to_common_length

__all__ = ["RunExistsError", "SETTINGS_FILE", "train", "decay_schedule", "hash_split_examples", "describe_source"]

SETTINGS_FILE = "settings.json"
_OPTIMIZERS = {"adam": SliceAdam, "adam-dense": Adam}  # TrainingConfig.optimizer
_TEXT_SETTINGS = ("source_split", "target_split", "lowercase")


class RunExistsError(ValueError):
    """`out` holds a run that the requested training must not silently replace."""


def describe_source(source):
    """How settings.json names a data source: a resolved path, or a digest of in-memory examples."""
    if isinstance(source, (list, tuple)):
        digest = hashlib.md5(repr(list(source)[:1000]).encode()).hexdigest()[:12]
        return f"<{len(source)} examples, md5 {digest}>"
    return str(Path(source).resolve()) if source not in (None, "cmudict") else source


def hash_split_examples(examples, fraction=0.05, salt="keras-seq-dev"):
    """(train, dev): `fraction` of the sources (chosen by a hash of the source) in dev."""
    def unit(source):
        return int(hashlib.md5((salt + str(source)).encode("utf-8")).hexdigest()[:8], 16) / 16**8

    train = [e for e in examples if unit(e[0]) >= fraction]
    dev = [e for e in examples if unit(e[0]) < fraction]
    return train, dev


def decay_schedule(learning_rate, epochs, hold=0.4, final=0.05, slowest=0.5):
    """`learning_rate` for the first `hold` of the epochs, then a geometric decay reaching
    `final` times it at the last epoch, and never faster than `slowest` per epoch."""
    hold_epochs = max(1, int(round(hold * epochs)))
    decay_epochs = epochs - hold_epochs
    per_epoch = max(final ** (1.0 / decay_epochs), slowest) if decay_epochs > 0 else 1.0

    def schedule(epoch, lr=None):
        if epoch < hold_epochs:
            return float(learning_rate)
        return float(learning_rate * per_epoch ** (epoch - hold_epochs + 1))

    return schedule


def _prepare_out_dir(out_dir, application_cls, config, described, resume, overwrite):
    """Checks `out_dir` against the requested run; returns the previous run state or None."""
    out_dir = Path(out_dir)
    run_file = out_dir / RUN_FILE
    previous = json.loads(run_file.read_text()) if run_file.exists() else None
    model_files = (application_cls.SETTINGS_FILE, application_cls.MODEL_FILE, application_cls.SOURCE_FILE,
                   application_cls.TARGET_FILE)
    occupied = previous is not None or (out_dir / application_cls.SETTINGS_FILE).exists() or (out_dir / BACKUP_DIR).exists()
    if overwrite and occupied:
        for name in (RUN_FILE, METRICS_FILE, SETTINGS_FILE, *model_files):
            if (out_dir / name).exists():
                (out_dir / name).unlink()
        for name in (BACKUP_DIR, LAST_DIR, EPOCHS_DIR):
            shutil.rmtree(out_dir / name, ignore_errors=True)
        return None
    if not resume:
        if occupied:
            what = "a finished" if previous and previous.get("finished") else "an unfinished"
            raise RunExistsError(f"{out_dir} already holds {what} training run; pass --resume (resume=True) to "
                                 "continue it or --overwrite (overwrite=True) to start over")
        return None
    if previous is None:
        if occupied:
            raise RunExistsError(f"{out_dir} holds a model but no {RUN_FILE}: cannot resume it; use --overwrite")
        return None  # nothing to resume: a fresh run
    saved = previous.get("settings") or {}
    if (out_dir / SETTINGS_FILE).exists():
        saved = json.loads((out_dir / SETTINGS_FILE).read_text())
    defaults = type(config)()
    wanted = {**config.model_settings(), "train": described["train"]}
    diffs = []
    for key, value in wanted.items():
        if key == "train":  # run.json says which data trained the run; older runs said train_source
            before = (previous.get("data") or {}).get("train", saved.get("train_source"))
        else:  # a run saved before a setting existed ran with its default
            before = saved.get(key, getattr(defaults, key, None))
        if before != value:
            diffs.append(f"{key}={before!r} (asked {value!r})")
    if diffs:
        raise RunExistsError(f"{out_dir} holds a different run ({'; '.join(diffs)}); use --overwrite or another --out")
    if previous.get("finished") and previous.get("epochs_done", 0) >= config.epochs:
        raise RunExistsError(f"{out_dir} holds a run that finished {previous['epochs_done']} epochs; ask for more "
                             "epochs than that to continue it")
    return previous


def _split_too_long(examples, application_cls, config, text, what, verbose):
    """(kept, left out): examples whose source the model can read, and the others (with a message)."""
    kept, left = [], []
    for example in examples:
        n = len(split_text(example[0], text["source_split"], text["lowercase"]))
        (kept if n <= config.max_input_length else left).append(example)
    if left and verbose:
        longest = max(left, key=lambda e: len(e[0]))[0]
        print(f"{len(left)} {what} pairs have a source longer than max_input_length={config.max_input_length} and are "
              f"left out (longest: {longest[:40]!r}); raise --max-input-length to keep them")
    return kept, left


def train(application_cls, config, train_examples, dev_examples=None, *, callbacks=None, verbose=1,
          sources=None):
    """Trains `application_cls` (a `keras_seq.seq2seq.TextSeq2Seq` class) as `config` says.

    Args:
        application_cls: `TextSeq2Seq` or a subclass (`keras_seq.g2p.G2P`).
        config: A `TrainingConfig` (or subclass).
        train_examples, dev_examples: ``[(source, [target tokens, ...]), ...]``; without dev
            examples, 5% of the training sources by hash.
        callbacks: More Keras callbacks. verbose: `model.fit` verbosity.
        sources: ``{"train": ..., "dev": ...}`` descriptions of the data for settings.json
            (default: `describe_source` of ``config.train`` / ``config.dev``).

    Returns:
        The trained application object (weights of the epoch with the best first dev metric).

    Raises:
        ValueError (bad data or settings), RunExistsError (see the module docstring).
    """
    if config.out is None:
        raise ValueError("config.out (the run directory) is required")
    out_dir = _distribute.worker_dir(config.out, config.strategy)  # a non-chief worker: out/.worker-N
    described = sources or {"train": describe_source(config.train), "dev": describe_source(config.dev)}
    text = application_cls.tokenization(**{k: getattr(config, k) for k in _TEXT_SETTINGS if hasattr(config, k)})

    train_examples = list(train_examples)
    dev_examples = list(dev_examples) if dev_examples is not None else None
    if dev_examples is None:
        train_examples, dev_examples = hash_split_examples(train_examples)
    if config.max_train_examples is not None and config.max_train_examples < len(train_examples):
        pick = np.random.default_rng(config.seed).choice(len(train_examples), config.max_train_examples, replace=False)
        train_examples = [train_examples[i] for i in sorted(pick)]
    train_examples, _ = _split_too_long(train_examples, application_cls, config, text, "training", verbose)
    dev_examples, _ = _split_too_long(dev_examples, application_cls, config, text, "dev", verbose)
    if not train_examples:
        raise ValueError("no training data")

    previous = _prepare_out_dir(out_dir, application_cls, config, described, config.resume, config.overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)

    keras.utils.set_random_seed(config.seed)
    distribution = _distribute.make_strategy(config.strategy, tpu=config.tpu)
    if config.batch_size % distribution.num_replicas_in_sync:
        raise ValueError(f"the global batch size {config.batch_size} does not split evenly across "
                         f"{distribution.num_replicas_in_sync} replicas")
    old_policy = keras.config.dtype_policy()
    keras.mixed_precision.set_dtype_policy(config.precision)
    try:
        with distribution.scope():
            app = application_cls.create(
                train_examples, max_input_length=config.max_input_length, beam_width=config.beam_width,
                **{k: v for k, v in text.items() if k not in application_cls.FIXED_SETTINGS},
                units=config.units, embedding_dim=config.embedding_dim, cell=config.cell,
                encoder_layers=config.encoder_layers, decoder_layers=config.decoder_layers,
                bidirectional_encoder=bool(config.bidirectional), attention=bool(config.attention),
                dropout=config.dropout, candidate_activation=config.candidate_activation,
                scheduled_sampling=config.scheduled_sampling, context_every_step=bool(config.context_every_step),
                **application_cls.settings_from_config(config),
            )
            if previous is not None:  # the vocabularies of a resumed run are those it started with
                for name, vocab in [(application_cls.SOURCE_FILE, app.source_vocabulary),
                                    (application_cls.TARGET_FILE, app.target_vocabulary)]:
                    saved = out_dir / name
                    if saved.exists() and Vocabulary.load(saved) != vocab:
                        raise RunExistsError(f"{out_dir} was trained with another vocabulary ({name}); use --overwrite")
            app.model.compile(
                optimizer=_OPTIMIZERS[config.optimizer](config.learning_rate, clipnorm=config.clipnorm or None),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID),
            )
    finally:
        keras.mixed_precision.set_dtype_policy(old_policy)

    def arrays(examples):
        return make_teacher_forcing_arrays(
            examples, app.source_vocabulary, app.target_vocabulary, split=text["source_split"],
            lowercase=text["lowercase"], max_input_length=config.max_input_length,
            max_output_length=app.model.max_output_length - 1, truncate=True,
        )

    train_arrays = arrays(train_examples)
    dev_arrays = arrays(dev_examples) if dev_examples else None
    # JAX compiles one program per batch shape: length buckets of fixed sizes (a few shapes, all
    # seen in the first epoch). TensorFlow's traced step takes any shape: per-batch padding.
    fixed = keras.backend.backend() != "tensorflow"
    # Static shapes (TPUs): full batches of fixed shapes. On JAX those are the fixed-size length
    # buckets, each compiled once; on TensorFlow one shape for all batches, since Keras's traced
    # step (reduce_retracing) turns a step traced for several shapes into one of dynamic shape.
    one_shape = config.static_shapes and not fixed
    if one_shape:  # train and dev padded to the same lengths: one traced step each
        train_arrays, dev_arrays = trim_to_common_length(train_arrays, dev_arrays)
    # Several replicas: every batch splits evenly (Keras 3.15 fails on uneven per-replica
    # batches with a masked loss), so partial batches are dropped, in training and for val_loss.
    replicas = distribution.num_replicas_in_sync
    even = replicas > 1
    train_ds = make_dataset(train_arrays, config.batch_size, shuffle=True, seed=config.seed, static_shapes=one_shape,
                            drop_remainder=even or config.static_shapes, fixed_lengths=fixed)
    dev_ds = None
    if dev_arrays is not None:
        n_dev = len(dev_arrays["labels"])
        dev_batch = min(config.batch_size, n_dev - n_dev % replicas) if even else max(config.batch_size, 256)
        if dev_batch > 0:
            dev_ds = make_dataset(dev_arrays, dev_batch, static_shapes=one_shape, drop_remainder=even,
                                  fixed_lengths=fixed)

    state = dict(previous or {})
    state.pop("settings", None)  # settings.json holds them
    state.update(finished=False, train_examples=len(train_examples), dev_examples_total=len(dev_examples or []),
                 data=described)
    state.setdefault("epochs_done", 0)
    if previous is None:
        app.save(out_dir)  # the vocabularies, from the start
    config.write(out_dir / SETTINGS_FILE)
    write_json(out_dir / RUN_FILE, state)

    schedule = []
    if config.lr_schedule == "decay":
        schedule = [keras.callbacks.LearningRateScheduler(decay_schedule(config.learning_rate, config.epochs))]
    elif config.lr_schedule == "plateau":
        monitor = "val_loss" if dev_ds is not None else "loss"
        schedule = [keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=1,
                                                      min_lr=config.learning_rate / 64)]
    rows = read_metrics(out_dir / METRICS_FILE) if previous else []
    elapsed = float(rows[-1]["elapsed"]) if rows and rows[-1].get("elapsed") else 0.0
    cbs = [
        Backup(out_dir / BACKUP_DIR, save_steps=config.checkpoint_steps),
        *schedule,
        DevScores(app, fixed_subset(dev_examples or [], config.dev_examples)),
        SaveModel(app, out_dir, state, monitor_dev=bool(dev_examples), keep_epochs=config.keep_epochs),
        MetricsCSV(out_dir / METRICS_FILE, elapsed_offset=elapsed, metrics=application_cls.METRICS),
        *(callbacks or []),
    ]
    # model.fit, or under MultiWorkerMirroredStrategy a strategy.run loop (keras-team/keras#20585)
    _distribute.fit(app.model, distribution, train_ds, validation_data=dev_ds, epochs=config.epochs, callbacks=cbs,
                    verbose=verbose)

    state["finished"] = True
    write_json(out_dir / RUN_FILE, state)
    best = application_cls.load(out_dir)
    app.model.set_weights(best.model.get_weights())
    return app

