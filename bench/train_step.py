"""Benchmark: training-step time of the G2P model per Keras backend, through `keras-seq train g2p`'s loop.

    python bench/train_step.py [--words 3840 --batch 128 --units 256 --epochs 2 --rounds 2
                                --backends tensorflow,jax --static-shapes]

One subprocess per (round, backend), the backends alternating (A B A B: the shared cores' load
falls on both), each running `keras_seq.g2p.train.train` (the CLI's training loop: the same
tf.data pipeline, model, Adam and callbacks; dev scoring off) on the first `--words` words of
CMUdict's training split (/work/shared/data/g2p, else the synthetic reverse task). The step
time is the median wall time between consecutive batch ends of the *last* epoch (every batch
shape has been compiled by then; `--epochs 1` would time compilation too); "epoch s" is that
epoch's wall time, compilations of shapes first seen in it included.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path("/work/shared/data/g2p/cmudict-0.7b.train-dev-20-21")

CHILD = r'''
import json, sys, time
cfg = json.loads(sys.argv[1])
import keras
from keras_seq.g2p.data import reverse_task
from keras_seq.g2p.train import load_source, train

class Clock(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.times, self.start = [time.perf_counter()], time.perf_counter()
    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())
    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.start

source = load_source(cfg["data"])[: cfg["words"]] if cfg["data"] else reverse_task(cfg["words"], 3, 9, seed=0)
clock = Clock()
t = time.perf_counter()
train(source, source[:256], out_dir=cfg["out"], epochs=cfg["epochs"], batch_size=cfg["batch"], units=cfg["units"],
      embedding_dim=64, attention=cfg["attention"], dev_words=0, lr_schedule="constant", static_shapes=cfg["static"],
      verbose=0, overwrite=True, callbacks=[clock])
steps = [b - a for a, b in zip(clock.times, clock.times[1:])]
print("RESULT" + json.dumps({"backend": keras.backend.backend(), "median_ms": 1000 * sorted(steps)[len(steps) // 2],
                             "steps": len(steps), "epoch_s": clock.seconds, "wall_s": time.perf_counter() - t}))
'''


def run(backend, cfg, child=CHILD):
    """The RESULT dict that `child` (Python source, given `cfg` as JSON in argv[1]) prints, run in
    a fresh process on `backend` (CPU)."""
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", child, json.dumps(cfg)], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{backend} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.split("RESULT", 1)[1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--words", type=int, default=3840)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--units", type=int, default=256)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--attention", action="store_true")
    p.add_argument("--static-shapes", action="store_true")
    p.add_argument("--backends", default="tensorflow,jax")
    args = p.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for backend in args.backends.split(","):
                cfg = dict(words=args.words, batch=args.batch, units=args.units, epochs=args.epochs,
                           attention=args.attention, static=args.static_shapes, out=f"{tmp}/{backend}-{r}",
                           data=str(DATA) if DATA.exists() else None)
                result = run(backend, cfg)
                print(json.dumps(result), flush=True)
                results.setdefault(backend, []).append(result)
    print("\n| backend | step ms (median of last epoch, per round) | steps | last epoch s | wall s |")
    print("|---|---|---:|---|---|")
    for backend, rs in results.items():
        cells = [" / ".join(fmt.format(x[key]) for x in rs)
                 for key, fmt in (("median_ms", "{:.0f}"), ("epoch_s", "{:.1f}"), ("wall_s", "{:.0f}"))]
        print(f"| {backend} | {cells[0]} | {rs[0]['steps']} | {cells[1]} | {cells[2]} |")
    if len(results) == 2:
        (a, ra), (b, rb) = results.items()
        ratio = statistics.median(x["median_ms"] for x in rb) / statistics.median(x["median_ms"] for x in ra)
        print(f"\n{b} / {a} step time: {ratio:.2f}x")


if __name__ == "__main__":
    main()
