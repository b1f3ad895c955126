"""The book cells against NumPy references of the book's equations, golden values, and Keras's RNN."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import reference as ref
from keras_seq.cells import ElmanCell, GRUCell, LSTMCell, OutputFeedbackCell

RNG = np.random.default_rng(1234)
X = RNG.normal(size=(3, 6, 4)).astype("float32")
MASK = np.ones((3, 6), bool)
MASK[1, 4:] = False  # right padding
MASK[2, :] = False  # a fully padded row


def _randomize(layer):
    layer.set_weights([RNG.normal(scale=0.5, size=w.shape).astype("float32") for w in layer.get_weights()])


CASES = {
    "elman": (lambda: ElmanCell(5), lambda c: ref.elman_step(ref.book_weights(c, ref.ELMAN_NAMES)), 1),
    "elman_output": (
        lambda: ElmanCell(5, output_units=3),
        lambda c: ref.elman_step(ref.book_weights(c, ref.ELMAN_NAMES + ["V", "c"]), output_activation="softmax"),
        1,
    ),
    "output_feedback": (
        lambda: OutputFeedbackCell(5, output_units=3),
        lambda c: ref.output_feedback_step(ref.book_weights(c, ref.ELMAN_NAMES + ["V", "c"])),
        1,
    ),
    "lstm_sigmoid": (lambda: LSTMCell(5), lambda c: ref.lstm_step(ref.book_weights(c, ref.LSTM_NAMES)), 2),
    "lstm_tanh": (
        lambda: LSTMCell(5, candidate_activation="tanh"),
        lambda c: ref.lstm_step(ref.book_weights(c, ref.LSTM_NAMES), candidate="tanh"),
        2,
    ),
    "gru_sigmoid": (lambda: GRUCell(5), lambda c: ref.gru_step(ref.book_weights(c, ref.GRU_NAMES)), 1),
    "gru_tanh": (
        lambda: GRUCell(5, candidate_activation="tanh"),
        lambda c: ref.gru_step(ref.book_weights(c, ref.GRU_NAMES), candidate="tanh"),
        1,
    ),
}


def _initial_states(cell, batch):
    sizes = cell.state_size if isinstance(cell.state_size, (list, tuple)) else [cell.state_size]
    return [np.zeros((batch, n)) for n in sizes]


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_cell_in_keras_rnn_matches_numpy_reference(name, masked, go_backwards):
    make_cell, make_step, _ = CASES[name]
    cell = make_cell()
    layer = keras.layers.RNN(cell, return_sequences=True, return_state=True, go_backwards=go_backwards)
    layer(X)
    _randomize(layer)
    mask = MASK if masked else None
    outputs, *states = layer(X, mask=mask)
    expected, expected_states = ref.run(make_step(cell), X, _initial_states(cell, 3), mask, go_backwards)
    np.testing.assert_allclose(outputs, expected, atol=1e-5)
    for got, want in zip(states, expected_states):
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.isfinite(np.asarray(outputs)).all()


@pytest.mark.parametrize("name", sorted(CASES))
def test_cell_gradients_match_finite_differences_of_reference(name):
    """d loss / d weights under a gradient tape equals the reference's central differences."""
    make_cell, make_step, _ = CASES[name]
    cell = make_cell()
    layer = keras.layers.RNN(cell, return_sequences=True)
    x = X[:2, :4]
    layer(x)
    _randomize(layer)
    probe = RNG.normal(size=layer(x).shape)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x) * probe)
    grads = tape.gradient(loss, layer.trainable_weights)

    def ref_loss(weights):
        saved = layer.get_weights()
        layer.set_weights([w.astype("float32") for w in weights])
        # The reference reads the weights in float64 through the cell's book-name views.
        out, _ = ref.run(make_step(cell), x, _initial_states(cell, 2))
        layer.set_weights(saved)
        return np.sum(out * probe)

    weights = [np.asarray(w, np.float64) for w in layer.get_weights()]
    directions = [RNG.normal(size=w.shape) for w in weights]
    eps = 1e-3
    plus = ref_loss([w + eps * d for w, d in zip(weights, directions)])
    minus = ref_loss([w - eps * d for w, d in zip(weights, directions)])
    numeric = (plus - minus) / (2 * eps)
    analytic = sum(np.sum(np.asarray(g) * d) for g, d in zip(grads, directions))
    np.testing.assert_allclose(analytic, numeric, rtol=2e-3, atol=2e-3)


# Golden values: every weight 0.1 (constant initializers), x = [[1, 2], [3, 4], [5, 6]] (one
# sequence of 3 steps, 2 features), 2 units. The hard-coded values come from the hand-written
# loops below (plain Python from the equations, independent of keras_seq and of the NumPy reference).
GOLDEN_X = np.array([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]], "float32")
CONSTANT = dict(
    kernel_initializer=keras.initializers.Constant(0.1),
    recurrent_initializer=keras.initializers.Constant(0.1),
    bias_initializer=keras.initializers.Constant(0.1),
)


def _golden_elman():
    # a(t) = b + W h(t-1) + U x(t) with every entry 0.1; both units are equal.
    h = 0.0
    for x1, x2 in [(1, 2), (3, 4), (5, 6)]:
        h = np.tanh(0.1 + 0.1 * 2 * h + 0.1 * (x1 + x2))
    return h


def _golden_lstm(candidate):
    h = s = 0.0
    for x1, x2 in [(1, 2), (3, 4), (5, 6)]:
        a = 0.1 + 0.1 * (x1 + x2) + 0.1 * 2 * h
        f = ref.sigmoid(a + 0.9)  # unit_forget_bias: b^f = 1 rather than 0.1
        gate = ref.sigmoid(a)
        s = f * s + gate * ref.ACTIVATIONS[candidate](a)
        h = np.tanh(s) * ref.sigmoid(a)
    return h


def _golden_gru():
    h = 0.0
    for x1, x2 in [(1, 2), (3, 4), (5, 6)]:
        a = 0.1 + 0.1 * (x1 + x2) + 0.1 * 2 * h
        u = r = ref.sigmoid(a)
        h = u * h + (1 - u) * ref.sigmoid(0.1 + 0.1 * (x1 + x2) + 0.1 * 2 * r * h)
    return h


@pytest.mark.parametrize(
    "cell, expected",
    [
        (ElmanCell(2, **CONSTANT), 0.8718837),  # hand value of _golden_elman()
        (LSTMCell(2, **CONSTANT), 0.6817545),
        (LSTMCell(2, candidate_activation="tanh", **CONSTANT), 0.6678301),
        (GRUCell(2, **CONSTANT), 0.4649278),
    ],
    ids=["elman", "lstm_sigmoid", "lstm_tanh", "gru_sigmoid"],
)
def test_golden_values_from_constant_initializers(cell, expected):
    out = np.asarray(keras.layers.RNN(cell)(GOLDEN_X))
    np.testing.assert_allclose(out, np.full((1, 2), expected), atol=1e-6)


def test_golden_helpers_agree_with_the_hard_coded_values():
    np.testing.assert_allclose(_golden_elman(), 0.8718837, atol=1e-6)
    np.testing.assert_allclose(_golden_lstm("sigmoid"), 0.6817545, atol=1e-6)
    np.testing.assert_allclose(_golden_lstm("tanh"), 0.6678301, atol=1e-6)
    np.testing.assert_allclose(_golden_gru(), 0.4649278, atol=1e-6)


def test_book_views_are_the_blocks_of_the_fused_weights():
    cell = LSTMCell(3)
    keras.layers.RNN(cell)(X)
    kernel = np.asarray(cell.kernel)  # Keras's gate order [i | f | c | o] = the book's [g | f | c | q]
    np.testing.assert_array_equal(cell.U_g, kernel[:, 0:3])
    np.testing.assert_array_equal(cell.U_f, kernel[:, 3:6])
    np.testing.assert_array_equal(cell.U, kernel[:, 6:9])
    np.testing.assert_array_equal(cell.U_o, kernel[:, 9:12])
    np.testing.assert_array_equal(cell.b_f, np.ones(3))  # unit_forget_bias
    np.testing.assert_array_equal(np.asarray(cell.bias)[3:6], np.ones(3))  # where Keras puts it
    gru = GRUCell(3)
    keras.layers.RNN(gru)(X)
    np.testing.assert_array_equal(gru.W_r, np.asarray(gru.recurrent_kernel)[:, 3:6])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: LSTMCell(0), "units.*0"),
        (lambda: GRUCell(-3), "-3"),
        (lambda: ElmanCell(2.5), "2.5"),
        (lambda: LSTMCell(4, candidate_activation="softsign_typo"), "softsign_typo"),
        (lambda: GRUCell(4, recurrent_activation="nope"), "recurrent_activation.*nope"),
        (lambda: ElmanCell(4, output_units=0), "output_units"),
        (lambda: LSTMCell(4, dropout=1.5), "dropout.*1.5"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_the_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_wrong_input_rank_names_the_shape():
    cell = LSTMCell(4)
    with pytest.raises(ValueError, match=r"\(batch, features\).*\(2, 3, 4\)"):
        cell(np.zeros((2, 3, 4), "float32"), [np.zeros((2, 4), "float32")] * 2)
    cell(np.zeros((2, 4), "float32"), [np.zeros((2, 4), "float32")] * 2)  # built now
    with pytest.raises(ValueError, match=r"rank 3 with shape \(2, 3, 4\)"):
        cell.call(np.zeros((2, 3, 4), "float32"), [np.zeros((2, 4), "float32")] * 2)


@pytest.mark.parametrize("name", sorted(CASES))
def test_cell_config_json_round_trip_and_keras_file(name, tmp_path):
    make_cell, _, _ = CASES[name]
    cell = make_cell()
    config = json.loads(json.dumps(cell.get_config()))
    clone = type(cell).from_config(config)
    assert clone.get_config() == cell.get_config()

    inputs = keras.Input((6, 4))
    model = keras.Model(inputs, keras.layers.RNN(cell, return_sequences=True)(inputs))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded(X), model(X), atol=1e-6)


@pytest.mark.parametrize("cls", [LSTMCell, GRUCell, ElmanCell])
def test_dropout_uses_one_mask_per_sequence_and_only_in_training(cls):
    cell = cls(4, dropout=0.5, recurrent_dropout=0.5, seed=3)
    layer = keras.layers.RNN(cell, return_sequences=True)
    x = np.ones((2, 5, 3), "float32")
    inference = layer(x, training=False)
    np.testing.assert_allclose(layer(x, training=False), inference)
    trained = np.asarray(layer(x, training=True))
    assert not np.allclose(trained, inference)
    # One input mask for the whole sequence: with constant inputs and no recurrent dropout, the
    # dropped input features are the same at every step.
    probe = cls(4, dropout=0.5, seed=3)
    keras.layers.RNN(probe)(x)
    mask = np.asarray(probe.get_dropout_mask(x[:, 0]))
    probe.reset_dropout_mask()
    assert set(np.unique(mask)) <= {0.0, 2.0}


def test_docstring_examples_of_cells_and_layers_run():
    """The `Example:` sections of the cells and layers are doctests that pass."""
    import doctest

    import keras_seq.cells.elman
    import keras_seq.cells.gru
    import keras_seq.cells.lstm
    import keras_seq.layers.elman
    import keras_seq.layers.gru
    import keras_seq.layers.lstm

    modules = [keras_seq.cells.elman, keras_seq.cells.gru, keras_seq.cells.lstm,
               keras_seq.layers.elman, keras_seq.layers.gru, keras_seq.layers.lstm]
    for module in modules:
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.attempted > 0 and result.failed == 0, (module.__name__, result)
