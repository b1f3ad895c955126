"""Benchmark: where a G2P training step's time goes, per Keras backend, on one fixed batch.

    python bench/step_parts.py [--batch 128 --source 10 --target 11 --units 256 --attention
                                --repeats 15 --rounds 2 --backends tensorflow,jax]

One subprocess per (round, backend), the backends alternating. Each builds the G2P model of
`keras-seq train g2p` (`EncoderDecoder`: bidirectional LSTM encoder, LSTM decoder, embeddings 64,
compiled as the training loop compiles it: Adam with clipnorm 5, the masked sparse cross-entropy)
and times, on one batch of random token ids of fixed shape (medians of `--repeats` calls after two
warm-up calls, of the wall time and of the process's CPU time, all threads, which moves less when
other processes share the cores):

- ``step``: `model.train_on_batch` (Keras's compiled train step, as `fit` runs it);
- ``forward``: the loss from the model's outputs, compiled (`tf.function` / `jax.jit`);
- ``grad``: the loss and its gradient, compiled (`GradientTape` / `jax.value_and_grad`);
- ``encoder`` / ``encoder grad``: the same for the bidirectional encoder alone (sum of outputs);
- ``update``: the optimizer's update alone from fixed gradients (Adam with clipnorm), compiled.
"""

import argparse
import json
import statistics

import train_step  # bench/, beside this script: its fresh-process runner


CHILD = r'''
import json, statistics, sys, time
import numpy as np
cfg = json.loads(sys.argv[1])
import keras
from keras_seq.models import EncoderDecoder
from keras_seq.models.seq2seq import EncoderDecoder

backend = keras.backend.backend()
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
B, n_x, n_y = cfg["batch"], cfg["source"], cfg["target"]
enc = rng.integers(3, 30, (B, n_x)).astype("int32")
dec = rng.integers(3, 45, (B, n_y)).astype("int32")
lab = rng.integers(3, 45, (B, n_y)).astype("int32")
enc[: B // 2, -2:] = 0  # some padding, as in a bucket
dec[: B // 3, -2:] = 0
lab[: B // 3, -2:] = 0
x = {"encoder_inputs": enc, "decoder_inputs": dec}
model = EncoderDecoder(32, 48, start_token=2, end_token=3, units=cfg["units"], embedding_dim=64,
                       attention=cfg["attention"])
model.build()
model.compile(optimizer=keras.optimizers.Adam(1e-3, clipnorm=5.0),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0))
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)


def timed(fn, sync):
    for _ in range(2):
        sync(fn())
    times, cpu = [], []
    for _ in range(cfg["repeats"]):
        t, c = time.perf_counter(), time.process_time()
        sync(fn())
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return [1000 * statistics.median(times), 1000 * statistics.median(cpu)]

out = {"backend": backend}
out["step"] = timed(lambda: model.train_on_batch(x, lab), lambda r: r)
trainable = model.trainable_variables
encoder_vars = [v for layer in model.encoder for v in layer.trainable_variables]

def encode_sum(tokens):
    memory, _, initial, _ = model.encode(tokens, training=True)
    return keras.ops.sum(memory) + sum(keras.ops.sum(s) for states in initial for s in states)

if backend == "jax":
    import jax
    values = [v.value for v in trainable]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def loss_of(values, x, y):
        logits, _ = model.stateless_call(values, non_trainable, x, training=True)
        return loss_fn(y, logits)

    forward = jax.jit(loss_of)
    grad = jax.jit(jax.value_and_grad(loss_of))

    def enc_of(enc_values, tokens):
        with keras.StatelessScope(state_mapping=list(zip(encoder_vars, enc_values))):
            return encode_sum(tokens)

    enc_values = [v.value for v in encoder_vars]
    encoder = jax.jit(enc_of)
    encoder_grad = jax.jit(jax.value_and_grad(enc_of))
    sync = lambda r: jax.block_until_ready(r)
    out["forward"] = timed(lambda: forward(values, x, lab), sync)
    out["grad"] = timed(lambda: grad(values, x, lab), sync)
    out["encoder"] = timed(lambda: encoder(enc_values, enc), sync)
    out["encoder grad"] = timed(lambda: encoder_grad(enc_values, enc), sync)
    opt = model.optimizer
    grads = grad(values, x, lab)[1]
    opt_vars = [v.value for v in opt.variables]
    update = jax.jit(lambda tv, ov, g: opt.stateless_apply(ov, g, tv))
    out["update"] = timed(lambda: update(values, opt_vars, grads), sync)
else:
    import tensorflow as tf
    xt = {k: tf.constant(v) for k, v in x.items()}
    lt = tf.constant(lab)
    forward = tf.function(lambda: loss_fn(lt, model(xt, training=True)))

    @tf.function
    def grad():
        with tf.GradientTape() as tape:
            loss = loss_fn(lt, model(xt, training=True))
        return loss, tape.gradient(loss, trainable)

    encoder = tf.function(lambda: encode_sum(xt["encoder_inputs"]))

    @tf.function
    def encoder_grad():
        with tf.GradientTape() as tape:
            loss = encode_sum(xt["encoder_inputs"])
        return loss, tape.gradient(loss, encoder_vars)

    grads = [tf.convert_to_tensor(g) for g in grad()[1]]
    update = tf.function(lambda: model.optimizer.apply(grads, trainable))
    sync = lambda r: tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, r)
    out["forward"] = timed(forward, sync)
    out["grad"] = timed(grad, sync)
    out["encoder"] = timed(encoder, sync)
    out["encoder grad"] = timed(encoder_grad, sync)
    out["update"] = timed(lambda: update(), lambda r: None)
print("RESULT" + json.dumps(out))
'''

PARTS = ("step", "forward", "grad", "encoder", "encoder grad", "update")


def run(backend, cfg):
    return train_step.run(backend, cfg, CHILD)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--source", type=int, default=10)
    p.add_argument("--target", type=int, default=11)
    p.add_argument("--units", type=int, default=256)
    p.add_argument("--attention", action="store_true")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--backends", default="tensorflow,jax")
    args = p.parse_args(argv)
    cfg = {k: v for k, v in vars(args).items() if k not in ("rounds", "backends")}
    results = {}
    for _ in range(args.rounds):
        for backend in args.backends.split(","):
            result = run(backend, cfg)
            print(json.dumps(result), flush=True)
            results.setdefault(backend, []).append(result)
    names = list(results)
    print("\n| part (ms, median per round) | " + " | ".join(names) + (" | ratio |" if len(names) == 2 else " |"))
    print("|---|" + "---|" * len(names) + ("---:|" if len(names) == 2 else ""))
    for part in PARTS:
        for i, kind in enumerate(("wall", "CPU")):
            cells = [" / ".join(f"{r[part][i]:.0f}" for r in results[b]) for b in names]
            row = f"| {part}, {kind} | " + " | ".join(cells) + " |"
            if len(names) == 2:
                a, b = (statistics.median(r[part][i] for r in results[n]) for n in names)
                row += f" {b / a:.2f}x |"
            print(row)


if __name__ == "__main__":
    main()
