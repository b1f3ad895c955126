"""Benchmark: the book LSTM/GRU (tanh candidate) against Keras's and torch's, on CPU.

    python bench/layers.py                    # TensorFlow backend (the default path)
    python bench/layers.py --backend both     # and the JAX backend, in a subprocess

Times, in one process, interleaved (one call of every candidate per round), after warm-up, as
medians over rounds: inference (training=False) and one training step (forward + backward + Adam on
the mean squared error of the last output) at batch 64, 100 steps, 128 inputs, 256 units, float32.

Candidates: `keras_seq.layers.LSTM/GRU(candidate_activation="tanh")`, `keras.layers.LSTM`,
`keras.layers.GRU(reset_after=False)` (the book GRU's equations), `keras.layers.GRU()` (Keras's
default reset_after=True, for information), `keras.layers.RNN(keras.layers.LSTMCell)`, and
`torch.nn.LSTM/GRU` when torch is importable (a benchmark-only comparator, never a dependency).

On TensorFlow each step is a `tf.function`, timed without XLA (what `model.fit` runs on a CPU-only
machine, where `jit_compile="auto"` resolves to False) and with `jit_compile=True`, reported
separately. On JAX everything is `jax.jit`-compiled.

The FLOP floor is the forward's 2·B·T·(I+H)·kH (k = 4 blocks for the LSTM, 3 for the GRU), about
3x that for a training step, at the rate of one (B·T, I+H) @ (I+H, 4H) matrix product measured in
the same process. Every table is printed twice: wall-clock medians, and medians of the process's CPU
time (all threads), which move less when other processes share the cores (the floor then uses the
matrix product's FLOP per CPU-second).

    python bench/layers.py --profile          # where the book LSTM's inference time goes (TensorFlow)

`--profile` times, interleaved, the book LSTM's inference (training=False) and variants that each
keep one part of it, at the same shapes, on the TensorFlow backend without XLA: the input
projection b + U x alone; the loop (the layer's own `scan`, one chunk of all steps, z precomputed)
empty but for reading each step's four z slices; the loop with only the four recurrent products
W h(t-1) (and the adds that combine them); the loop with only the gate nonlinearities and the
elementwise arithmetic of eq. 10.40-10.44 (W h(t-1) replaced by h(t-1)); the full inference loop;
and torch.nn.LSTM's inference when torch is importable (`--torch-threads`). The parts are differences of these times
(products = products-only loop - empty loop, and so on); they overlap where TensorFlow runs ops at
once, so they need not add up to the layer's time. The FLOP floors use the (B*T, I+H) @ (I+H, 4H)
product's rate and one step's (B, H) @ (H, 4H) product's rate, both measured in the same process.
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

B, T, I, H = 64, 100, 128, 256


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backend", choices=["tensorflow", "jax", "both"], default="tensorflow")
    p.add_argument("--rounds", type=int, default=15, help="timed rounds (medians over these)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls of each candidate first")
    p.add_argument("--only", choices=["lstm", "gru"], default=None, help="one family only")
    p.add_argument("--no-xla", action="store_true", help="TensorFlow: skip the jit_compile=True runs")
    p.add_argument("--no-torch", action="store_true", help="skip torch even if importable")
    p.add_argument("--torch-threads", type=int, default=0,
                   help="torch's threads (default: all cores; with other processes on the cores its OpenMP "
                        "threads wait for each other at every step, and 1 can be faster)")
    p.add_argument("--profile", action="store_true",
                   help="TensorFlow: where the book LSTM's inference time goes (see the docstring)")
    return p.parse_args()


def candidates(family):
    """(name, layer factory, is_keras_reference) for one family."""
    import keras

    from keras_seq.layers import GRU, LSTM

    if family == "lstm":
        return [
            ("book LSTM", lambda: LSTM(H, candidate_activation="tanh"), False),
            ("keras LSTM", lambda: keras.layers.LSTM(H), True),
            ("keras RNN(LSTMCell)", lambda: keras.layers.RNN(keras.layers.LSTMCell(H)), False),
        ]
    return [
        ("book GRU", lambda: GRU(H, candidate_activation="tanh"), False),
        ("keras GRU(reset_after=False)", lambda: keras.layers.GRU(H, reset_after=False), True),
        ("keras GRU(reset_after=True)", lambda: keras.layers.GRU(H), False),
    ]


# -- one backend's step functions ------------------------------------------------------------------
def tf_functions(make_layer, x, y, xla):
    import keras
    import tensorflow as tf

    layer = make_layer()
    layer(x)
    variables = layer.trainable_variables
    fns = {}

    for jit in [False, True] if xla else [False]:
        suffix = " xla" if jit else ""
        optimizer = keras.optimizers.Adam(1e-3)
        optimizer.build(variables)

        @tf.function(jit_compile=jit)
        def infer(x):
            return layer(x, training=False)

        @tf.function(jit_compile=jit)
        def train(x, y, optimizer=optimizer):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(layer(x, training=True) - y))
            optimizer.apply(tape.gradient(loss, variables), variables)
            return loss

        fns["infer" + suffix] = lambda infer=infer: infer(x).numpy()
        fns["train" + suffix] = lambda train=train: train(x, y).numpy()
    return fns


def jax_functions(make_layer, x, y):
    import jax
    import jax.numpy as jnp
    import keras

    layer = make_layer()
    layer(x)
    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(layer.trainable_variables)
    state = {"tv": trainable, "ov": [v.value for v in optimizer.variables]}

    @jax.jit
    def infer(tv, x):
        return layer.stateless_call(tv, non_trainable, x, training=False)[0]

    def loss_fn(tv, x, y):
        out, _ = layer.stateless_call(tv, non_trainable, x, training=True)
        return jnp.mean(jnp.square(out - y))

    @jax.jit
    def train(tv, ov, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(tv, x, y)
        tv, ov = optimizer.stateless_apply(ov, grads, tv)
        return loss, tv, ov

    def run_train():
        loss, state["tv"], state["ov"] = train(state["tv"], state["ov"], x, y)
        loss.block_until_ready()

    return {"infer": lambda: infer(state["tv"], x).block_until_ready(), "train": run_train}


def torch_functions(family, x, y):
    import torch

    torch.manual_seed(0)
    module = (torch.nn.LSTM if family == "lstm" else torch.nn.GRU)(I, H, batch_first=True)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.Adam(module.parameters(), 1e-3)

    def infer():
        with torch.inference_mode():
            return module(xt)[0][:, -1]

    def train():
        optimizer.zero_grad()
        loss = torch.mean(torch.square(module(xt)[0][:, -1] - yt))
        loss.backward()
        optimizer.step()
        return loss.item()

    fns = {"infer": infer, "train": train}
    return fns


def matmul_rate(backend):
    """FLOP/s of one (B·T, I+H) @ (I+H, 4H) float32 product (the size of the LSTM's forward)."""
    import numpy as np

    a = np.random.default_rng(0).normal(size=(B * T, I + H)).astype("float32")
    b = np.random.default_rng(1).normal(size=(I + H, 4 * H)).astype("float32")
    if backend == "tensorflow":
        import tensorflow as tf

        a, b = tf.constant(a), tf.constant(b)
        run = tf.function(lambda: tf.matmul(a, b))
        call = lambda: run().numpy()  # noqa: E731
    else:
        import jax

        mm = jax.jit(lambda a, b: a @ b)
        call = lambda: mm(a, b).block_until_ready()  # noqa: E731
    for _ in range(3):
        call()
    times, cpu_times = [], []
    for _ in range(20):
        start, cpu_start = time.perf_counter(), cpu_seconds()
        call()
        times.append(time.perf_counter() - start)
        cpu_times.append(cpu_seconds() - cpu_start)
    flops = 2 * B * T * (I + H) * 4 * H
    return flops / statistics.median(times), flops / statistics.median(cpu_times)


def small_matmul_rate():
    """FLOP/s, wall-clock and per CPU-second, of one step's (B, H) @ (H, 4H) product (TensorFlow)."""
    import numpy as np
    import tensorflow as tf

    a = tf.constant(np.random.default_rng(0).normal(size=(B, H)).astype("float32"))
    b = tf.constant(np.random.default_rng(1).normal(size=(H, 4 * H)).astype("float32"))
    repeat = 100  # one tf.function call runs T products in a loop, as the layer does

    @tf.function
    def run():
        return tf.while_loop(lambda i, acc: i < repeat, lambda i, acc: (i + 1, acc + tf.matmul(a, b)[0, 0]),
                             (tf.constant(0), tf.constant(0.0)))[1]

    fns = {("mm", "step"): lambda: run().numpy()}
    times, cpu_times = time_interleaved(fns, 15, 3)
    flops = 2 * B * H * 4 * H * repeat
    return flops / (1e-3 * times[("mm", "step")]), flops / (1e-3 * cpu_times[("mm", "step")])


def profile_functions(x):
    """{name: callable}: the book LSTM's inference and the variants of `--profile` (TensorFlow)."""
    import tensorflow as tf

    from keras_seq.layers import LSTM
    from keras_seq.layers.base import scan, time_major

    layer = LSTM(H, candidate_activation="tanh")
    layer(x)
    cell = layer.cell
    xt = time_major(tf.constant(x))
    z = tf.constant(layer._input_projection(xt))  # b + U x(t) of every step, computed once here
    z_blocks = list(cell.split_input_projection(z))
    W_blocks = cell.split_recurrent_kernel(tf.convert_to_tensor(cell.recurrent_kernel))
    # The products-only loop adds its four products: scaled so that h stays finite over T steps.
    W_quarter = [0.25 * w for w in W_blocks]
    zeros = tf.zeros((B, H))
    sigma, squash, candidate = cell.recurrent_activation, cell.activation, cell.candidate_activation

    def empty(carry, z_t):  # reads each step's four slices, nothing else
        return list(z_t), []

    def products(carry, z_t):
        h = carry[0]
        return [(tf.matmul(h, W_quarter[0]) + tf.matmul(h, W_quarter[1]))
                + (tf.matmul(h, W_quarter[2]) + tf.matmul(h, W_quarter[3])), carry[1]], []

    W_all_quarter = 0.25 * tf.convert_to_tensor(cell.recurrent_kernel)

    def fused_product(carry, z_t):  # one (B, H) @ (H, 4H) product instead of four
        h = carry[0]
        a = tf.matmul(h, W_all_quarter)
        return [a[:, :H], carry[1]], []  # one block carried on: the product computes all four

    def gates(carry, z_t):
        h, s = carry
        z_g, z_f, z_c, z_q = z_t
        f, g, c, q = sigma(z_f + h), sigma(z_g + h), candidate(z_c + h), sigma(z_q + h)
        s = f * s + g * c
        return [squash(s) * q, s], []

    def loop(step):
        return tf.function(lambda: scan(step, [zeros, zeros], z_blocks, 0)[0][0])

    full_loop = tf.function(lambda: layer.forward(z, zeros, zeros, tf.convert_to_tensor(cell.recurrent_kernel),
                                                  None, None, keep_residuals=False, keep_sequence=False)[0][0])
    infer = tf.function(lambda: layer(x, training=False))
    projection = tf.function(lambda: layer._input_projection(xt))
    empty_loop = tf.function(lambda: scan(empty, [zeros] * 4, z_blocks, 0)[0][0])
    return {
        "book LSTM inference (layer)": lambda: infer().numpy(),
        "input projection b + U x": lambda: projection().numpy(),
        "loop: empty (reads z slices)": lambda: empty_loop().numpy(),
        "loop: 4 recurrent products only": lambda f=loop(products): f().numpy(),
        "loop: 1 fused product (H x 4H) only": lambda f=loop(fused_product): f().numpy(),
        "loop: gates/nonlinearities only": lambda f=loop(gates): f().numpy(),
        "loop: full inference step": lambda: full_loop().numpy(),
    }


def run_profile(args):
    """`--profile`: prints the table of where the book LSTM's inference time goes."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, T, I)).astype("float32")
    fns = {(name, "infer"): fn for name, fn in profile_functions(x).items()}
    torch_note = "torch is not importable: no torch.nn.LSTM row"
    if not args.no_torch:
        try:
            import torch

            threads = args.torch_threads or len(os.sched_getaffinity(0))
            torch.set_num_threads(threads)
            fns[(f"torch.nn.LSTM inference ({threads} thread{'s' * (threads > 1)})", "infer")] = torch_functions(
                "lstm", x, x[:, -1, :0])["infer"]
            torch_note = f"torch {torch.__version__}"
        except ImportError:
            pass
    print(f"profile: book LSTM inference, TensorFlow {tf.__version__} without XLA, batch {B}, steps {T}, "
          f"inputs {I}, units {H}, float32, {len(os.sched_getaffinity(0))} cores; {torch_note}")
    rate, cpu_rate = matmul_rate("tensorflow")
    step_rate, step_cpu_rate = small_matmul_rate()
    print(f"rates: large product ({B * T}x{I + H} @ {I + H}x{4 * H}) {rate / 1e9:.1f} GFLOP/s wall, "
          f"{cpu_rate / 1e9:.1f} per CPU-s; one step's product ({B}x{H} @ {H}x{4 * H}) {step_rate / 1e9:.1f} "
          f"GFLOP/s wall, {step_cpu_rate / 1e9:.1f} per CPU-s; load average {os.getloadavg()[0]:.1f}")
    times, cpu_times = time_interleaved(fns, args.rounds, args.warmup)
    get = lambda d, name: d[(name, "infer")]  # noqa: E731
    names = [name for name, _ in fns]
    derived = {
        "= input projection": lambda d: get(d, "input projection b + U x"),
        "= loop overhead (empty loop)": lambda d: get(d, "loop: empty (reads z slices)"),
        "= recurrent products (products - empty)": lambda d: get(d, "loop: 4 recurrent products only")
        - get(d, "loop: empty (reads z slices)"),
        "= gates/nonlinearities (gates - empty)": lambda d: get(d, "loop: gates/nonlinearities only")
        - get(d, "loop: empty (reads z slices)"),
        "= rest of the full loop (full - products - gates + empty)": lambda d: get(d, "loop: full inference step")
        - get(d, "loop: 4 recurrent products only") - get(d, "loop: gates/nonlinearities only")
        + get(d, "loop: empty (reads z slices)"),
        "= layer - (projection + full loop) (overlap if < 0)": lambda d: get(d, "book LSTM inference (layer)")
        - get(d, "input projection b + U x") - get(d, "loop: full inference step"),
    }
    projection_flops, recurrent_flops = 2 * B * T * I * 4 * H, 2 * B * T * H * 4 * H
    floors = {
        "floor: projection at the large product's rate": lambda r, rs: projection_flops / r,
        "floor: recurrent products at the large product's rate": lambda r, rs: recurrent_flops / r,
        "floor: recurrent products at one step's product rate": lambda r, rs: recurrent_flops / rs,
        "floor: whole forward at the large product's rate": lambda r, rs: (projection_flops + recurrent_flops) / r,
    }
    full = get(times, "book LSTM inference (layer)"), get(cpu_times, "book LSTM inference (layer)")
    print(f"\n== median over {args.rounds} interleaved rounds ({args.warmup} warm-up calls each); "
          f"load average now {os.getloadavg()[0]:.1f} ==")
    print(f"{'':58s}| wall ms  x layer | CPU ms  x layer")
    for name in names:
        t, c = get(times, name), get(cpu_times, name)
        print(f"{name:58s}| {t:7.2f}  {t / full[0]:6.2f} | {c:6.2f}  {c / full[1]:6.2f}")
    for name, f in derived.items():
        t, c = f(times), f(cpu_times)
        print(f"{name:58s}| {t:7.2f}  {t / full[0]:6.2f} | {c:6.2f}  {c / full[1]:6.2f}")
    for name, f in floors.items():
        t, c = 1e3 * f(rate, step_rate), 1e3 * f(cpu_rate, step_cpu_rate)
        print(f"{name:58s}| {t:7.2f}  {t / full[0]:6.2f} | {c:6.2f}  {c / full[1]:6.2f}")


# -- timing ------------------------------------------------------------------------------------------
def cpu_seconds():
    """CPU time of this process, all threads (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def time_interleaved(fns, rounds, warmup):
    """fns: {(candidate, mode): callable}. One call of each per round; medians in ms of wall-clock
    time and of process CPU time (the latter is steadier when other processes share the cores)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {key: [] for key in fns}
    cpu_times = {key: [] for key in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            start, cpu_start = time.perf_counter(), cpu_seconds()
            fn()
            times[key].append(1e3 * (time.perf_counter() - start))
            cpu_times[key].append(1e3 * (cpu_seconds() - cpu_start))
    median = lambda d: {key: statistics.median(ts) for key, ts in d.items()}  # noqa: E731
    return median(times), median(cpu_times)


def ratio(a, b):
    return f"{a / b:5.2f}" if a is not None and b else "   - "


def report(family, names, keras_name, times, modes, rate):
    blocks = 4 if family == "lstm" else 3
    forward_flops = 2 * B * T * (I + H) * blocks * H
    floor = {"infer": 1e3 * forward_flops / rate, "train": 3e3 * forward_flops / rate}
    torch_name = "torch " + family.upper()
    header = f"{'':32s}" + "".join(f"| {mode:>10s} ms  xKeras  xtorch " for mode in modes)
    print(header)
    print("-" * len(header))
    for name in names + ["FLOP floor"]:
        cells = []
        for mode in modes:
            if name == "FLOP floor":
                t = floor[mode.split()[0]]
            else:
                t = times.get((name, mode))
            # XLA rows compare with Keras under XLA; torch has one number per mode.
            k = times.get((keras_name, mode))
            tt = times.get((torch_name, mode.split()[0]))
            cells.append(
                f"| {t:13.1f}  {ratio(t, k)}   {ratio(t, tt)}  " if t is not None else f"| {'-':>13s}  {'':21s}"
            )
        print(f"{name:32s}" + "".join(cells))
    print()


def run_backend(args):
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    import keras
    import numpy as np

    assert keras.backend.backend() == backend, keras.backend.backend()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, T, I)).astype("float32")
    y = rng.normal(size=(B, H)).astype("float32")

    use_torch = False
    if not args.no_torch:
        try:
            import torch

            torch.set_num_threads(args.torch_threads or len(os.sched_getaffinity(0)))
            use_torch = True
        except ImportError:
            print("torch is not importable: torch comparisons skipped")

    import tensorflow as tf  # noqa: F401  (imported by keras on the TF backend; for versions)

    print(f"backend {backend}, keras {keras.__version__}, batch {B}, steps {T}, inputs {I}, units {H}, "
          f"float32, CPU, {len(os.sched_getaffinity(0))} cores"
          + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if use_torch else ""))
    rate, cpu_rate = matmul_rate(backend)
    print(f"matrix-product rate ({B * T}x{I + H} @ {I + H}x{4 * H}): {rate / 1e9:.1f} GFLOP/s wall-clock, "
          f"{cpu_rate / 1e9:.1f} GFLOP per CPU-second; load average {os.getloadavg()[0]:.1f}\n")

    xla = backend == "tensorflow" and not args.no_xla
    modes = ["infer", "train"] + (["infer xla", "train xla"] if xla else [])
    for family in [args.only] if args.only else ["lstm", "gru"]:
        fns, names, keras_name = {}, [], None
        for name, make, is_keras in candidates(family):
            names.append(name)
            keras_name = name if is_keras else keras_name
            if backend == "tensorflow":
                built = tf_functions(make, x, y, xla)
            else:
                built = jax_functions(make, x, y)
            fns.update({(name, mode): fn for mode, fn in built.items()})
        if use_torch:
            name = "torch " + family.upper()
            names.append(name)
            fns.update({(name, mode): fn for mode, fn in torch_functions(family, x, y).items()})
        times, cpu_times = time_interleaved(fns, args.rounds, args.warmup)
        shown = modes if backend == "tensorflow" else ["infer", "train"]
        note = "; XLA columns compare with Keras under XLA" if xla else ""
        print(f"== {family.upper()}: median wall-clock ms over {args.rounds} interleaved rounds "
              f"(x = ratio of times{note}) ==")
        report(family, names, keras_name, times, shown, rate)
        print(f"== {family.upper()}: median process CPU ms (all threads) over the same rounds, "
              f"load average now {os.getloadavg()[0]:.1f} ==")
        report(family, names, keras_name, cpu_times, shown, cpu_rate)


def main():
    sys.stdout.reconfigure(line_buffering=True)  # show each table as soon as it is measured
    args = parse_args()
    if args.backend == "both":
        for backend in ["tensorflow", "jax"]:
            argv = [a for a in sys.argv[1:] if a not in ("both", "--backend=both")]
            argv = [a for i, a in enumerate(argv) if not (a == "--backend")]
            cmd = [sys.executable, __file__, "--backend", backend, *argv]
            subprocess.run(cmd, check=True)
        return
    if os.environ.get("KERAS_BACKEND") != args.backend:
        # The backend is chosen when keras is imported: run in a fresh process with it set.
        env = dict(os.environ, KERAS_BACKEND=args.backend, TF_CPP_MIN_LOG_LEVEL="3")
        if args.backend == "jax":
            env.setdefault("JAX_PLATFORMS", "cpu")
        sys.exit(subprocess.run([sys.executable, __file__, *sys.argv[1:]], env=env).returncode)
    if args.profile:
        if args.backend != "tensorflow":
            sys.exit("--profile is for the TensorFlow backend")
        return run_profile(args)
    run_backend(args)


if __name__ == "__main__":
    main()
