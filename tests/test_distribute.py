"""Distributed training with the real engines on CPU (`keras_seq.distribute`, `keras_seq.g2p.train`).

Every training run is a subprocess (device configuration, `TF_CONFIG` and the backend must be
set before TensorFlow or JAX start). The default runs are launched together, once per module
(`runs` fixture), on a tiny reverse-spelling task with words of one length (so every example
has the same number of target tokens, and the mean loss of `fit` under a strategy equals the
global mean of the custom loop), static shapes, no gradient clipping and a constant learning
rate. The runs:

    ref       1 device, model.fit                      (the reference)
    mirrored  MirroredStrategy over 2 logical CPUs, model.fit
    mw0, mw1  MultiWorkerMirroredStrategy, 2 worker processes on 127.0.0.1 (custom loop)
    bf16      1 device, mixed_bfloat16
    jax       KERAS_BACKEND=jax, 2 host devices, strategy data-parallel: keras.distribution.DataParallel
    kill      custom loop, SIGKILLed mid-epoch, then resumed; and its uninterrupted twin
    dead      2 workers, one SIGKILLed: the other must stop with a clear error and EXIT_STALLED
              (run through the CLI's `train_main`, which maps WorkerStalledError to the exit code)

Slow tests (``-m slow``) add: restarting both workers after a death resumes from the chief's
checkpoint and finishes; two epochs with a mid-epoch kill of a 2-worker run.
"""

import json
import os
import py_compile
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

WORKER = r'''
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
cfg = json.loads(sys.argv[1])
if cfg.get("devices", 1) > 1 and os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cfg["devices"])
import numpy as np
import keras
from keras_seq.g2p.data import reverse_task
import keras_seq.g2p.train as g2p_train
import keras_seq.training.loop as training_loop
from keras_seq.g2p.train import train

if not cfg.get("shuffle", True):
    # The same global batches in every run: under MirroredStrategy, model.fit creates one more
    # iterator of the dataset before the first epoch (its symbolic build), which draws another
    # tf.data reshuffle seed, so its epochs see other (equally valid) orders than on one device.
    make_dataset = training_loop.make_dataset
    training_loop.make_dataset = lambda arrays, batch, shuffle=False, **kw: make_dataset(arrays, batch, shuffle=False, **kw)

class Slow(keras.callbacks.Callback):  # gives a test time to kill the run mid-epoch
    def on_train_batch_end(self, batch, logs=None):
        time.sleep(cfg.get("sleep", 0))

class Steps(keras.callbacks.Callback):  # one line per step: epoch, step, loss
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
    def on_train_batch_end(self, batch, logs=None):
        print("STEP", self.epoch, batch, logs.get("loss"), flush=True)

def run(*args, **kwargs):
    return train(reverse_task(cfg.get("words", 256), 4, 4, seed=0), reverse_task(32, 4, 4, seed=1), out_dir=cfg["out"],
                 epochs=cfg.get("epochs", 1), batch_size=cfg.get("batch", 32), units=16, embedding_dim=8,
                 strategy=cfg.get("strategy"), precision=cfg.get("precision", "float32"), verbose=2,
                 static_shapes=True, overwrite=not cfg.get("resume"), resume=cfg.get("resume", False),
                 checkpoint_steps=cfg.get("checkpoint_steps"), dev_words=cfg.get("dev_words", 0), clipnorm=None,
                 lr_schedule="constant", learning_rate=cfg.get("lr", 1e-2), seed=0,
                 callbacks=[Slow(), Steps()])

t = time.time()
if cfg.get("cli"):  # through `keras-seq train`'s handler (its errors and exit codes), with this run's settings
    from keras_seq.cli import tasks as cli
    trained = []
    g2p_train.train = lambda *args, **kwargs: trained.append(run()) or trained[0]
    rc = cli.train_main(["reverse", "--out", cfg["out"]])
    if rc:
        sys.exit(rc)
    g = trained[0]
else:
    g = run()
if cfg.get("weights"):
    np.savez(cfg["weights"], *g.model.get_weights())
print("DEVICES", len(keras.distribution.list_devices()) if keras.backend.backend() == "jax" else "tf")
print("TRAINED", round(time.time() - t, 1), flush=True)
'''


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster(n):
    return {"worker": [f"127.0.0.1:{_free_port()}" for _ in range(n)]}


class Run:
    """A training subprocess (its log in `log`)."""

    def __init__(self, tmp, name, cfg, env=None):
        self.name, self.cfg = name, dict(cfg)
        self.cfg.setdefault("out", str(tmp / name))
        self.cfg.setdefault("weights", str(tmp / f"{name}.npz"))
        self.log = tmp / f"{name}.log"
        script = tmp / "worker.py"
        if not script.exists():
            script.write_text(WORKER)
        full_env = dict(os.environ)
        full_env.pop("TF_CONFIG", None)
        full_env.setdefault("KERAS_BACKEND", "tensorflow")
        full_env.update(env or {})
        full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), json.dumps(self.cfg)], env=full_env,
            stdout=open(self.log, "w"), stderr=subprocess.STDOUT, cwd=str(tmp),
        )

    def wait(self, timeout=600):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"{self.name} did not finish in {timeout} s:\n{self.text()[-3000:]}")

    def text(self):
        return self.log.read_text() if self.log.exists() else ""

    def ok(self, timeout=600):
        rc = self.wait(timeout)
        assert rc == 0 and "TRAINED" in self.text(), f"{self.name} failed (rc {rc}):\n{self.text()[-4000:]}"
        return self

    def weights(self):
        data = np.load(self.cfg["weights"])
        return [data[f"arr_{i}"] for i in range(len(data.files))]

    def steps(self):
        out = []
        for line in self.text().splitlines():
            if line.startswith("STEP "):
                _, e, b, loss = line.split()
                out.append((int(e), int(b), float(loss)))
        return out

    def metrics(self):
        import csv

        with open(Path(self.cfg["out"]) / "metrics.csv") as f:
            return list(csv.DictReader(f))


def _workers(tmp, name, n, cfg, env=None):
    cluster = _cluster(n)
    runs = []
    for i in range(n):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        runs.append(Run(tmp, f"{name}{i}", dict(cfg, out=cfg.get("out", str(tmp / name))),
                        {**(env or {}), "TF_CONFIG": tf_config}))
    return runs


def _wait_for_checkpoint(path, proc, timeout=400, mid_epoch=True, min_step=1):
    """Waits until the backup metadata at `path` shows a (mid-epoch) checkpoint; returns it."""
    start = time.time()
    while time.time() - start < timeout:
        if proc.poll() is not None:
            raise AssertionError("the run ended before it was to be killed")
        if path.exists():
            try:
                meta = json.loads(path.read_text())
            except ValueError:
                meta = None
            if meta and meta.get("global_step", 0) >= min_step and (not mid_epoch or meta.get("steps_in_epoch")):
                return meta
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint in {timeout} s")


def _max_diff(a, b):
    assert len(a) == len(b)
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


SMALL = dict(words=256, batch=32, epochs=1, shuffle=False)  # 8 steps of 32 words, in a fixed order


# The runs below start ten training processes together on the machine's cores (about two minutes
# on two cores): they run with -m slow, so that the default suite stays under 15 minutes.
_RUNS_ARE_SLOW = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Launches the default runs together and waits for them (see the module docstring)."""
    tmp = tmp_path_factory.mktemp("distribute")
    r = {}
    r["ref"] = Run(tmp, "ref", dict(SMALL))
    r["mirrored"] = Run(tmp, "mirrored", dict(SMALL, strategy="mirrored", devices=2))
    r["mw0"], r["mw1"] = _workers(tmp, "mw", 2, dict(SMALL, strategy="multiworker"), {"KERAS_SEQ_STEP_TIMEOUT": "300"})
    r["bf16"] = Run(tmp, "bf16", dict(SMALL, precision="mixed_bfloat16"))
    # The weights' equality with one JAX device: tests/training/test_jax_training.py.
    r["jax"] = Run(tmp, "jax", dict(SMALL, devices=2, dev_words=0, strategy="data-parallel"), {
        "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"})
    # Kill-and-resume: the custom loop (one local worker), 2 epochs, a checkpoint every 3 steps.
    kill_cfg = dict(SMALL, epochs=2, strategy="multiworker", checkpoint_steps=3, shuffle=True)  # replayed order
    r["uninterrupted"] = Run(tmp, "uninterrupted", kill_cfg)
    killed = Run(tmp, "killed", dict(kill_cfg, sleep=0.4))
    meta = _wait_for_checkpoint(Path(killed.cfg["out"]) / "backup" / "training_metadata.json", killed.proc, min_step=4)
    killed.proc.send_signal(signal.SIGKILL)
    killed.wait(60)
    r["killed"], r["killed_meta"] = killed, meta
    r["resumed"] = Run(tmp, "resumed", dict(kill_cfg, out=killed.cfg["out"], resume=True))
    # A worker that dies: the other one must stop with a clear error, bounded in time.
    dead = _workers(tmp, "dead", 2, dict(SMALL, epochs=3, strategy="multiworker", checkpoint_steps=2, sleep=0.3, cli=True),
                    {"KERAS_SEQ_STEP_TIMEOUT": "40"})  # first steps: 120 s (they start while the others train)
    _wait_for_checkpoint(tmp / "dead" / "backup" / "training_metadata.json", dead[0].proc, min_step=2)
    dead[1].proc.send_signal(signal.SIGKILL)
    r["dead_killed_at"] = time.time()
    r["dead0"], r["dead1"] = dead
    r["tmp"] = tmp
    return r


@_RUNS_ARE_SLOW
def test_mirrored_two_logical_cpus_equals_one_device(runs):
    ref, mirrored = runs["ref"].ok(), runs["mirrored"].ok()
    assert _max_diff(ref.weights(), mirrored.weights()) < 1e-5
    assert len(mirrored.steps()) == len(ref.steps()) == 8


@_RUNS_ARE_SLOW
def test_multiworker_two_workers_equal_one_device(runs):
    ref, w0, w1 = runs["ref"].ok(), runs["mw0"].ok(), runs["mw1"].ok()
    assert _max_diff(w0.weights(), w1.weights()) == 0.0  # replicas stay in sync
    assert _max_diff(ref.weights(), w0.weights()) < 1e-5  # the custom loop equals fit on one device
    text = w0.text()
    assert "8/8 - " in text and "val_loss" in text  # fit's progress output (verbose=2) and logs
    out = Path(w0.cfg["out"])
    assert (out / "backup" / "latest.weights.h5").exists() and (out / "metrics.csv").exists()
    assert (out / ".worker-1").is_dir()  # the other worker writes aside (TensorFlow's convention)
    assert abs(float(w0.metrics()[0]["loss"]) - float(ref.metrics()[0]["loss"])) < 1e-4


@_RUNS_ARE_SLOW
def test_mixed_bfloat16_matches_float32(runs):
    """mixed_bfloat16 (bfloat16 compute, float32 variables) after 8 steps: loss within 2% of float32."""
    ref, bf16 = runs["ref"].ok(), runs["bf16"].ok()
    lf = [s[2] for s in ref.steps()]
    lb = [s[2] for s in bf16.steps()]
    assert len(lf) == len(lb) == 8
    assert abs(lb[-1] - lf[-1]) / lf[-1] < 0.02, (lf, lb)
    assert all(w.dtype == np.float32 for w in bf16.weights())  # variables stay float32
    assert _max_diff(ref.weights(), bf16.weights()) < 0.05


@_RUNS_ARE_SLOW
def test_jax_backend_data_parallel_on_two_devices(runs):
    jax_run = runs["jax"].ok()
    assert "DEVICES 2" in jax_run.text()
    losses = [s[2] for s in jax_run.steps()]
    assert len(losses) == 8 and all(np.isfinite(losses)) and losses[-1] < losses[0]


@_RUNS_ARE_SLOW
def test_kill_and_resume_equals_uninterrupted(runs):
    """SIGKILL mid-epoch, restart with resume: training continues at the saved step (same data
    order, the batches already trained on skipped) and ends with the uninterrupted run's weights."""
    ref, resumed = runs["uninterrupted"].ok(), runs["resumed"].ok()
    meta = runs["killed_meta"]  # the checkpoint the run was killed after
    assert 0 < meta["steps_in_epoch"] < 8  # mid-epoch
    killed_steps = runs["killed"].steps()
    assert len(killed_steps) >= meta["global_step"]  # it had trained at least up to the checkpoint
    steps = resumed.steps()
    assert (steps[0][0], steps[0][1]) == (meta["epoch"], meta["steps_in_epoch"])  # resumes at the saved step
    assert len(steps) == 16 - meta["global_step"]  # no step lost, none repeated
    saved = json.loads((Path(resumed.cfg["out"]) / "backup" / "training_metadata.json").read_text())
    assert saved["global_step"] == 16 and saved["epoch"] == 2
    assert _max_diff(ref.weights(), resumed.weights()) < 1e-6
    assert [int(r["epoch"]) for r in resumed.metrics()] == [1, 2]


@_RUNS_ARE_SLOW
def test_dead_worker_fails_clearly_not_hangs(runs):
    """The survivor's loop raises WorkerStalledError (a failed collective, or the watchdog);
    the CLI prints its one line and ends the process with EXIT_STALLED, without hanging."""
    from keras_seq.distribute import EXIT_STALLED

    survivor = runs["dead0"]
    rc = survivor.wait(300)
    waited = time.time() - runs["dead_killed_at"]
    text = survivor.text()
    assert rc == EXIT_STALLED, f"rc {rc}:\n{text[-3000:]}"
    assert "TRAINED" not in text
    assert "keras-seq train: error: " in text and "--resume" in text, text[-3000:]
    assert "did not finish in" in text or "lost the cluster" in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert waited < 300


@pytest.mark.slow
@_RUNS_ARE_SLOW
def test_dead_worker_then_restart_both_resumes(runs):
    survivor = runs["dead0"]
    survivor.wait(300)
    tmp = runs["tmp"]
    meta = json.loads((tmp / "dead" / "backup" / "training_metadata.json").read_text())
    again = _workers(tmp, "deadagain", 2, dict(SMALL, epochs=3, strategy="multiworker", checkpoint_steps=2,
                                               out=str(tmp / "dead"), resume=True), {"KERAS_SEQ_STEP_TIMEOUT": "300"})
    w0, w1 = [run.ok(900) for run in again]
    steps = w0.steps()
    assert steps[0][0] == meta["epoch"]  # resumed in the epoch of the checkpoint
    assert len(steps) == 24 - meta["global_step"]  # exactly the steps not yet trained
    assert _max_diff(w0.weights(), w1.weights()) == 0.0
    assert [int(r["epoch"]) for r in w0.metrics()] == [1, 2, 3]


# -------------------------------------------------------------------------------------------------
# In-process checks (no training subprocess)
# -------------------------------------------------------------------------------------------------


def test_strategy_names_and_worker_dirs(monkeypatch, tmp_path):
    from keras_seq import distribute

    assert distribute.STRATEGIES == ("default", "data-parallel", "mirrored", "multiworker", "tpu")
    with pytest.raises(ValueError, match="unknown strategy"):
        distribute.make_strategy("nccl")
    assert distribute.make_strategy("default").num_replicas_in_sync == 1
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.task_info() == ("worker", 0, 1, True)
    assert distribute.worker_dir(tmp_path, "multiworker") == tmp_path
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    assert distribute.task_info() == ("worker", 1, 2, False)
    assert distribute.worker_dir(tmp_path, "multiworker") == tmp_path / ".worker-1"
    assert distribute.worker_dir(tmp_path, "mirrored") == tmp_path
    assert distribute.chief_dir(tmp_path / ".worker-1" / "backup") == tmp_path / "backup"
    with pytest.raises(ValueError, match="unknown strategy"):
        distribute.worker_dir(tmp_path, "multi-worker")


def test_a_strategy_is_passed_by_name_only(tmp_path):
    """Configuration names a strategy; the object (made once by make_strategy) goes to fit only."""
    from keras_seq import distribute

    strategy = distribute.make_strategy(None)  # None: "default"
    with pytest.raises(TypeError, match="named by a string"):
        distribute.make_strategy(strategy)
    with pytest.raises(TypeError, match="named by a string"):
        distribute.worker_dir(tmp_path, strategy)


def test_cli_accepts_the_strategies():
    from keras_seq.cli import tasks as cli

    parser = cli._train_parser()
    for name in ("default", "data-parallel", "mirrored", "multiworker", "tpu"):
        args = parser.parse_args(["reverse", "--out", "x", "--strategy", name])
        assert args.strategy == name
        config = cli.from_arguments(parser.parse_args(["g2p", "--train", "t", "--out", "x", "--strategy", name]),
                                    cli.TASKS["g2p"])
        assert config.static_shapes == (name == "tpu")  # --strategy tpu implies --static-shapes
    with pytest.raises(SystemExit):
        parser.parse_args(["reverse", "--out", "x", "--strategy", "horovod"])


def test_tpu_constraints_static_shapes_and_jit_compile():
    """What the "tpu" path needs, checked on CPU: static batch shapes and an XLA-compiled step."""
    import keras

    from keras_seq import distribute
    from keras_seq.g2p.data import PAD_ID, reverse_task
    from keras_seq.g2p.model import G2P
    from keras_seq.g2p.train import _arrays, make_dataset

    lexicon = reverse_task(64, 3, 6, seed=0)
    g2p = G2P.create(lexicon, units=8, embedding_dim=4, max_input_length=8)
    g2p.model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID))
    arrays = _arrays(lexicon, g2p)
    with pytest.raises(ValueError, match="dynamic shape"):
        distribute.check_tpu_constraints(g2p.model, make_dataset(arrays, 16, shuffle=True))
    losses = distribute.check_tpu_constraints(g2p.model, make_dataset(arrays, 16, shuffle=True, static_shapes=True))
    assert len(losses) == 1 and np.isfinite(losses[0])


def test_gpu_check_script_syntax():
    script = ROOT / "bench" / "gpu_check.sh"
    assert script.exists()
    subprocess.run(["bash", "-n", str(script)], check=True)
    py_compile.compile(str(ROOT / "bench" / "gpu_check.py"), doraise=True)
    text = script.read_text()
    assert "--no-index --no-deps --target /tmp/site" in text and "KERAS_BACKEND=jax" in text


@pytest.mark.slow  # about a minute on 2 loaded cores: it compiles some 40 small jax.jit functions
def test_gpu_check_smoke_runs_on_cpu(tmp_path):
    """`bench/gpu_check.py --smoke` runs every code path of the GPU check on a CPU, in a fresh
    process under JAX without TensorFlow: the equivalence checks, and the comparison with cuDNN
    (Bidirectional, right-padded masks, inference and training), in which the book LSTM's outputs
    equal those of `jax.experimental.rnn`'s LSTM (its reference on a CPU) given the same lengths."""
    import re

    results = tmp_path / "RESULTS.md"
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--smoke", "--skip-bench", "--results", str(results)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = results.read_text()
    assert "(--smoke: tiny shapes, not a measurement)" in text and "NOT ON A GPU" in text
    for case in ["LSTM, no mask", "Bidirectional LSTM, right-padded mask", "Bidirectional GRU, right-padded mask"]:
        assert f"== {case}" in text
    diffs = [float(d) for d in re.findall(r"same weights: ([0-9.e+-]+) ==", text)]
    assert len(diffs) == 4 and max(diffs) < 1e-5, diffs
    rows = re.findall(r"\|\s+([0-9.]+)\s+[0-9.]+ \|\s+([0-9.]+)\s+[0-9.]+$", text, re.M)
    assert len(rows) == 19 and all(float(t) > 0 for row in rows for t in row), rows


def test_watchdog_makes_the_loop_raise_worker_stalled():
    """No step within the limit: the next step boundary (`beat`) raises WorkerStalledError with
    the one-line message; `on_stall` (the collectives' abort under multiworker) gets it at once."""
    from keras_seq.distribute import WorkerStalledError, _Watchdog

    stalls = []
    watchdog = _Watchdog(0.4, on_stall=stalls.append, grace=60).start()
    try:
        watchdog.beat()
        time.sleep(1.5)  # a stalled step
        with pytest.raises(WorkerStalledError, match="did not finish in .*--resume"):
            watchdog.beat()
    finally:
        watchdog.stop()
    assert stalls == [watchdog.error] and "\n" not in watchdog.error


def test_watchdog_interrupts_a_main_thread_busy_in_python():
    """A main thread that reaches no step boundary (busy in a callback) gets a KeyboardInterrupt
    once the grace period after the stall has passed; the loop turns it into WorkerStalledError."""
    from keras_seq.distribute import _Watchdog

    watchdog = _Watchdog(0.2, grace=0.3).start()
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            while time.monotonic() - start < 30:
                sum(range(1000))
    finally:
        watchdog.stop()
    assert watchdog.error is not None and time.monotonic() - start < 10


def test_custom_loop_raises_worker_stalled_error(tmp_path):
    """`DistributedFit` raises (no process exit in library code) when a step boundary comes too late."""
    import keras
    import tensorflow as tf

    from keras_seq import distribute

    class Stall(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                time.sleep(1.5)

    strategy = distribute.make_strategy("default")
    with strategy.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
        model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = np.ones((64, 3), "float32"), np.zeros((64,), "int32")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    loop = distribute.DistributedFit(model, strategy, ds, epochs=1, callbacks=[backup, Stall()], verbose=0,
                                     step_timeout=0.4, first_step_timeout=60)
    with pytest.raises(distribute.WorkerStalledError, match="did not finish in"):
        loop.run()
    assert loop.global_step == 2  # it stopped at the step boundary after the stall
    assert not (tmp_path / "backup" / "training_metadata.json").exists()  # no checkpoint mid-epoch (save_freq "epoch")
    # The process can train on (one device: no collectives were aborted); the watchdog is off with 0.
    history = distribute.custom_fit(model, strategy, ds, epochs=1, callbacks=[backup], verbose=0, step_timeout=0)
    assert len(history.history["loss"]) == 1 and len(history.checkpoint_seconds) == 1
    assert json.loads((tmp_path / "backup" / "training_metadata.json").read_text())["global_step"] == 8


def test_cli_ends_a_stalled_run_with_exit_stalled_without_hanging(tmp_path):
    """The CLI floor maps WorkerStalledError to one line on stderr and EXIT_STALLED, and ends the
    process even when a thread would keep it alive (as TensorFlow's shutdown waits on a dead peer)."""
    code = (
        "import sys, threading\n"
        "import keras_seq.g2p.train as t\n"
        "from keras_seq.distribute import WorkerStalledError\n"
        "from keras_seq.cli import tasks as cli\n"
        "def train(*args, **kwargs):\n"
        "    threading.Thread(target=threading.Event().wait).start()  # never ends: no clean shutdown\n"
        "    raise WorkerStalledError('a training step did not finish in 21 s (limit 20 s; worker 0 of 2): "
        "restart all workers with --resume')\n"
        "t.train = train\n"
        f"sys.exit(cli.train_main(['reverse', '--out', {str(tmp_path / 'run')!r}]))\n"
    )
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    from keras_seq.distribute import EXIT_STALLED

    assert proc.returncode == EXIT_STALLED, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("keras-seq train: error: a training step did not finish in 21 s"), proc.stderr[-2000:]
