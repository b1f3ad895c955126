"""`keras_seq.introspect.internals`: the per-step internals reproduce the layers' outputs."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_seq.cells import ElmanCell, GRUCell, LSTMCell, OutputFeedbackCell
from keras_seq.introspect import internals, names_of
from keras_seq.layers import GRU, LSTM, ElmanRNN

RNG = np.random.default_rng(0)
X = RNG.normal(size=(3, 6, 4)).astype("float32")
MASK = np.ones((3, 6), bool)
MASK[1, 4:] = False  # a padded sequence
MASK[2, :2] = False  # left padding


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def check_equations(kind, d):
    """The book's equations hold between the returned internals (NumPy, step by step)."""
    if kind == "lstm":
        np.testing.assert_allclose(d["h"], np.tanh(d["s"]) * d["q"], atol=1e-5)  # 10.43
        s_prev = np.concatenate([np.zeros_like(d["s"][:, :1]), d["s"][:, :-1]], axis=1)
        np.testing.assert_allclose(d["s"], d["f"] * s_prev + d["g"] * d["c"], atol=1e-5)  # 10.40
        for gate in "fgqc":
            assert d[gate].min() >= 0.0 and d[gate].max() <= 1.0
    elif kind == "gru":
        h_prev = np.concatenate([np.zeros_like(d["h"][:, :1]), d["h"][:, :-1]], axis=1)
        np.testing.assert_allclose(d["h"], d["u"] * h_prev + (1 - d["u"]) * d["c"], atol=1e-5)  # 10.45
    else:
        np.testing.assert_allclose(d["h"], np.tanh(d["a"]), atol=1e-5)  # 10.9


LAYERS = {"elman": ElmanRNN, "lstm": LSTM, "gru": GRU}


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_internals_follow_the_equations_and_reproduce_the_layer(kind):
    layer = LAYERS[kind](5, return_sequences=True)
    out = np.asarray(layer(X))
    d = internals(layer, X)
    assert set(d) == set(names_of(layer))
    assert all(v.shape == (3, 6, 5) for v in d.values())
    check_equations(kind, d)
    np.testing.assert_allclose(d["h"], out, atol=1e-6)


@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize("go_backwards", [False, True])
def test_masks_and_direction(kind, go_backwards):
    layer = LAYERS[kind](5, return_sequences=True, go_backwards=go_backwards)
    out = np.asarray(layer(X, mask=MASK))
    d = internals(layer, X, mask=MASK)
    # Internals are in input order; the layer's own output runs backwards with go_backwards.
    h, valid = (d["h"][:, ::-1], MASK[:, ::-1]) if go_backwards else (d["h"], MASK)
    np.testing.assert_allclose(h[valid], out[valid], atol=1e-6)
    gate = {"lstm": "f", "gru": "u", "elman": "a"}[kind]
    assert (d[gate][~MASK] == 0).all()  # nothing computed at padded steps
    # The state carries over padded steps: at the end it is the layer's final state.
    last = d["h"][:, 0] if go_backwards else d["h"][:, -1]
    full = LAYERS[kind].from_config({**layer.get_config(), "return_sequences": False})
    full.build(X.shape)
    full.set_weights(layer.get_weights())
    np.testing.assert_allclose(last, np.asarray(full(X, mask=MASK)), atol=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_bidirectional_gives_both_directions(kind):
    layer = keras.layers.Bidirectional(LAYERS[kind](4, return_sequences=True))
    out = np.asarray(layer(X, mask=MASK))
    d = internals(layer, X, mask=MASK)
    assert set(d) == {"forward", "backward"}
    merged = np.concatenate([d["forward"]["h"], d["backward"]["h"]], axis=-1)
    np.testing.assert_allclose(merged[MASK], out[MASK], atol=1e-6)
    check_equations(kind, {k: v[0:1] for k, v in d["forward"].items()})  # row 0 has no padding


def test_initial_state_and_default_outputs_unchanged():
    layer = LSTM(5, return_sequences=True, return_state=True)
    h0, s0 = RNG.normal(size=(2, 3, 5)).astype("float32")
    before = [np.asarray(t) for t in layer(X, initial_state=[h0, s0])]
    d = internals(layer, X, initial_state=[h0, s0])
    np.testing.assert_allclose(d["h"], before[0], atol=1e-6)
    np.testing.assert_allclose(d["s"][:, -1], before[2], atol=1e-6)
    np.testing.assert_allclose(d["f"][:, 0] * s0 + d["g"][:, 0] * d["c"][:, 0], d["s"][:, 0], atol=1e-5)
    after = [np.asarray(t) for t in layer(X, initial_state=[h0, s0])]
    for a, b in zip(before, after):  # asking for internals changes nothing
        np.testing.assert_array_equal(a, b)
    assert len(layer.get_config()) == len(LSTM.from_config(layer.get_config()).get_config())


def test_cells_in_keras_rnn_and_alone():
    for cell, key in [(LSTMCell(3), "h"), (GRUCell(3), "h"), (ElmanCell(3, output_units=2), "y"),
                      (OutputFeedbackCell(3, output_units=2), "y")]:
        rnn = keras.layers.RNN(cell, return_sequences=True)
        out = np.asarray(rnn(X))
        np.testing.assert_allclose(internals(rnn, X)[key], out, atol=1e-6)
        np.testing.assert_allclose(internals(cell, X)[key], out, atol=1e-6)
    d = internals(ElmanCell(3, output_units=2), X)
    assert set(d) == {"a", "h", "o", "y"}
    np.testing.assert_allclose(d["y"], np.asarray(ops.softmax(d["o"])), atol=1e-6)


def test_unknown_cells_and_bad_inputs_are_refused():
    with pytest.raises(TypeError, match="book cells"):
        internals(keras.layers.LSTM(3), X)
    with pytest.raises(ValueError, match="batch, time, features"):
        internals(LSTM(3), X[0])


def test_module_docstring_example_runs():
    import doctest

    import keras_seq.introspect

    result = doctest.testmod(keras_seq.introspect, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
