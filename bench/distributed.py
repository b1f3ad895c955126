"""Benchmark: G2P training throughput under tf.distribute on this machine's CPUs, and the cost of a checkpoint.

    python bench/distributed.py [--words 20000 --batch 128 --units 64 --epochs 1]

One subprocess per configuration (devices and TF_CONFIG must be set before TensorFlow starts),
run one after another: 1 device (`model.fit`), `MirroredStrategy` over 2 logical CPU devices
(`model.fit`), `MultiWorkerMirroredStrategy` with 1 worker and with 2 worker processes on
127.0.0.1 (the custom `strategy.run` loop of `keras_seq.distribute`). Data: the synthetic
reverse-spelling task (`reverse_task`, words of 3-9 letters) through `keras_seq.g2p.train.train`
(bucketed batches, Adam, 2000 dev words for val_loss, 100 of them decoded for dev scores). Throughput: global samples per second over
the steps after the first `--skip` ones (tracing and XLA compilation excluded). Checkpoint cost:
the median time of one backup save (weights + optimizer state, atomic) in the run.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

WORKER = r'''
import json, os, sys, time, statistics
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
cfg = json.loads(sys.argv[1])
if cfg["devices"] > 1:
    import tensorflow as tf
    tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                               [tf.config.LogicalDeviceConfiguration()] * cfg["devices"])
import keras
from keras_seq.g2p.data import reverse_task
from keras_seq.g2p.train import train, Backup
from keras_seq import distribute

class Clock(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []
    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())

clock = Clock()
saves = []
orig = distribute._Checkpoints.save
def timed(self, *a, **k):
    t = time.perf_counter(); orig(self, *a, **k); saves.append(time.perf_counter() - t)
distribute._Checkpoints.save = timed
orig_backup = Backup._save_model
def timed_backup(self):
    t = time.perf_counter(); orig_backup(self); saves.append(time.perf_counter() - t)
Backup._save_model = timed_backup
g = train(reverse_task(cfg["words"], 3, 9, seed=0), reverse_task(2000, 3, 9, seed=1), out_dir=cfg["out"],
          epochs=cfg["epochs"], batch_size=cfg["batch"], units=cfg["units"], embedding_dim=32,
          strategy=cfg["strategy"], verbose=0, overwrite=True, dev_words=100, checkpoint_steps=cfg["ckpt"],
          lr_schedule="constant", callbacks=[clock])
t = clock.times[cfg["skip"]:]
steps = len(t) - 1
print("RESULT", json.dumps(dict(steps=steps, seconds=t[-1] - t[0], samples_per_s=steps * cfg["batch"] / (t[-1] - t[0]),
                                saves=len(saves), save_s=statistics.median(saves) if saves else None)), flush=True)
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(name, cfg, workers=1, devices=1):
    tmp = tempfile.mkdtemp(prefix=f"ks-bench-{name}-")
    script = os.path.join(tmp, "worker.py")
    with open(script, "w") as f:
        f.write(WORKER)
    cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(workers)]}
    procs = []
    start = time.time()
    for i in range(workers):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        env.pop("TF_CONFIG", None)
        if workers > 1:
            env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        c = dict(cfg, devices=devices, out=os.path.join(tmp, "run"))
        procs.append(subprocess.Popen([sys.executable, script, json.dumps(c)], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate()[0] for p in procs]
    wall = time.time() - start
    for p, out in zip(procs, outs):
        if p.returncode:
            sys.exit(f"{name} failed:\n{out[-3000:]}")
    result = json.loads([line for line in outs[0].splitlines() if line.startswith("RESULT ")][-1][7:])
    result["wall_s"] = wall
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--words", type=int, default=20000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--skip", type=int, default=10, help="steps left out of the timing (tracing, compilation)")
    p.add_argument("--checkpoint-steps", type=int, default=50)
    p.add_argument("--only", nargs="*", default=None)
    args = p.parse_args()
    cfg = dict(words=args.words, batch=args.batch, units=args.units, epochs=args.epochs, skip=args.skip,
               ckpt=args.checkpoint_steps)
    configs = [
        ("1 device (fit)", dict(cfg, strategy="default"), 1, 1),
        ("MirroredStrategy, 2 logical CPUs (fit)", dict(cfg, strategy="mirrored"), 1, 2),
        ("MultiWorkerMirrored, 1 worker (custom loop)", dict(cfg, strategy="multiworker"), 1, 1),
        ("MultiWorkerMirrored, 2 workers on 127.0.0.1 (custom loop)", dict(cfg, strategy="multiworker"), 2, 1),
    ]
    print(f"| configuration | samples/s | timed steps | wall s (process start to end) | checkpoint save (median s) |")
    print("|---|---|---|---|---|")
    for i, (name, c, workers, devices) in enumerate(configs):
        if args.only and str(i) not in args.only:
            continue
        r = run(f"c{i}", c, workers, devices)
        save = f"{r['save_s']:.3f} ({r['saves']} saves)" if r["save_s"] is not None else "-"
        print(f"| {name} | {r['samples_per_s']:.0f} | {r['steps']} | {r['wall_s']:.0f} | {save} |", flush=True)


if __name__ == "__main__":
    main()
