"""The training loop on the JAX backend, against independent references.

Every JAX run is a subprocess (the backend and the number of host devices are fixed when JAX
starts). Default suite, small:

- data-parallel on 2 CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count=2``) ends
  with the weights of the single-device run of the same configuration and seed, and its dev
  scores (decoded with `jax.jit` on the replicated weights) are the single-device run's;
- the jitted JAX decoder of `TextSeq2Seq` gives `EncoderDecoder.generate`'s eager tokens and
  follows the weights it has when called (not those it was traced with).

Slow (``-m slow``): the CLI end to end on JAX (see `test_cli_on_jax_end_to_end`).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_jax(code, tmp_path, devices=1, timeout=600):
    """Runs `code` under KERAS_BACKEND=jax with `devices` CPU devices; returns its stdout."""
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("XLA_FLAGS", None)
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    script = tmp_path / "script.py"
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout


DATA_PARALLEL = r'''
import json, sys
import numpy as np, keras
from keras_seq.g2p.data import reverse_task
from keras_seq.g2p.train import train

assert keras.backend.backend() == "jax" and len(keras.distribution.list_devices()) == 2
from keras.src.backend.jax import distribution_lib  # where Keras's JAX trainer places each batch

placed, losses = {}, {}
place = distribution_lib.distribute_data_input

def spy(*args, **kwargs):  # records the rows each device gets of every batch array
    out = place(*args, **kwargs)
    placed.setdefault(strategy, []).append(sorted(s.data.shape[0] for s in out.addressable_shards))
    return out

distribution_lib.distribute_data_input = spy

class Steps(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        losses.setdefault(self.name, []).append(float(logs["loss"]))

result = {}
for strategy in ("default", "data-parallel"):
    steps = Steps()
    steps.name = strategy
    g = train(reverse_task(128, 4, 4, seed=0), reverse_task(32, 4, 4, seed=1), out_dir=strategy, epochs=1,
              batch_size=32, units=16, embedding_dim=8, strategy=strategy, verbose=0, static_shapes=True,
              dev_words=32, clipnorm=None, lr_schedule="constant", learning_rate=1e-2, seed=0, callbacks=[steps])
    devices = {len(v.value.sharding.device_set) for v in g.model.trainable_variables}
    np.savez(strategy + ".npz", *g.model.get_weights())
    result[strategy] = {"devices": sorted(devices), "losses": losses[strategy], "placed": placed.get(strategy, []),
                        "metrics": open(strategy + "/metrics.csv").read().splitlines()[1]}
print("RESULT" + json.dumps(result))
'''


@pytest.mark.slow  # 23 s of subprocesses: run with -m slow (the default suite stays under 15 minutes)
def test_data_parallel_on_two_devices_equals_one_device(tmp_path):
    out = run_jax(DATA_PARALLEL, tmp_path, devices=2)
    result = json.loads(out.split("RESULT", 1)[1])
    one, two = result["default"], result["data-parallel"]
    assert one["devices"] == [1] and two["devices"] == [2]  # the 2-device run's variables live on both
    assert len(one["losses"]) == len(two["losses"]) == 4  # 128 words / 32
    # Every array of every batch (4 training, 1 dev; 3 arrays each) split in halves of 16 rows
    # across the 2 devices; the single-device run places its batches whole.
    assert len(two["placed"]) == 15 and all(rows == [16, 16] for rows in two["placed"]), two["placed"]
    assert one["placed"] == []
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5)
    a, b = np.load(tmp_path / "default.npz"), np.load(tmp_path / "data-parallel.npz")
    assert len(a.files) == len(b.files) > 0
    for key in a.files:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-4, atol=1e-5, err_msg=key)
    assert two["losses"][-1] < two["losses"][0]  # it trained
    # epoch,loss,val_loss,dev_wer,dev_per,...: the same dev scores from the replicated weights
    dev_one, dev_two = one["metrics"].split(",")[3:5], two["metrics"].split(",")[3:5]
    assert dev_one == dev_two and all(dev_one)


JIT_DECODER = r'''
import numpy as np, keras
from keras_seq.seq2seq.model import TextSeq2Seq

examples = [(w, [tuple(w[::-1])]) for w in ["abc", "bcd", "cab", "dab", "abcd", "bbca", "dd", "cabd"]]
app = TextSeq2Seq.create(examples, units=8, embedding_dim=4, attention=True)
ids = app.encode([s for s, _ in examples])
rng = np.random.default_rng(0)
for method in ("greedy", "beam"):
    for draw in range(2):  # new weights after the first trace: the compiled decoder must use them
        for v in app.model.trainable_variables:
            v.assign(rng.normal(0, 1.5, size=v.shape).astype("float32"))
        jitted = app.decode_ids(ids, method)
        extra = {"beam_width": app.beam_width, "num_results": 1} if method == "beam" else {}
        eager = app.model.generate(ids, method=method, **extra)
        tokens = np.asarray(eager["tokens"]).reshape(jitted["tokens"].shape)
        assert np.array_equal(tokens, jitted["tokens"]), (method, draw)
        np.testing.assert_allclose(np.asarray(eager["scores"]).reshape(jitted["scores"].shape), jitted["scores"],
                                   rtol=1e-4, atol=1e-4)
        print("TOKENS", method, draw, jitted["tokens"].tolist())
print("JIT OK", len(app.__dict__["_compiled_fns"]))
# The compiled decoder pads its input to a few shapes (one program each), and the padding changes
# nothing: each source as the model decodes it alone and unpadded, eagerly.
sources = ["a", "ab", "abc", "abcd", "bcdab", "cabdab", "dabcabd", "abcdabcd", ""]
traces, generate = [], app.model.generate
app.model.generate = lambda *args, **kwargs: (traces.append(1), generate(*args, **kwargs))[1]
got = app.predict_tokens(sources, "greedy", batch_size=2)
app.model.generate = generate
for source, result in zip(sources, got):
    if source:
        eager = np.asarray(app.model.generate(app.encode([source]), method="greedy")["tokens"])[0]
        assert result[0][0] == tuple(app.target_vocabulary.decode(eager)), source
print("TRACES", len(traces))
'''


def test_jax_decoder_is_jitted_and_follows_the_weights(tmp_path):
    out = run_jax(JIT_DECODER, tmp_path)
    assert "JIT OK 2" in out  # one compiled function per method, reused across weight changes
    tokens = {tuple(line.split()[1:3]): line.split(None, 3)[3] for line in out.splitlines() if line.startswith("TOKENS")}
    # The random weights decode differently from one draw to the next: the check above compared something.
    assert tokens[("greedy", "0")] != tokens[("greedy", "1")]
    # By length in batches of 2: "" "a" | "ab" "abc" | "abcd" "bcdab" | "cabdab" "dabcabd" | "abcdabcd":
    # 5 shapes (2, 1), (2, 3), (2, 5), (2, 7), (1, 8), padded to 3: (2, 4), (2, 8), (1, 8)
    assert "TRACES 3" in out


# -- the CLI end to end on JAX; evaluate, export, average and plot on TensorFlow ----------------

CLI = r'''
import sys, time
import keras_seq.training.callbacks as callbacks

class Slow(callbacks.Backup):  # gives the test time to kill the run inside its second epoch
    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        if sys.argv[1] == "slow":
            time.sleep(0.3)

callbacks.Backup = Slow
import keras_seq.training.loop as loop
loop.Backup = Slow
from keras_seq.cli import main
sys.exit(main(sys.argv[2:]))
'''


def _start_jax_cli(tmp_path, mode, args):
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("XLA_FLAGS", None)
    script = tmp_path / "cli.py"
    script.write_text(CLI)
    log = open(tmp_path / f"{mode}-{len(list(tmp_path.glob('*.log')))}.log", "w")
    return subprocess.Popen([sys.executable, str(script), mode, *map(str, args)], env=env, stdout=log,
                            stderr=subprocess.STDOUT), log.name


def _finish(proc, log, timeout=900):
    rc = proc.wait(timeout)
    assert rc == 0, Path(log).read_text()[-5000:]


@pytest.mark.slow
def test_cli_on_jax_end_to_end(tmp_path, capsys):
    """`KERAS_BACKEND=jax keras-seq train g2p`, SIGKILLed inside epoch 2 and resumed, writes the run
    directory of TensorFlow's training: one metrics.csv row per epoch, the best epoch by dev WER,
    --keep-epochs; and on TensorFlow `evaluate` of it scores the dev words as the JAX dev scoring
    did (the same weights decoded by the other backend), `export`, `average` and `plot` read it."""
    import csv
    import signal
    import time

    from keras_seq.cli import main
    from keras_seq.g2p.data import reverse_task, write_cmudict

    train, dev, run = tmp_path / "train.dict", tmp_path / "dev.dict", tmp_path / "run"
    write_cmudict(reverse_task(960, 3, 5, seed=1), train)
    write_cmudict(reverse_task(40, 3, 5, seed=2), dev)
    args = ["train", "g2p", "--train", train, "--dev", dev, "--out", run, "--epochs", 3, "--units", 32,
            "--embedding-dim", 16, "--attention", "--batch-size", 16, "--learning-rate", 0.01, "--keep-epochs", 2,
            "--checkpoint-steps", 3, "--dev-words", 40]
    proc, log = _start_jax_cli(tmp_path, "slow", args)
    meta = run / "backup" / "training_metadata.json"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        try:
            data = json.loads(meta.read_text())
        except (OSError, ValueError):
            data = {}
        if data.get("epoch") == 1 and data.get("batch", -1) > 0:  # a backup inside epoch 2 (0-based 1)
            break
        time.sleep(0.1)
    assert proc.poll() is None, Path(log).read_text()[-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait(60)
    assert not json.loads((run / "run.json").read_text())["finished"]
    proc, log = _start_jax_cli(tmp_path, "fast", [*args, "--resume"])
    _finish(proc, log)

    state = json.loads((run / "run.json").read_text())
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert state["finished"] and state["epochs_done"] == 3
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]  # one row per epoch after the resume
    wers = [float(r["dev_wer"]) for r in rows]
    best = max(i + 1 for i, w in enumerate(wers) if w == min(wers))  # ties: the later epoch
    assert state["best_epoch"] == best
    assert sorted(p.name for p in (run / "epochs").iterdir()) == ["epoch-2", "epoch-3"]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])

    # TensorFlow reads the JAX-trained run: its greedy decoding of the dev words scores as JAX's did.
    import keras

    assert keras.backend.backend() == "tensorflow"
    capsys.readouterr()
    assert main(["evaluate", "--model", str(run), "--data", str(dev), "--greedy"]) == 0
    text = capsys.readouterr().out
    import re

    wer = float(re.search(r"WER: ([\d.]+)%", text).group(1)) / 100
    per = float(re.search(r"PER: ([\d.]+)%", text).group(1)) / 100
    best_row = rows[best - 1]
    assert float(best_row["dev_per"]) < 0.5, best_row  # a model that decodes words: the comparison means something
    assert abs(wer - float(best_row["dev_wer"])) <= 1 / 40 + 1e-9, (text, best_row)  # at most one near tie flips
    assert abs(per - float(best_row["dev_per"])) <= 0.02, (text, best_row)
    assert main(["export", "--model", str(run), "--base-path", str(tmp_path / "export" / "g2p")]) == 0
    assert (tmp_path / "export" / "g2p" / "1" / "saved_model.pb").is_file()
    assert main(["average", str(run / "epochs" / "epoch-2"), str(run / "epochs" / "epoch-3"),
                 "--out", str(tmp_path / "avg")]) == 0
    assert main(["evaluate", "--model", str(tmp_path / "avg"), "--data", str(dev), "--greedy"]) == 0
    pytest.importorskip("matplotlib")
    assert main(["plot", "curves", "--run", str(run), "--out", str(tmp_path / "curves.png")]) == 0


@pytest.mark.slow
def test_cli_train_seq2seq_on_jax_then_evaluate_on_tensorflow(tmp_path, capsys):
    """`keras-seq train seq2seq` on JAX; TensorFlow's `evaluate` of the run on the dev file gives
    the sequence and character error rates of JAX's dev scoring of the best epoch."""
    import csv
    import re

    from keras_seq.cli import main
    from keras_seq.g2p.data import reverse_task

    def write(path, n, seed):
        path.write_text("".join(f"{w}\t{''.join(p[0]).lower()}\n" for w, p in reverse_task(n, 3, 5, seed=seed)))

    train, dev, run = tmp_path / "train.tsv", tmp_path / "dev.tsv", tmp_path / "run"
    write(train, 960, 1)
    write(dev, 40, 2)
    proc, log = _start_jax_cli(tmp_path, "fast", [
        "train", "seq2seq", "--train", train, "--dev", dev, "--out", run, "--epochs", 2, "--units", 32,
        "--embedding-dim", 16, "--attention", "--batch-size", 16, "--learning-rate", 0.01, "--dev-examples", 40])
    _finish(proc, log)
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    best = json.loads((run / "run.json").read_text())["best_epoch"]
    assert float(rows[best - 1]["dev_ter"]) < 0.5, rows  # a model that decodes: the comparison means something
    capsys.readouterr()
    assert main(["evaluate", "--model", str(run), "--data", str(dev), "--greedy"]) == 0
    text = capsys.readouterr().out
    ser = 1 - float(re.search(r"exact match: ([\d.]+)%", text).group(1)) / 100
    ter = float(re.search(r"character error rate: ([\d.]+)%", text).group(1)) / 100
    assert abs(ser - float(rows[best - 1]["dev_ser"])) <= 1 / 40 + 1e-9, (text, rows)
    assert abs(ter - float(rows[best - 1]["dev_ter"])) <= 0.02, (text, rows)


SAME_START = r'''
import json, os, sys
import numpy as np, keras
from keras_seq.g2p.data import reverse_task
from keras_seq.g2p.model import G2P
from keras_seq.g2p.train import train

create = G2P.create.__func__

def same_weights(cls, *args, **kwargs):  # both backends start from the weights of the first run
    app = create(cls, *args, **kwargs)
    if os.path.exists("init.npz"):
        saved = np.load("init.npz")
        app.model.set_weights([saved[f"arr_{i}"] for i in range(len(saved.files))])
    else:
        np.savez("init.npz", *app.model.get_weights())
    return app

G2P.create = classmethod(same_weights)
losses = []

class Steps(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        losses.append(float(logs["loss"]))

g = train(reverse_task(256, 3, 7, seed=0), reverse_task(32, 3, 7, seed=1), out_dir=keras.backend.backend() + "-" + sys.argv[1], epochs=1,
          batch_size=32, units=16, embedding_dim=8, attention=True, dev_words=0, verbose=0, seed=0, callbacks=[Steps()],
          optimizer=sys.argv[1])
np.savez("trained-" + keras.backend.backend() + "-" + sys.argv[1] + ".npz", *g.model.get_weights())
print("RESULT" + json.dumps(losses))
'''


@pytest.mark.slow
def test_jax_and_tensorflow_train_on_the_same_batches(tmp_path):
    """From the same weights, `keras_seq.g2p.train.train` on JAX and on TensorFlow trains the same:
    the same batches (same tf.data shuffle: Keras's JAX fit does not draw an extra iterator), the
    same model, the same Adam step, so every step's loss and the weights after the epoch agree
    within float tolerance; for both optimizers: ``"adam"`` (the default: Keras's Adam, whose
    TensorFlow step moves repeated ids up to sqrt(k) times further, `SliceAdam` reproducing it on
    JAX) and ``"adam-dense"`` (`keras_seq.models.Adam`: the slices summed first). The two
    optimizers part after the first step."""
    def run(backend, optimizer):
        env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
                   PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.pop("XLA_FLAGS", None)
        (tmp_path / "same.py").write_text(SAME_START)
        proc = subprocess.run([sys.executable, "same.py", optimizer], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-4000:]
        return json.loads(proc.stdout.split("RESULT", 1)[1])

    trained = {}
    for optimizer in ("adam-dense", "adam"):
        tf_losses, jax_losses = run("tensorflow", optimizer), run("jax", optimizer)
        assert len(tf_losses) == len(jax_losses) == 10  # 256 words in length buckets of 32
        assert abs(jax_losses[0] - tf_losses[0]) < 1e-5 * tf_losses[0], (tf_losses, jax_losses)
        np.testing.assert_allclose(jax_losses, tf_losses, rtol=1e-3, err_msg=str((optimizer, tf_losses, jax_losses)))
        trained[optimizer] = {b: np.load(tmp_path / f"trained-{b}-{optimizer}.npz") for b in ("tensorflow", "jax")}
        for name in trained[optimizer]["tensorflow"].files:
            np.testing.assert_allclose(trained[optimizer]["jax"][name], trained[optimizer]["tensorflow"][name],
                                       atol=2e-4, err_msg=f"{optimizer} {name}")
    sparse, dense = trained["adam"]["tensorflow"], trained["adam-dense"]["tensorflow"]
    parted = max(np.abs(sparse[n] - dense[n]).max() for n in sparse.files)
    assert parted > 10 * 2e-4, parted
