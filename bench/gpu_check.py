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


def benchmark(rounds, warmup):
    """Runs bench/layers.py's JAX benchmark functions; returns its printed report."""
    spec = importlib.util.spec_from_file_location("bench_layers", ROOT / "bench" / "layers.py")
    layers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(layers)
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
    p.add_argument("--skip-bench", action="store_true")
    args = p.parse_args()
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
    bench_text = "" if args.skip_bench else benchmark(args.rounds, args.warmup)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = [
        "", f"## GPU check: {name}", "",
        f"{when}; `bash bench/gpu_check.sh` (KERAS_BACKEND=jax, jax {jax.__version__}, keras {keras.__version__}).",
        "", "Book layer vs the cell in `keras.layers.RNN` (same weights, masked batch 8x12x6, 16 units, float32):",
        "", "| layer | forward max abs diff | jax.grad max abs diff | |", "|---|---|---|---|", *eq_lines, "",
    ]
    if bench_text:
        section += ["Layer benchmark (bench/layers.py shapes, `jax.jit`):", "", "```", bench_text.rstrip(), "```", ""]
    with open(args.results, "a") as f:
        f.write("\n".join(section))
    print(f"appended to {args.results}")
    if failed:
        sys.exit(f"equivalence failed: {failed}")


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "jax")
    main()
