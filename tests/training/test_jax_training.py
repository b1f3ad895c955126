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


def test_data_parallel_on_two_devices_equals_one_device(tmp_path):
    out = run_jax(DATA_PARALLEL, tmp_path, devices=2)
    result = json.loads(out.split("RESULT", 1)[1])
    one, two = result["default"], result["data-parallel"]
    assert one["devices"] == [1] and two["devices"] == [2]  # the 2-device run's variables live on both
    assert len(one["losses"]) == len(two["losses"]) == 4  # 128 words / 32
    # Every array of every batch (4 training, 1 dev; 3 arrays each; Keras places the first
    # training batch once more to build) split in halves of 16 rows across the 2 devices; the
    # single-device run places its batches whole.
    assert len(two["placed"]) == 18 and all(rows == [16, 16] for rows in two["placed"]), two["placed"]
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
'''


def test_jax_decoder_is_jitted_and_follows_the_weights(tmp_path):
    out = run_jax(JIT_DECODER, tmp_path)
    assert "JIT OK 2" in out  # one compiled function per method, reused across weight changes
    tokens = {tuple(line.split()[1:3]): line.split(None, 3)[3] for line in out.splitlines() if line.startswith("TOKENS")}
    # The random weights decode differently from one draw to the next: the check above compared something.
    assert tokens[("greedy", "0")] != tokens[("greedy", "1")]
