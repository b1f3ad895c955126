"""Keras callbacks of a training run: dev scores, metrics.csv, backup and the saved models."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
from pathlib import Path

import keras
import numpy as np

__all__ = ["DevScores", "MetricsCSV", "Backup", "SaveModel", "read_metrics", "write_json",
           "RUN_FILE", "METRICS_FILE", "BACKUP_DIR", "LAST_DIR", "EPOCHS_DIR"]

RUN_FILE, METRICS_FILE, BACKUP_DIR, LAST_DIR = "run.json", "metrics.csv", "backup", "last"
EPOCHS_DIR = "epochs"  # with keep_epochs: the last epochs' model directories


def metrics_columns(metrics):
    """The columns of metrics.csv for an application's dev metrics (e.g. ("wer", "per"))."""
    return ["epoch", "loss", "val_loss", *(f"dev_{m}" for m in metrics), "seconds", "learning_rate", "elapsed"]


class DevScores(keras.callbacks.Callback):
    """Adds the application's dev scores (``dev_<metric>``, greedy decoding of a fixed list of
    sources) to the epoch's logs."""

    def __init__(self, application, examples, batch_size=512):
        super().__init__()
        self.application, self.examples, self.batch_size = application, list(examples), batch_size

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or not self.examples:
            return
        sources = [source for source, _ in self.examples]
        hyps = [r[0][0] for r in self.application.predict_tokens(sources, method="greedy", batch_size=self.batch_size)]
        scores = self.application.score(hyps, [refs for _, refs in self.examples])
        logs.update({f"dev_{name}": value for name, value in scores.items()})


class MetricsCSV(keras.callbacks.Callback):
    """Writes `metrics.csv` (`metrics_columns`), one row per epoch, rewritten atomically.

    Rows of the epoch being written and of later epochs are replaced, so a resumed run leaves
    exactly one row per epoch.
    """

    def __init__(self, path, elapsed_offset=0.0, metrics=("wer", "per")):
        super().__init__()
        self.path = Path(path)
        self.columns = metrics_columns(metrics)
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
            **{c: logs.get(c) for c in self.columns if c.startswith("dev_")},
            "seconds": now - self._epoch_start,
            "learning_rate": lr,
        }
        row["elapsed"] = previous + row["seconds"]
        rows.append({k: _fmt(v) for k, v in row.items()})
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns)
            writer.writeheader()
            for r in rows:
                writer.writerow({k: r.get(k, "") for k in self.columns})
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


class SaveModel(keras.callbacks.Callback):
    """Saves the model directory every epoch (`last/`), when the first dev metric improves
    (`out_dir`), and with `keep_epochs` the last epochs' own directories (`epochs/epoch-N`, for
    `average`). Writes the run's progress to run.json."""

    def __init__(self, application, out_dir, run_state, monitor_dev, keep_epochs=0):
        super().__init__()
        self.application, self.out_dir, self.state, self.monitor_dev = application, Path(out_dir), run_state, monitor_dev
        self.keep_epochs = keep_epochs
        self.monitor = f"dev_{application.METRICS[0]}"

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.application.save(self.out_dir / LAST_DIR)
        if self.keep_epochs:
            epochs_dir = self.out_dir / EPOCHS_DIR
            self.application.save(epochs_dir / f"epoch-{epoch + 1}")
            for old in sorted(epochs_dir.glob("epoch-*"), key=lambda p: int(p.name.split("-")[1]))[: -self.keep_epochs]:
                shutil.rmtree(old)
        value = logs.get(self.monitor)
        best = self.state.get(f"best_{self.monitor}")
        if not self.monitor_dev or value is None or best is None or value <= best:
            self.application.save(self.out_dir)
            self.state["best_epoch"] = epoch + 1
            if value is not None:
                self.state[f"best_{self.monitor}"] = float(value)
        self.state["epochs_done"] = epoch + 1
        write_json(self.out_dir / RUN_FILE, self.state)


def write_json(path, data):
    """Writes `data` as JSON to `path` atomically (a temporary file, then a rename)."""
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
