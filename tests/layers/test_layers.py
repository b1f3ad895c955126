"""The fast layers against their cells inside `keras.layers.RNN`, Keras's own LSTM/GRU, and a fresh
process: forward and gradients, masks, direction, states, Bidirectional, saving and export."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import reference as ref
from keras_seq import convert
from keras_seq.layers import GRU, LSTM, ElmanRNN

RNG = np.random.default_rng(7)
X = RNG.normal(size=(4, 7, 3)).astype("float32")
MASK = np.ones((4, 7), bool)
MASK[1, 5:] = False
MASK[2, 2:] = False
MASK[3, :] = False  # fully padded

LAYERS = {
    "elman": (ElmanRNN, {}),
    "elman_output": (ElmanRNN, {"output_units": 3}),
    "elman_relu": (ElmanRNN, {"activation": "relu"}),
    "lstm": (LSTM, {}),
    "lstm_tanh": (LSTM, {"candidate_activation": "tanh"}),
    "gru": (GRU, {}),
    "gru_tanh": (GRU, {"candidate_activation": "tanh"}),
    "gru_autodiff": (GRU, {"recurrent_activation": "hard_sigmoid"}),  # no hand-written gradient
}


def _randomize(layer, scale=0.5):
    layer.set_weights([RNG.normal(scale=scale, size=w.shape).astype("float32") for w in layer.get_weights()])


def _pair(name, **rnn_kwargs):
    """The fast layer and the same cell inside keras.layers.RNN, with the same random weights."""
    cls, kwargs = LAYERS[name]
    fast = cls(5, **kwargs, **rnn_kwargs)
    slow = keras.layers.RNN(cls.cell_class(5, **kwargs), **rnn_kwargs)
    fast(X)
    slow(X)
    _randomize(fast)
    slow.set_weights(fast.get_weights())
    return fast, slow


def _loss(outputs):
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return sum(tf.reduce_sum(o * np.linspace(-1, 1, o.shape[-1])) for o in outputs)


def _assert_same(fast, slow, atol=1e-5, **call_kwargs):
    with tf.GradientTape(persistent=True) as tape:
        a = fast(X, **call_kwargs)
        b = slow(X, **call_kwargs)
        loss_a, loss_b = _loss(a), _loss(b)
    a, b = (a, b) if isinstance(a, (list, tuple)) else ([a], [b])
    for got, want in zip(a, b):
        np.testing.assert_allclose(got, want, atol=atol)
        assert np.isfinite(np.asarray(got)).all()
    for got, want in zip(tape.gradient(loss_a, fast.trainable_weights), tape.gradient(loss_b, slow.trainable_weights)):
        np.testing.assert_allclose(got, want, atol=atol)
        assert np.isfinite(np.asarray(got)).all()


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_fast_layer_equals_cell_in_keras_rnn(name, masked, go_backwards, zero_output_for_mask):
    fast, slow = _pair(
        name, return_sequences=True, return_state=True, go_backwards=go_backwards,
        zero_output_for_mask=zero_output_for_mask,
    )
    _assert_same(fast, slow, mask=MASK if masked else None)


@pytest.mark.parametrize("name", ["elman", "lstm", "gru"])
def test_fast_layer_matches_numpy_reference(name):
    cls, kwargs = LAYERS[name]
    layer = cls(5, return_sequences=True, go_backwards=True)
    layer(X)
    _randomize(layer)
    cell = layer.cell
    step = {
        "elman": lambda: ref.elman_step(ref.book_weights(cell, ref.ELMAN_NAMES)),
        "lstm": lambda: ref.lstm_step(ref.book_weights(cell, ref.LSTM_NAMES)),
        "gru": lambda: ref.gru_step(ref.book_weights(cell, ref.GRU_NAMES)),
    }[name]()
    states = [np.zeros((4, 5))] * (2 if name == "lstm" else 1)
    expected, _ = ref.run(step, X, states, MASK, go_backwards=True)
    np.testing.assert_allclose(layer(X, mask=MASK), expected, atol=1e-5)


@pytest.mark.parametrize("name", ["elman", "lstm", "gru"])
def test_initial_state_and_return_state(name):
    fast, slow = _pair(name, return_state=True)
    n_states = 2 if name == "lstm" else 1
    initial = [RNG.normal(size=(4, 5)).astype("float32") for _ in range(n_states)]
    initial_t = [tf.constant(s) for s in initial]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(initial_t)
        a = fast(X, initial_state=initial_t, mask=MASK)
        b = slow(X, initial_state=initial_t, mask=MASK)
        la, lb = _loss(a), _loss(b)
    for got, want in zip(a, b):
        np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(a[1][3], initial[0][3], atol=1e-6)  # the fully padded row keeps h0
    for got, want in zip(tape.gradient(la, initial_t), tape.gradient(lb, initial_t)):
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("name", ["lstm", "gru", "elman"])
def test_stateful_carries_state_between_calls(name):
    cls, kwargs = LAYERS[name]
    layer = cls(5, stateful=True, return_sequences=True)
    whole = cls(5, return_sequences=True)
    layer(X[:, :3])
    whole(X)
    whole.set_weights(layer.get_weights())
    layer.reset_states()
    first, second = layer(X[:, :3]), layer(X[:, 3:])
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole(X), atol=1e-5)
    layer.reset_states()
    np.testing.assert_allclose(layer(X[:, :3]), first, atol=1e-6)


@pytest.mark.parametrize("name", ["lstm", "gru", "elman_output"])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_every_merge_mode_with_masks(name, merge_mode):
    cls, kwargs = LAYERS[name]
    fast = keras.layers.Bidirectional(cls(5, return_sequences=True, **kwargs), merge_mode=merge_mode)
    slow = keras.layers.Bidirectional(
        keras.layers.RNN(cls.cell_class(5, **kwargs), return_sequences=True), merge_mode=merge_mode
    )
    fast(X)
    slow(X)
    _randomize(fast)
    slow.set_weights(fast.get_weights())
    _assert_same(fast, slow, mask=MASK)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_bidirectional_return_state(name):
    cls, _ = LAYERS[name]
    fast = keras.layers.Bidirectional(cls(5, return_state=True))
    slow = keras.layers.Bidirectional(keras.layers.RNN(cls.cell_class(5), return_state=True))
    fast(X)
    slow(X)
    _randomize(fast)
    slow.set_weights(fast.get_weights())
    _assert_same(fast, slow, mask=MASK)


def test_fully_padded_rows_give_no_nan_in_outputs_or_gradients():
    layer = LSTM(5, return_sequences=True)
    x = tf.constant(X)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x, mask=MASK))
    grads = tape.gradient(loss, [x, *layer.trainable_weights])
    assert all(np.isfinite(np.asarray(g)).all() for g in grads)
    np.testing.assert_array_equal(np.asarray(grads[0])[3], 0.0)  # padded steps get no gradient


@pytest.mark.parametrize("name", ["lstm", "gru", "elman"])
def test_dropout_masks_are_the_cells(name):
    """With the same seed, the fast layer draws the same per-sequence masks as the cell in RNN."""
    cls, kwargs = LAYERS[name]
    fast = cls(5, dropout=0.3, recurrent_dropout=0.3, seed=11, return_sequences=True)
    slow = keras.layers.RNN(cls.cell_class(5, dropout=0.3, recurrent_dropout=0.3, seed=11), return_sequences=True)
    fast(X)
    slow(X)
    slow.set_weights(fast.get_weights())
    _assert_same(fast, slow, training=True)
    assert not np.allclose(fast(X, training=True), fast(X, training=False))


def test_conversion_from_and_to_keras_lstm_and_gru():
    for keras_layer in [
        keras.layers.LSTM(5, return_sequences=True, use_cudnn=False),
        keras.layers.GRU(5, return_sequences=True, reset_after=False, use_cudnn=False),
        keras.layers.GRU(5, return_sequences=True, use_cudnn=False),  # reset_after=True: the option
    ]:
        keras_layer(X)
        _randomize(keras_layer)
        book = convert.from_keras(keras_layer)
        assert book.cell.candidate_activation_name == "tanh"
        for mask in [None, MASK]:
            with tf.GradientTape(persistent=True) as tape:
                a, b = book(X, mask=mask), keras_layer(X, mask=mask)
                la, lb = _loss(a), _loss(b)
            np.testing.assert_allclose(a, b, atol=1e-5)
            grads_a = tape.gradient(la, book.trainable_weights)
            grads_b = tape.gradient(lb, keras_layer.trainable_weights)
            # Converting the gradients like weights puts them in Keras's block order.
            holder = type(book).from_config(book.get_config())
            holder.build(X.shape)
            holder.set_weights([np.asarray(g) for g in grads_a])
            for got, want in zip(convert.to_keras(holder).get_weights(), grads_b):
                np.testing.assert_allclose(got, want, atol=1e-5)
        np.testing.assert_allclose(convert.to_keras(book)(X), keras_layer(X), atol=1e-5)


def test_conversion_refuses_what_has_no_book_equivalent():
    book = LSTM(4)
    book(X)
    with pytest.raises(ValueError, match="candidate_activation='tanh'"):
        convert.to_keras(book)
    with pytest.raises(ValueError, match="torch.nn.GRU state dict.*weight_ih_l0"):
        convert.from_torch_gru_state_dict({})


def test_torch_gru_state_dict_against_numpy_torch_semantics():
    """torch.nn.GRU's equations (gate order r, z, n; the reset gate after W_hn h + b_hn) in NumPy:
    the book GRU's non-book option reset_after=True."""
    H, I = 5, 3
    state = {
        "weight_ih_l0": RNG.normal(size=(3 * H, I)), "weight_hh_l0": RNG.normal(size=(3 * H, H)),
        "bias_ih_l0": RNG.normal(size=3 * H), "bias_hh_l0": RNG.normal(size=3 * H),
    }
    book = convert.from_torch_gru_state_dict(state, return_sequences=True)
    h = np.zeros((4, H))
    outputs = []
    for t in range(X.shape[1]):
        x_r, x_z, x_n = np.split(X[:, t] @ state["weight_ih_l0"].T + state["bias_ih_l0"], 3, axis=-1)
        h_r, h_z, h_n = np.split(h @ state["weight_hh_l0"].T + state["bias_hh_l0"], 3, axis=-1)
        r, z = ref.sigmoid(x_r + h_r), ref.sigmoid(x_z + h_z)
        h = (1 - z) * np.tanh(x_n + r * h_n) + z * h
        outputs.append(h)
    np.testing.assert_allclose(book(X), np.stack(outputs, 1), atol=1e-5)


def test_torch_lstm_state_dict_round_trip_against_numpy_torch_semantics():
    """torch.nn.LSTM's equations (gate order i, f, g, o; two biases) written in NumPy."""
    H, I = 5, 3
    state = {
        "weight_ih_l0": RNG.normal(size=(4 * H, I)), "weight_hh_l0": RNG.normal(size=(4 * H, H)),
        "bias_ih_l0": RNG.normal(size=4 * H), "bias_hh_l0": RNG.normal(size=4 * H),
    }
    book = convert.from_torch_lstm_state_dict(state, return_sequences=True)
    h = c = np.zeros((4, H))
    outputs = []
    for t in range(X.shape[1]):
        gates = X[:, t] @ state["weight_ih_l0"].T + state["bias_ih_l0"] + h @ state["weight_hh_l0"].T + state["bias_hh_l0"]
        i, f, g, o = np.split(gates, 4, axis=-1)
        c = ref.sigmoid(f) * c + ref.sigmoid(i) * np.tanh(g)
        h = ref.sigmoid(o) * np.tanh(c)
        outputs.append(h)
    np.testing.assert_allclose(book(X), np.stack(outputs, 1), atol=1e-5)
    again = convert.from_torch_lstm_state_dict(convert.to_torch_lstm_state_dict(book), return_sequences=True)
    np.testing.assert_allclose(again(X), book(X), atol=1e-6)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_config_json_round_trip(name):
    cls, kwargs = LAYERS[name]
    layer = cls(5, return_sequences=True, go_backwards=True, dropout=0.1, **kwargs)
    config = json.loads(json.dumps(layer.get_config()))
    clone = cls.from_config(config)
    assert clone.get_config() == layer.get_config()
    rebuilt = keras.layers.deserialize(json.loads(json.dumps(keras.layers.serialize(layer))))
    assert type(rebuilt) is cls and rebuilt.get_config() == layer.get_config()


def _model(layer):
    inputs = keras.Input((7, 3))
    masked = keras.layers.Masking(0.0)(inputs)
    return keras.Model(inputs, layer(masked))


def _padded():
    x = X.copy()
    x[~MASK] = 0.0
    return x


@pytest.mark.parametrize("name", ["elman_output", "lstm", "gru"])
def test_keras_file_save_and_load(name, tmp_path):
    cls, kwargs = LAYERS[name]
    model = _model(keras.layers.Bidirectional(cls(5, return_sequences=True, **kwargs)))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded(_padded()), model(_padded()), atol=1e-6)


@pytest.mark.parametrize("name", ["elman_output", "lstm", "gru"])
def test_savedmodel_export_reloads_with_the_same_outputs(name, tmp_path):
    cls, kwargs = LAYERS[name]
    model = _model(cls(5, return_sequences=True, **kwargs))
    model.export(str(tmp_path / "sm"), format="tf_saved_model", verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "sm"))
    np.testing.assert_allclose(reloaded.serve(_padded()), model(_padded()), atol=1e-6)
    # And in a fresh process that never imports keras_seq.
    code = textwrap.dedent(
        f"""
        import sys, numpy as np, tensorflow as tf
        out = tf.saved_model.load({str(tmp_path / 'sm')!r}).signatures["serving_default"](
            tf.constant(np.load({str(tmp_path / 'x.npy')!r})))
        np.save({str(tmp_path / 'y.npy')!r}, list(out.values())[0].numpy())
        assert "keras_seq" not in sys.modules
        """
    )
    np.save(tmp_path / "x.npy", _padded())
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), model(_padded()), atol=1e-6)


@pytest.mark.parametrize(
    "name, jit_compile", [(name, True) for name in sorted(LAYERS)] + [("lstm", False), ("gru", False)]
)
def test_compiled_loops_give_the_cells_numbers_and_gradients(name, jit_compile):
    """Inside a `tf.function` the backward loop is XLA-compiled (one product for the fused Wᵀ);
    under `jit_compile=True` inference also takes its compiled form (b + U x(t) in each step, one
    product for W). Both against the cell inside `keras.layers.RNN`, with masks and backwards."""
    from keras_seq.layers.base import in_compiled_loop

    fast, slow = _pair(name, return_sequences=True, go_backwards=True)
    seen = []

    def run(layer):
        with tf.GradientTape() as tape:
            out = layer(X, mask=MASK)
            loss = _loss(out)
        return out, tape.gradient(loss, layer.trainable_weights)

    def infer(layer):
        seen.append(in_compiled_loop())
        return layer(X, mask=MASK)

    compile = lambda f: tf.function(f, jit_compile=jit_compile)
    (out_a, grads_a), (out_b, grads_b) = compile(run)(fast), run(slow)
    np.testing.assert_allclose(out_a, out_b, atol=1e-5)
    for got, want in zip(grads_a, grads_b):
        np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(compile(infer)(fast), slow(X, mask=MASK), atol=1e-5)
    assert seen == [jit_compile] and not in_compiled_loop()  # eagerly: never


def test_jit_compiled_training_step():
    model = keras.Sequential([keras.Input((7, 3)), LSTM(8), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse", jit_compile=True)
    history = model.fit(X, np.ones((4, 1)), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def _counting_task(n=512, length=6, seed=0):
    """How many ones does a sequence of bits hold? The answer needs the whole sequence."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, size=(n, length, 1)).astype("float32")
    return x, x.sum(axis=(1, 2)).astype("int32")


# Chance for counting 6 bits is the entropy of Binomial(6, 1/2): about 1.6 nats of cross-entropy.
CHANCE = 1.6


@pytest.mark.parametrize("cls", [ElmanRNN, LSTM, GRU])
def test_learns_a_small_sequence_task_with_fit(cls):
    keras.utils.set_random_seed(0)
    x, y = _counting_task()
    model = keras.Sequential([keras.Input((6, 1)), cls(24), keras.layers.Dense(7)])
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, epochs=40, batch_size=64, verbose=0)
    assert history.history["loss"][-1] < 0.2 * CHANCE, history.history["loss"][-1]


JAX_SCRIPT = textwrap.dedent(
    """
    import numpy as np, keras
    from keras_seq.layers import ElmanRNN, GRU, LSTM
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 6, 3)).astype("float32")
    mask = np.ones((4, 6), bool); mask[1, 3:] = False; mask[3] = False
    # Same numbers as the cell in keras.layers.RNN, and gradients through jax.grad.
    import jax, jax.numpy as jnp
    for cls in (ElmanRNN, LSTM, GRU):
        fast = cls(5, return_sequences=True); slow = keras.layers.RNN(cls.cell_class(5), return_sequences=True)
        fast(x); slow(x); slow.set_weights(fast.get_weights())
        np.testing.assert_allclose(fast(x, mask=mask), slow(x, mask=mask), atol=1e-5)
        calls, backward = [], fast.backward  # jax.grad without training=True: the hand-written pass
        fast.backward = lambda *args: calls.append(1) or backward(*args)
        def loss(w, layer):
            out, _ = layer.stateless_call(w, [v.value for v in layer.non_trainable_variables], x, mask=mask)
            return jnp.sum(out * jnp.linspace(-1, 1, 5))
        ga = jax.grad(loss)([v.value for v in fast.trainable_variables], fast)
        gb = jax.grad(loss)([v.value for v in slow.trainable_variables], slow)
        assert calls, cls.__name__
        for a, b in zip(ga, gb):
            np.testing.assert_allclose(a, b, atol=1e-5)
    # Keras's weights give Keras's numbers on JAX too (the LSTM's gate order, GRU(reset_after=True)).
    for ours, theirs in [(LSTM(5, candidate_activation="tanh"), keras.layers.LSTM(5)),
                         (GRU(5, candidate_activation="tanh", reset_after=True), keras.layers.GRU(5))]:
        ours(x); theirs(x); ours.set_weights(theirs.get_weights())
        np.testing.assert_allclose(ours(x, mask=mask), theirs(x, mask=mask), atol=1e-5)
    # Under mixed precision the state stays float32 (s(t) = s(t-1) + 0.1 reaches 50, not bfloat16's 32)
    # in the loop that projects each step's input, and its gradient (dx, dU, db after the loop) is finite.
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    layer = LSTM(1, return_state=True, candidate_activation="linear", unit_forget_bias=False)
    ones = np.ones((2, 500, 1), "float32"); layer(ones[:, :1])
    layer.set_weights([np.array([[0, 0, 0.1, 0]], "float32"), np.zeros((1, 4), "float32"),
                       np.array([20, 20, 0, 20], "float32")])
    def total(w):
        (out, _, s), _ = layer.stateless_call(w, [v.value for v in layer.non_trainable_variables], ones, training=True)
        return jnp.sum(out.astype("float32")), s
    (_, s), grads = jax.value_and_grad(total, has_aux=True)([v.value for v in layer.trainable_variables])
    np.testing.assert_allclose(np.asarray(s, "float32"), 50.0, rtol=1e-2)
    assert all(np.isfinite(np.asarray(g)).all() for g in grads)
    keras.mixed_precision.set_dtype_policy("float32")
    # And a small model learns with fit (counting 6 bits; chance is about 1.6 nats).
    keras.utils.set_random_seed(0)
    bits = rng.integers(0, 2, size=(512, 6, 1)).astype("float32")
    y = bits.sum(axis=(1, 2)).astype("int32")
    for cls in (LSTM, GRU):
        model = keras.Sequential([keras.Input((6, 1)), cls(24), keras.layers.Dense(7)])
        model.compile(optimizer=keras.optimizers.Adam(0.02), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        loss = model.fit(bits, y, epochs=40, batch_size=64, verbose=0).history["loss"][-1]
        assert loss < 0.32, (cls.__name__, loss)
    print("JAX OK")
    """
)


def test_jax_backend_equivalence_gradients_and_learning(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", JAX_SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "JAX OK" in result.stdout


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_keeps_the_recurrent_state_in_float32(policy, jit_compile):
    """s(t) = s(t-1) + 0.1 for 500 steps: 50 in float32; bfloat16 arithmetic would stall at 32.
    Eagerly, and under `jit_compile=True` (where each step projects its own input)."""
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        layer = LSTM(1, return_state=True, candidate_activation="linear", unit_forget_bias=False)
        x = np.ones((2, 500, 1), "float32")
        layer(x[:, :1])
        # Gates saturated open (σ(20) = 1 in float32); the cell input is 0.1 at every step.
        layer.set_weights([np.array([[0, 0, 0.1, 0]], "float32"), np.zeros((1, 4), "float32"),
                           np.array([20, 20, 0, 20], "float32")])

        def run(x):
            with tf.GradientTape() as tape:
                outputs, h, s = layer(x, training=True)
                loss = tf.reduce_sum(tf.cast(outputs, "float32"))
            return outputs, s, tape.gradient(loss, layer.trainable_weights)

        outputs, s, grads = tf.function(run, jit_compile=True)(x) if jit_compile else run(x)
        assert outputs.dtype == layer.compute_dtype
        np.testing.assert_allclose(np.asarray(s, "float32"), 50.0, rtol=1e-2)
        assert all(np.isfinite(np.asarray(g)).all() for g in grads)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
