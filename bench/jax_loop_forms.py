"""Benchmark: where an LSTM's time goes in a loop that XLA compiles (JAX on CPU), by loop form.

    python bench/jax_loop_forms.py [--rounds 11]

The book LSTM's arithmetic (tanh candidate) written in plain JAX at `bench/layers.py`'s shapes
(batch 64, 100 steps, 128 inputs, 256 units, float32), each form `jax.jit`-compiled and timed
interleaved (medians, ms), under the XLA flags that `keras_seq.layers` sets on JAX:

- inference, b + U x of all steps first (one large product), then the loop over z(t) + W h(t-1)
  (the form TensorFlow's executor runs fastest, and the book layers' form on JAX before issue 19);
  its two parts alone (the projection; the loop given z);
- inference, b + U x(t) and W h(t-1) inside each step (Keras's form; the book layers' form in a
  compiled loop since issue 19);
- the training forward of each form, keeping what the hand-written backward pass needs;
- the backward loop alone (dA(t), dh(t-1) = dA(t) Wᵀ as one product), and with the products after
  it (dW, dU, dx).

It measures XLA's CPU code generation, not keras_seq: `bench/layers.py --backend jax` times the
layers themselves.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
flags = os.environ.get("XLA_FLAGS", "")
if "concurrency_optimized_scheduler" not in flags:  # keras_seq.layers.base.JAX_CPU_XLA_FLAGS
    os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_enable_concurrency_optimized_scheduler=false").strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

B, T, I, H = 64, 100, 128, 256


def gates(a, s):
    i, f, c, o = jnp.split(a, 4, axis=-1)
    i, f, c, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(c), jax.nn.sigmoid(o)
    s = f * s + i * c
    return jnp.tanh(s) * o, s, (i, f, c, o)


def forms():
    """name -> function of (x, K, R, b, residuals): every array an argument, so that XLA cannot
    fold any of the work into constants at compile time."""
    h0 = s0 = jnp.zeros((B, H), "float32")

    def projection(x, K, b):
        return (x.reshape(-1, I) @ K + b).reshape(T, B, 4 * H)

    def loop_over_z(z, R, keep):
        def step(carry, z_t):
            h, s = carry
            h2, s2, g = gates(z_t + h @ R, s)
            return (h2, s2), ((h2, s, *g) if keep else None)
        return lax.scan(step, (h0, s0), z)

    def loop_per_step(x, K, R, b, keep):
        def step(carry, x_t):
            h, s = carry
            h2, s2, g = gates(x_t @ K + b + h @ R, s)
            return (h2, s2), ((h2, s, *g) if keep else None)
        return lax.scan(step, (h0, s0), x)

    def backward_loop(R, residuals):
        (_, s_last), (hs, s_prev, i, f, c, o) = residuals
        RT = R.T

        def step(carry, inputs):
            dh_next, ds_next, s_t = carry
            dh_t, s_prev_t, i_t, f_t, c_t, o_t = inputs
            dh = dh_next + dh_t
            tanh_s = jnp.tanh(s_t)
            ds = ds_next + dh * o_t * (1 - tanh_s * tanh_s)
            da = jnp.concatenate(
                [ds * c_t * i_t * (1 - i_t), ds * s_prev_t * f_t * (1 - f_t), ds * i_t * (1 - c_t * c_t),
                 dh * tanh_s * o_t * (1 - o_t)], -1)
            return (da @ RT, ds * f_t, s_prev_t), da

        zeros = jnp.zeros((B, H), "float32")
        return lax.scan(step, (zeros, zeros, s_last), (hs * 1e-3, s_prev, i, f, c, o), reverse=True)

    def backward_with_products(x, K, R, residuals):
        (dh0, ds0, _), dz = backward_loop(R, residuals)
        hs = residuals[1][0]
        h_prev = jnp.concatenate([h0[None], hs[:-1]], 0).reshape(-1, H)
        flat = dz.reshape(-1, 4 * H)
        return h_prev.T @ flat, x.reshape(-1, I).T @ flat, flat @ K.T, flat.sum(0)

    return {
        "inference, all steps projected first": lambda x, K, R, b, r: loop_over_z(projection(x, K, b), R, False)[0][0],
        "  its projection alone": lambda x, K, R, b, r: projection(x, K, b),
        "  its loop alone (z given)": lambda x, K, R, b, r: loop_over_z(x, R, False)[0][0],
        "inference, each step projects x(t)": lambda x, K, R, b, r: loop_per_step(x, K, R, b, False)[0][0],
        "training forward, all steps projected first": lambda x, K, R, b, r: loop_over_z(projection(x, K, b), R, True),
        "training forward, each step projects x(t)": lambda x, K, R, b, r: loop_per_step(x, K, R, b, True),
        "backward loop alone": lambda x, K, R, b, r: backward_loop(R, r),
        "backward loop + dW, dU, dx, db": lambda x, K, R, b, r: backward_with_products(x, K, R, r),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=11)
    options = p.parse_args()
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(T, B, I)).astype("float32"))
    K = jnp.asarray(rng.normal(scale=0.05, size=(I, 4 * H)).astype("float32"))
    R = jnp.asarray(rng.normal(scale=0.05, size=(H, 4 * H)).astype("float32"))
    b = jnp.zeros((4 * H,), "float32")
    fns = {name: jax.jit(fn) for name, fn in forms().items()}
    residuals = jax.jit(lambda x, K, R, b: forms()["training forward, each step projects x(t)"](x, K, R, b, None))(x, K, R, b)
    z = jax.jit(lambda x, K, b: (x.reshape(-1, I) @ K + b).reshape(T, B, 4 * H))(x, K, b)
    args = {name: (z if "loop alone (z given)" in name else x, K, R, b, residuals) for name in fns}
    for name, fn in fns.items():  # compile and warm up
        jax.block_until_ready(fn(*args[name]))
        jax.block_until_ready(fn(*args[name]))
    times = {name: [] for name in fns}
    for _ in range(options.rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(*args[name]))
            times[name].append(time.perf_counter() - start)
    print(f"jax {jax.__version__}, batch {B}, steps {T}, inputs {I}, units {H}, float32, "
          f"{len(os.sched_getaffinity(0))} cores, XLA_FLAGS={os.environ['XLA_FLAGS']!r}; "
          f"medians of {options.rounds} interleaved rounds, load average {os.getloadavg()[0]:.1f}")
    for name, values in times.items():
        print(f"{name:46s} {1000 * statistics.median(values):7.1f} ms")


if __name__ == "__main__":
    main()
