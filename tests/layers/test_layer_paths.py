"""The fast layers' separate paths: training (hand-written gradient, XLA-compiled loop inside a
`tf.function` on TensorFlow) and inference (no residuals, no XLA), against each other and against
the cell inside `keras.layers.RNN`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_seq.layers import GRU, LSTM, ElmanRNN
from test_layers import LAYERS, MASK, X, _assert_same, _loss, _pair


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_training_path_equals_cell_in_keras_rnn(name, masked, go_backwards):
    """training=True runs the hand-written gradient (where the activations have one)."""
    fast, slow = _pair(name, return_sequences=True, return_state=True, go_backwards=go_backwards)
    _assert_same(fast, slow, training=True, **({"mask": MASK} if masked else {}))


def _gradients(layer, x, **kwargs):
    with tf.GradientTape() as tape:
        outputs = layer(x, **kwargs)
        loss = _loss(outputs)
    return outputs, tape.gradient(loss, layer.trainable_weights)


@pytest.mark.parametrize("name", ["elman", "lstm_tanh", "gru_tanh"])
@pytest.mark.parametrize("masked", [False, True])
def test_compiled_training_loop_equals_eager_and_inference_gradients(name, masked):
    """Inside a tf.function the training loop is XLA-compiled; its outputs and gradients equal the
    eager hand-written ones and the automatic differentiation of the inference path."""
    fast, _ = _pair(name, return_sequences=True, return_state=True)
    kwargs = {"mask": MASK} if masked else {}
    eager_outputs, eager_grads = _gradients(fast, X, training=True, **kwargs)
    compiled_outputs, compiled_grads = tf.function(lambda x: _gradients(fast, x, training=True, **kwargs))(X)
    _, inference_grads = _gradients(fast, X, training=False, **kwargs)
    for a, b in zip(eager_outputs, compiled_outputs):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for a, b, c in zip(eager_grads, compiled_grads, inference_grads):
        np.testing.assert_allclose(a, b, atol=1e-5)
        np.testing.assert_allclose(a, c, atol=1e-5)


@pytest.mark.parametrize("cls", [ElmanRNN, LSTM, GRU])
def test_last_output_without_the_sequence(cls):
    """At inference without a mask, the last output comes from the final state alone."""
    layer = cls(5, return_state=True)
    full = cls(5, return_sequences=True, return_state=True)
    layer(X)
    full(X)
    full.set_weights(layer.get_weights())
    for a, b in zip(layer(X), [full(X)[0][:, -1], *full(X)[1:]]):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_fit_under_mirrored_strategy():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = keras.Sequential([keras.Input((7, 3)), LSTM(8, return_sequences=True), GRU(4, return_sequences=True), ElmanRNN(3)])
        model.compile(optimizer="adam", loss="mse")
    history = model.fit(X, np.ones((4, 3)), epochs=2, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_exported_inference_graph_has_no_xla(tmp_path):
    """The SavedModel must serve on a CPU without XLA: no function in it may be XLA-compiled."""
    model = keras.Sequential([keras.Input((7, 3)), LSTM(8, return_sequences=True), GRU(4)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, np.ones((4, 4)), epochs=1, verbose=0)  # traces (and compiles) the training loop
    model.export(str(tmp_path / "m"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "m"))
    graph = loaded.serve.get_concrete_function(tf.TensorSpec((None, 7, 3))).graph.as_graph_def()
    functions = list(graph.library.function)
    nodes = list(graph.node) + [n for f in functions for n in f.node_def]
    assert not any("_XlaMustCompile" in n.attr or n.op.startswith("Xla") for n in nodes)
    assert not any("_XlaMustCompile" in f.attr for f in functions)
    np.testing.assert_allclose(loaded.serve(X), model(X), atol=1e-5)


@pytest.mark.parametrize("name", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("compiled", [False, True])
def test_a_gradient_tape_without_training_runs_the_hand_written_backward_pass(name, compiled):
    """A custom loop differentiating `layer(x)` (no `training=True`) gets the hand-written gradient,
    equal to automatic differentiation of the cell in keras.layers.RNN; without a tape, inference
    keeps no residuals."""
    fast, slow = _pair(name, return_sequences=True, return_state=True)
    backward, forward, calls, kept = fast.backward, fast.forward, [], []
    fast.backward = lambda *args: calls.append(1) or backward(*args)
    fast.forward = lambda *args, **kwargs: kept.append(kwargs.get("keep_residuals", True)) or forward(*args, **kwargs)
    run = tf.function(lambda x: _gradients(fast, x)) if compiled else (lambda x: _gradients(fast, x))
    _, grads = run(X)
    _, want = _gradients(slow, X)
    assert calls and all(kept)
    for a, b in zip(grads, want):
        np.testing.assert_allclose(a, b, atol=1e-5)
    kept.clear()
    fast(X)
    assert kept and not any(kept)
