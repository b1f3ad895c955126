"""The Python part of bench/gpu_check.sh: layer equivalence and benchmark on a GPU under JAX.

    KERAS_BACKEND=jax python3 bench/gpu_check.py [--results bench/RESULTS.md] [--rounds 15]

1. Equivalence: for ElmanRNN, LSTM and GRU, the book layer (the fast loop with its hand-written
   gradient) against its cell inside `keras.layers.RNN`, the same weights: outputs with a mask,
   and `jax.grad` of a loss with respect to the trainable weights and the inputs, in float32 on
   the default (GPU) device. Tolerances: 1e-4 absolute (TF32 may be used in GPU matrix
   products, so looser than on CPU).
2. Benchmark: `bench/layers.py`'s JAX candidates (book LSTM/GRU with a tanh candidate, Keras
   LSTM/GRU, RNN(cell)) at its shapes (batch 64, 100 steps, 128 inputs, 256 units), inference and
   a training step, `jax.jit`-compiled, medians over interleaved rounds.
3. Against cuDNN: the book LSTM/GRU (tanh candidate) against Keras's layers with
   `use_cudnn=True` alone and under `keras.layers.Bidirectional`, without a mask and with a
   right-padded mask (random lengths T/2..T), inference and a training step, at the same shapes.
   What Keras 3.15.1 runs on JAX (keras/src/backend/jax/rnn.py, layers/rnn/lstm.py, gru.py):
   - LSTM: cuDNN through `jax.experimental.rnn.lstm` when activation is tanh, the recurrent
     activation sigmoid, use_bias, not unroll, no recurrent dropout, a GPU, and no mask;
     `Bidirectional(LSTM)` runs both directions in one fused cuDNN call on the same conditions.
     With a mask Keras does not use cuDNN (`use_cudnn=True` raises; "auto" runs its scan), though
     cuDNN supports right-padded batches: the masked cases therefore also time
     `jax.experimental.rnn.lstm` called directly with the lengths (`CudnnLSTM` below, Keras's
     weights), and compare its outputs with the book layer's.
   - GRU: JAX has no cuDNN GRU; `use_cudnn=True` (reset_after=True, no mask) runs Keras's own
     `lax.scan` with the input projection precomputed, and raises for reset_after=False (the
     book's variant) or a mask, so those rows use "auto" (Keras's generic RNN loop).
   On a CPU, `use_cudnn=True` raises in Keras: the rows then use "auto", `CudnnLSTM` runs
   `jax.experimental.rnn.lstm_ref` (the same weights and lengths, in plain JAX), and the output
   says so. `--smoke` (tiny shapes, two rounds) proves these code paths on a CPU in seconds.
Appends a "GPU check" section with the device's name to the results file. Imports no TensorFlow.
"""

import argparse
import datetime
import importlib.util
import io
import os
import platform
import sys
from contextlib import redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ATOL = 1e-4
SMOKE_SHAPES = (4, 6, 5, 8)


def device_name():
    import jax

    dev = jax.devices()[0]
    return f"{dev.platform.upper()}: {getattr(dev, 'device_kind', str(dev))} (x{len(jax.devices())})"


def equivalence():
    """Returns lines of results; raises AssertionError on a mismatch."""
    import jax
    import jax.numpy as jnp
    import keras
    import numpy as np

    from keras_seq.layers import GRU, LSTM, ElmanRNN

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 12, 6)).astype("float32")
    mask = np.ones((8, 12), bool)
    mask[1, 5:] = False
    mask[3] = False
    lines = []
    for cls in (ElmanRNN, LSTM, GRU):
        fast = cls(16, return_sequences=True)
        slow = keras.layers.RNN(cls.cell_class(16), return_sequences=True)
        fast(x)
        slow(x)
        fast.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in fast.get_weights()])
        slow.set_weights(fast.get_weights())
        out_fast = np.asarray(fast(x, mask=mask))
        out_slow = np.asarray(slow(x, mask=mask))
        fwd = float(np.max(np.abs(out_fast - out_slow)))
        weights = jnp.linspace(-1, 1, 16)

        def loss(w, inputs, layer):
            out, _ = layer.stateless_call(w, [v.value for v in layer.non_trainable_variables], inputs, mask=mask)
            return jnp.sum(out * weights)

        grad = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)
        gw_f, gx_f = grad([v.value for v in fast.trainable_variables], x, fast)
        gw_s, gx_s = grad([v.value for v in slow.trainable_variables], x, slow)
        gdiff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip([*gw_f, gx_f], [*gw_s, gx_s]))
        platform_of = list(out_fast.devices())[0].platform if hasattr(out_fast, "devices") else jax.devices()[0].platform
        ok = fwd < ATOL and gdiff < ATOL
        lines.append(f"| {cls.__name__} | {fwd:.2e} | {gdiff:.2e} | {'ok' if ok else 'MISMATCH'} |")
        print(f"{cls.__name__}: forward max|diff| {fwd:.2e}, jax.grad max|diff| {gdiff:.2e} on {platform_of}")
        assert ok, f"{cls.__name__}: book layer and RNN(cell) differ (forward {fwd}, grad {gdiff})"
    return lines


def device_matmul_rate(m, k, n):
    """FLOP/s of one (m, k) @ (k, n) float32 product on the default device (operands on it)."""
    import time

    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.PRNGKey(0), (m, k), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (k, n), jnp.float32)
    mm = jax.jit(lambda a, b: a @ b)
    for _ in range(3):
        mm(a, b).block_until_ready()
    times = []
    for _ in range(20):
        start = time.perf_counter()
        mm(a, b).block_until_ready()
        times.append(time.perf_counter() - start)
    return 2 * m * k * n / sorted(times)[len(times) // 2]


def on_gpu():
    import jax

    return jax.default_backend() == "gpu"


def cudnn_lstm_class():
    """A Keras layer with `keras.layers.LSTM`'s weights that calls cuDNN through
    `jax.experimental.rnn.lstm` with each sequence's length (a right-padded mask's row sums), so
    that a masked batch runs on cuDNN; one fused call for both directions when
    `bidirectional=True`. Returns the last output (concatenated [forward, backward] as
    `Bidirectional`'s default merge does). On a CPU it runs `lstm_ref`, JAX's reference of it."""
    import jax.numpy as jnp
    import keras
    from jax.experimental import rnn

    class CudnnLSTM(keras.layers.Layer):
        def __init__(self, units, bidirectional=False, **kwargs):
            super().__init__(**kwargs)
            self.units, self.bidirectional = units, bidirectional
            self.supports_masking = True  # it reads the mask (and returns no sequence to mask)

        def build(self, input_shape):
            self.input_size = input_shape[-1]
            self.directions = []
            for d in range(2 if self.bidirectional else 1):
                self.directions.append([
                    self.add_weight((self.input_size, 4 * self.units), name=f"kernel_{d}"),
                    self.add_weight((self.units, 4 * self.units), name=f"recurrent_kernel_{d}",
                                    initializer="orthogonal"),
                    self.add_weight((4 * self.units,), name=f"bias_{d}", initializer="zeros"),
                ])

        def compute_mask(self, inputs, mask=None):
            return None

        def call(self, x, mask=None, training=None):
            batch, steps = x.shape[0], x.shape[1]
            n = len(self.directions)
            if mask is None:
                lengths = jnp.full((batch,), steps, jnp.int32)
            else:
                lengths = jnp.sum(jnp.asarray(mask, jnp.int32), axis=1)
            # cuDNN's flat layout (see jax.experimental.rnn): the transposed matrices of every
            # direction first, then the biases (Keras's bias as b_ih, zeros as b_hh), gates [i|f|c|o].
            matrices = [jnp.concatenate([k.value.T.ravel(), r.value.T.ravel()]) for k, r, _ in self.directions]
            biases = [jnp.concatenate([b.value, jnp.zeros_like(b.value)]) for *_, b in self.directions]
            weights = jnp.concatenate(matrices + biases)
            zeros = jnp.zeros((n, batch, self.units), x.dtype)
            shape = dict(input_size=self.input_size, hidden_size=self.units, num_layers=1, dropout=0.0,
                         bidirectional=self.bidirectional)
            if on_gpu():
                _, h_n, _ = rnn.lstm(x, zeros, zeros, weights, lengths, **shape)
            else:
                unpacked = rnn.unpack_lstm_weights(weights, self.input_size, self.units, 1, self.bidirectional)
                _, h_n, _ = rnn.lstm_ref(x, zeros, zeros, *unpacked, lengths, *shape.values())
            return jnp.concatenate(list(h_n), axis=-1)

    return CudnnLSTM


def step_functions(layer, x, mask):
    """`{"infer", "train"}` for a built layer: `jax.jit`-compiled inference and a training step
    (forward + backward + Adam on the mean squared error of the output), the mask passed as
    Keras passes it (None: no mask argument)."""
    import jax
    import jax.numpy as jnp
    import keras

    kwargs = {} if mask is None else {"mask": mask}
    y = jnp.zeros(layer(x, **kwargs).shape, "float32") + 0.5
    non_trainable = [v.value for v in layer.non_trainable_variables]
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(layer.trainable_variables)
    state = {"tv": [v.value for v in layer.trainable_variables], "ov": [v.value for v in optimizer.variables]}

    @jax.jit
    def infer(tv, x):
        return layer.stateless_call(tv, non_trainable, x, training=False, **kwargs)[0]

    def loss_fn(tv, x):
        out, _ = layer.stateless_call(tv, non_trainable, x, training=True, **kwargs)
        return jnp.mean(jnp.square(out - y))

    @jax.jit
    def train(tv, ov, x):
        loss, grads = jax.value_and_grad(loss_fn)(tv, x)
        tv, ov = optimizer.stateless_apply(ov, grads, tv)
        return loss, tv, ov

    def run_train():
        loss, state["tv"], state["ov"] = train(state["tv"], state["ov"], x)
        loss.block_until_ready()

    return {"infer": lambda: infer(state["tv"], x).block_until_ready(), "train": run_train}


def cudnn_cases(shapes):
    """`[(title, [(row name, layer factory, is_reference)], masked)]`: the cases of part 3."""
    import keras

    from keras_seq.layers import GRU, LSTM

    _, _, _, H = shapes
    CudnnLSTM = cudnn_lstm_class()
    cudnn = True if on_gpu() else "auto"  # Keras raises for use_cudnn=True where there is no GPU
    bi = keras.layers.Bidirectional
    book_lstm = lambda: LSTM(H, candidate_activation="tanh")  # noqa: E731
    book_gru = lambda: GRU(H, candidate_activation="tanh")  # noqa: E731
    keras_lstm = lambda use=cudnn: keras.layers.LSTM(H, use_cudnn=use)  # noqa: E731
    keras_gru = lambda use=cudnn, **kw: keras.layers.GRU(H, use_cudnn=use, **kw)  # noqa: E731
    on = f"use_cudnn={cudnn!r}"
    return [
        ("LSTM, no mask", [("book LSTM", book_lstm, False),
                           (f"keras LSTM({on})", keras_lstm, True)], False),
        ("Bidirectional LSTM, no mask", [("Bidirectional(book LSTM)", lambda: bi(book_lstm()), False),
                                         (f"Bidirectional(keras LSTM({on}))", lambda: bi(keras_lstm()), True)],
         False),
        ("LSTM, right-padded mask", [("book LSTM", book_lstm, False),
                                     ("keras LSTM('auto': no cuDNN with a mask)", lambda: keras_lstm("auto"), False),
                                     ("CudnnLSTM (lengths)", lambda: CudnnLSTM(H), True)], True),
        ("Bidirectional LSTM, right-padded mask",
         [("Bidirectional(book LSTM)", lambda: bi(book_lstm()), False),
          ("Bidirectional(keras LSTM('auto'))", lambda: bi(keras_lstm("auto")), False),
          ("CudnnLSTM (lengths, bidirectional)", lambda: CudnnLSTM(H, bidirectional=True), True)], True),
        ("GRU, no mask", [("book GRU", book_gru, False),
                          ("keras GRU(reset_after=False, 'auto')", lambda: keras_gru("auto", reset_after=False), False),
                          (f"keras GRU({on}) [lax.scan]", keras_gru, True)], False),
        ("Bidirectional GRU, no mask", [("Bidirectional(book GRU)", lambda: bi(book_gru()), False),
                                        (f"Bidirectional(keras GRU({on}))", lambda: bi(keras_gru()), True)], False),
        ("GRU, right-padded mask", [("book GRU", book_gru, False),
                                    ("keras GRU('auto')", lambda: keras_gru("auto"), True)], True),
        ("Bidirectional GRU, right-padded mask", [("Bidirectional(book GRU)", lambda: bi(book_gru()), False),
                                                  ("Bidirectional(keras GRU('auto'))", lambda: bi(keras_gru("auto")),
                                                   True)], True),
    ]


def cudnn_benchmark(shapes, rounds, warmup):
    """Part 3: the book layers against cuDNN; returns its printed report (see the docstring)."""
    import jax
    import numpy as np

    spec = importlib.util.spec_from_file_location("bench_layers", ROOT / "bench" / "layers.py")
    layers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(layers)
    shapes = shapes or (layers.B, layers.T, layers.I, layers.H)
    B, T, I, H = shapes
    rng = np.random.default_rng(1)
    x = jax.device_put(rng.normal(size=(B, T, I)).astype("float32"))
    lengths = rng.integers(T // 2, T + 1, size=B)
    lengths[0] = T
    mask = jax.device_put(np.arange(T)[None, :] < lengths[:, None])
    buf = io.StringIO()
    with redirect_stdout(buf):
        if on_gpu():
            print("Keras rows with use_cudnn=True run cuDNN where Keras can (LSTM without a mask); "
                  "CudnnLSTM calls jax.experimental.rnn.lstm (cuDNN) with the lengths.")
        else:
            print(f"NOT ON A GPU ({jax.default_backend()}): use_cudnn=True raises in Keras here, so those rows "
                  "use 'auto', and CudnnLSTM runs jax.experimental.rnn.lstm_ref; no cuDNN is timed.")
        print(f"batch {B}, steps {T}, inputs {I}, units {H}, float32; mask: right-padded, lengths "
              f"{lengths.min()}..{T}; median ms over {rounds} interleaved rounds ({warmup} warm-up calls); "
              "x = ratio to the reference row (*)")
        print("Keras 3.15.1 on JAX: no cuDNN with a mask (its generic loop), and no cuDNN GRU at all "
              "(GRU use_cudnn=True, reset_after=True, runs its own lax.scan [lax.scan]).\n")
        for title, rows, masked in cudnn_cases(shapes):
            case_mask = mask if masked else None
            kwargs = {"mask": mask} if masked else {}
            built = {}
            for name, make, _ in rows:
                built[name] = make()
                built[name](x, **kwargs)
            reference = next(name for name, _, is_ref in rows if is_ref)
            same = ""
            if "LSTM" in title:
                # Every LSTM row holds Keras's weights in its layout and gate order: all get the
                # reference's, and the book layer's outputs are compared with the reference's.
                for name in built:
                    built[name].set_weights(built[reference].get_weights())
                book, ref = (np.asarray(built[name](x, **kwargs)) for name in (rows[0][0], reference))
                same = f"; max |book - (*)| of the outputs, same weights: {float(np.max(np.abs(book - ref))):.1e}"
            fns = {}
            for name, layer in built.items():
                fns.update({(name, mode): fn for mode, fn in step_functions(layer, x, case_mask).items()})
            times, _ = layers.time_interleaved(fns, rounds, warmup)
            print(f"== {title}{same} ==")
            print(f"{'':52s}| infer ms       x | train ms       x")
            for name, _, is_ref in rows:
                ti, tt = times[(name, "infer")], times[(name, "train")]
                ri, rt = times[(reference, "infer")], times[(reference, "train")]
                label = name + (" (*)" if is_ref else "")
                print(f"{label:52s}| {ti:8.2f}  {ti / ri:6.2f} | {tt:8.2f}  {tt / rt:6.2f}")
            print()
    text = buf.getvalue()
    print(text)
    return text


def benchmark(rounds, warmup, shapes=None):
    """Runs bench/layers.py's JAX benchmark functions; returns its printed report."""
    spec = importlib.util.spec_from_file_location("bench_layers", ROOT / "bench" / "layers.py")
    layers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(layers)
    if shapes:  # --smoke: its functions read the shapes from the module
        layers.B, layers.T, layers.I, layers.H = shapes
    import numpy as np

    import jax

    rng = np.random.default_rng(0)
    # Inputs on the device once (not copied from the host at every call).
    x = jax.device_put(rng.normal(size=(layers.B, layers.T, layers.I)).astype("float32"))
    y = jax.device_put(rng.normal(size=(layers.B, layers.H)).astype("float32"))
    buf = io.StringIO()
    with redirect_stdout(buf):
        rate = device_matmul_rate(layers.B * layers.T, layers.I + layers.H, 4 * layers.H)
        print(f"matrix-product rate ({layers.B * layers.T}x{layers.I + layers.H} @ "
              f"{layers.I + layers.H}x{4 * layers.H}): {rate / 1e9:.1f} GFLOP/s\n")
        for family in ("lstm", "gru"):
            fns, names, keras_name = {}, [], None
            for name, make, is_keras in layers.candidates(family):
                names.append(name)
                keras_name = name if is_keras else keras_name
                fns.update({(name, mode): fn for mode, fn in layers.jax_functions(make, x, y).items()})
            times = layers.time_interleaved(fns, rounds, warmup)
            if isinstance(times, tuple):  # (wall-clock, CPU) medians in newer bench/layers.py
                times = times[0]
            print(f"== {family.upper()}: median ms over {rounds} interleaved rounds (x = ratio of times) ==")
            layers.report(family, names, keras_name, times, ["infer", "train"], rate)
    text = buf.getvalue()
    print(text)
    return text


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--skip-bench", action="store_true", help="skip part 2 (bench/layers.py's candidates)")
    p.add_argument("--skip-cudnn", action="store_true", help="skip part 3 (against cuDNN)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny shapes, 2 rounds, 1 warm-up call: proves the code paths (on a CPU too) in seconds")
    args = p.parse_args()
    shapes = SMOKE_SHAPES if args.smoke else None  # None: bench/layers.py's
    if args.smoke:
        args.rounds, args.warmup = 2, 1
    import keras

    if keras.backend.backend() != "jax":
        sys.exit("run with KERAS_BACKEND=jax (bench/gpu_check.sh sets it)")
    assert "tensorflow" not in sys.modules, "the GPU check must not import TensorFlow"
    import jax

    name = device_name()
    print(f"device {name}; jax {jax.__version__}, keras {keras.__version__}, python {platform.python_version()}")
    failed = None
    try:
        eq_lines = equivalence()
    except AssertionError as e:
        failed, eq_lines = str(e), [f"| (failed) | | | {e} |"]
    bench_text = "" if args.skip_bench else benchmark(args.rounds, args.warmup, shapes)
    cudnn_text = "" if args.skip_cudnn else cudnn_benchmark(shapes, args.rounds, args.warmup)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = [
        "", f"## GPU check: {name}" + (" (--smoke: tiny shapes, not a measurement)" if args.smoke else ""), "",
        f"{when}; `{' '.join(['python3 bench/gpu_check.py', *sys.argv[1:]])}` (bench/gpu_check.sh runs it; "
        f"KERAS_BACKEND=jax, jax {jax.__version__}, keras {keras.__version__}).",
        "", "Book layer vs the cell in `keras.layers.RNN` (same weights, masked batch 8x12x6, 16 units, float32):",
        "", "| layer | forward max abs diff | jax.grad max abs diff | |", "|---|---|---|---|", *eq_lines, "",
    ]
    if bench_text:
        section += ["Layer benchmark (bench/layers.py shapes, `jax.jit`):", "", "```", bench_text.rstrip(), "```", ""]
    if cudnn_text:
        section += ["Against cuDNN (`use_cudnn=True`), under `Bidirectional`, with right-padded masks, `jax.jit`:",
                    "", "```", cudnn_text.rstrip(), "```", ""]
    with open(args.results, "a") as f:
        f.write("\n".join(section))
    print(f"appended to {args.results}")
    if failed:
        sys.exit(f"equivalence failed: {failed}")


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "jax")
    main()
