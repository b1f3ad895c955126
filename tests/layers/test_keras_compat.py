"""The book layers and cells as drop-ins for Keras's: signatures, properties, configs, the meaning of
`activation`, weights (set_weights and Keras weights files) against keras.layers.LSTM/GRU/SimpleRNN,
and keras-seq `.keras` files saved before the LSTM's weights took Keras's gate order."""

import inspect
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_seq.cells import ElmanCell, GRUCell, LSTMCell
from keras_seq.layers import GRU, LSTM, ElmanRNN, SimpleRNN
from keras_seq.models import EncoderDecoder

DATA = Path(__file__).parent / "data"
RNG = np.random.default_rng(19)
X = RNG.normal(size=(3, 6, 4)).astype("float32")

# (book class, Keras class, the Keras defaults the book changes on purpose, as documented)
PAIRS = [
    (LSTM, keras.layers.LSTM, {}),
    (GRU, keras.layers.GRU, {"reset_after": False}),
    (ElmanRNN, keras.layers.SimpleRNN, {}),
    (SimpleRNN, keras.layers.SimpleRNN, {}),
    (LSTMCell, keras.layers.LSTMCell, {}),
    (GRUCell, keras.layers.GRUCell, {"reset_after": False}),
    (ElmanCell, keras.layers.SimpleRNNCell, {}),
]


def _parameters(cls):
    return {
        name: p for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD
    }


@pytest.mark.parametrize("book, keras_class, changed", PAIRS, ids=lambda v: getattr(v, "__name__", ""))
def test_every_keras_argument_is_an_explicit_parameter_with_keras_default(book, keras_class, changed):
    ours = _parameters(book)
    for name, parameter in _parameters(keras_class).items():
        assert name in ours, f"{book.__name__} lacks Keras's argument {name!r}"
        want = changed.get(name, parameter.default)
        assert ours[name].default == want, (name, ours[name].default, want)
    # What **kwargs still takes is the base layer's (name, dtype, ...): a cell argument is never hidden.
    with pytest.raises((TypeError, ValueError), match="not_an_argument"):
        book(3, not_an_argument=1)


@pytest.mark.parametrize(
    "book, keras_class, kwargs",
    [
        (LSTM, keras.layers.LSTM, {"unit_forget_bias": False}),
        (GRU, keras.layers.GRU, {"reset_after": True}),
        (ElmanRNN, keras.layers.SimpleRNN, {}),
    ],
    ids=["lstm", "gru", "elman"],
)
def test_keras_properties_have_keras_values(book, keras_class, kwargs):
    common = dict(
        kwargs, activation="relu", use_bias=False, kernel_initializer="ones", recurrent_initializer="zeros",
        kernel_regularizer="l2", recurrent_regularizer="l1", bias_constraint="non_neg", dropout=0.25,
        recurrent_dropout=0.5, seed=3,
    )
    ours, theirs = book(5, **common), keras_class(5, **common)
    names = [n for n, v in vars(keras_class).items() if isinstance(v, property)]
    assert {"units", "activation", "kernel_initializer", "recurrent_regularizer", "dropout"} <= set(names)
    for name in names:
        a, b = getattr(ours, name), getattr(theirs, name)
        if callable(b) or hasattr(b, "get_config"):  # activations, initializers, regularizers, constraints
            assert type(a) is type(b) and (keras.saving.serialize_keras_object(a)
                                           == keras.saving.serialize_keras_object(b)), name
        else:
            assert a == b, (name, a, b)


@pytest.mark.parametrize(
    "book, kwargs",
    [
        (LSTM, {"implementation": 1, "use_cudnn": False, "activation": "relu", "candidate_activation": "tanh"}),
        (GRU, {"reset_after": True, "implementation": 1, "kernel_regularizer": "l2", "activity_regularizer": "l1"}),
        (ElmanRNN, {"output_units": 2, "recurrent_constraint": "unit_norm", "seed": 5}),
        (SimpleRNN, {"activation": "relu"}),
    ],
    ids=["lstm", "gru", "elman", "simple_rnn"],
)
def test_get_config_round_trips(book, kwargs):
    layer = book(4, return_sequences=True, **kwargs)
    config = json.loads(json.dumps(layer.get_config()))
    clone = book.from_config(config)
    assert clone.get_config() == layer.get_config()
    clone(X)
    layer(X)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(X), layer(X), atol=1e-6)


def test_performance_switches_and_impossible_values():
    assert LSTM(3, implementation=1).cell.implementation == 1
    with pytest.raises(ValueError, match="implementation.*3"):
        LSTM(3, implementation=3)
    with pytest.raises(ValueError, match="use_cudnn.*maybe"):
        GRU(3, use_cudnn="maybe")
    layer = LSTM(3, use_cudnn=True)  # accepted, as in Keras; impossible when called (no cuDNN path)
    with pytest.raises(ValueError, match="use_cudnn=True.*'auto'"):
        layer(X)
    a, b = LSTM(3, use_cudnn=False, implementation=1), LSTM(3)
    a(X)
    b(X)
    b.set_weights(a.get_weights())
    np.testing.assert_allclose(a(X), b(X), atol=1e-6)


def test_activation_means_what_it_means_in_keras():
    # The book's default: σ on the LSTM's cell input and the GRU's candidate.
    assert LSTM(3).cell.candidate_activation_name == "sigmoid"
    assert GRU(3).cell.candidate_activation_name == "sigmoid"
    # Keras's activation, set: applied where Keras applies it (LSTM: cell input and state).
    assert LSTM(3, activation="relu").cell.candidate_activation_name == "relu"
    gru = GRU(3, activation="relu")
    assert gru.cell.candidate_activation_name == "relu" and gru.activation is keras.activations.relu
    # An explicit candidate_activation wins (old code keeps its meaning).
    lstm = LSTM(3, activation="relu", candidate_activation="sigmoid")
    assert lstm.cell.candidate_activation_name == "sigmoid" and lstm.activation is keras.activations.relu
    assert GRU(3, candidate_activation="tanh").cell.candidate_activation_name == "tanh"
    with pytest.raises(ValueError, match="one candidate nonlinearity"):
        GRU(3, activation="relu", candidate_activation="sigmoid")


def _random_weights(layer, scale=0.5):
    layer.set_weights([RNG.normal(scale=scale, size=w.shape).astype("float32") for w in layer.get_weights()])


KERAS_EQUIVALENTS = [
    (lambda: keras.layers.LSTM(5, return_sequences=True, use_cudnn=False),
     lambda: LSTM(5, return_sequences=True, candidate_activation="tanh")),
    (lambda: keras.layers.LSTM(5, activation="relu", return_sequences=True, use_cudnn=False),
     lambda: LSTM(5, activation="relu", return_sequences=True)),
    (lambda: keras.layers.GRU(5, return_sequences=True, use_cudnn=False),
     lambda: GRU(5, return_sequences=True, reset_after=True, candidate_activation="tanh")),
    (lambda: keras.layers.GRU(5, reset_after=False, activation="relu", return_sequences=True),
     lambda: GRU(5, activation="relu", return_sequences=True)),
    (lambda: keras.layers.SimpleRNN(5, return_sequences=True), lambda: SimpleRNN(5, return_sequences=True)),
]


@pytest.mark.parametrize("make_keras, make_book", KERAS_EQUIVALENTS, ids=["lstm", "lstm_relu", "gru", "gru_relu", "simple_rnn"])
def test_keras_weights_give_keras_numbers(make_keras, make_book, tmp_path):
    """set_weights(keras_layer.get_weights()) and a Keras .weights.h5 file, unchanged."""
    theirs = keras.Sequential([keras.Input(X.shape[1:]), make_keras()])
    _random_weights(theirs)
    ours = keras.Sequential([keras.Input(X.shape[1:]), make_book()])
    ours.layers[0].set_weights(theirs.layers[0].get_weights())
    np.testing.assert_allclose(ours(X), theirs(X), atol=1e-5)
    path = str(tmp_path / "keras.weights.h5")
    theirs.save_weights(path)
    again = keras.Sequential([keras.Input(X.shape[1:]), make_book()])
    again.load_weights(path)
    np.testing.assert_allclose(again(X), theirs(X), atol=1e-5)


def test_elman_takes_a_simple_rnn_s_weights_and_refuses_what_does_not_map():
    simple = keras.layers.SimpleRNN(5)
    simple(X)
    _random_weights(simple)
    elman = ElmanRNN(5)
    elman(X)
    elman.set_weights(simple.get_weights())
    np.testing.assert_allclose(elman(X), simple(X), atol=1e-5)
    with_output = ElmanRNN(5, output_units=2)
    with_output(X)
    with pytest.raises(ValueError, match=r"shapes \[\(4, 5\), \(5, 5\), \(5,\), \(5, 2\), \(2,\)\].*\[\(4, 5\), \(5, 5\), \(5,\)\]"):
        with_output.set_weights(simple.get_weights())
    keras_gru = keras.layers.GRU(5)  # reset_after=True: a (2, 15) bias
    keras_gru(X)
    book_gru = GRU(5)
    book_gru(X)
    with pytest.raises(ValueError, match=r"\(15,\).*\(2, 15\).*reset_after"):
        book_gru.set_weights(keras_gru.get_weights())


def test_keras_seq_files_saved_before_the_gate_order_change_load_to_their_numbers():
    """tests/layers/data was written by the code before the change (make_legacy_files.py)."""
    saved = np.load(DATA / "legacy_outputs.npz")
    layers = keras.saving.load_model(DATA / "legacy_layers.keras")
    np.testing.assert_allclose(layers(saved["x"]), saved["layers"], atol=1e-6)
    model = keras.saving.load_model(DATA / "legacy_seq2seq.keras")
    tokens = {"encoder_inputs": saved["encoder_inputs"], "decoder_inputs": saved["decoder_inputs"]}
    np.testing.assert_allclose(model(tokens), saved["seq2seq"], atol=1e-6)
    # Loaded, they hold Keras's order; saved again, they say so and load as they are.
    lstm = layers.layers[0]
    assert lstm.get_config()["lstm_gate_order"] == "ifco"
    assert model.get_config()["lstm_gate_order"] == "ifco"


def test_files_saved_now_load_to_the_same_numbers(tmp_path):
    layers = keras.Sequential([
        keras.Input(X.shape[1:]), LSTM(4, return_sequences=True),
        keras.layers.Bidirectional(LSTM(3, candidate_activation="tanh")),
    ])
    _random_weights(layers)
    layers.save(tmp_path / "layers.keras")
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "layers.keras")(X), layers(X), atol=1e-6)
    model = EncoderDecoder(7, 6, start_token=1, end_token=2, units=4, embedding_dim=3)
    tokens = {"encoder_inputs": np.array([[3, 4, 5]], "int32"), "decoder_inputs": np.array([[1, 3]], "int32")}
    model(tokens)
    _random_weights(model)
    model.save(tmp_path / "model.keras")
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "model.keras")(tokens), model(tokens), atol=1e-6)


def test_seeded_initial_weights_are_those_of_the_former_gate_order():
    """Each gate starts from the values it started from before the change (seeded runs reproduce):
    the former kernel [f|g|c|q] was the initializer's draw itself."""
    cell = LSTMCell(3, kernel_initializer=keras.initializers.GlorotUniform(seed=4))
    cell.build((None, 2))
    draw = np.asarray(keras.initializers.GlorotUniform(seed=4)((2, 12)))
    np.testing.assert_array_equal(cell.U_f, draw[:, 0:3])
    np.testing.assert_array_equal(cell.U_g, draw[:, 3:6])
    np.testing.assert_array_equal(cell.U_o, draw[:, 9:12])


def test_a_backup_written_before_the_gate_order_change_resumes_with_its_weights(tmp_path):
    """`--resume` reads latest.weights.h5 (no config): its metadata without `lstm_gate_order` says
    it was written in the former order [f|g|c|q], and the LSTM's weights are reordered."""
    from keras_seq.distribute import _Checkpoints

    def model():
        return keras.Sequential([keras.Input(X.shape[1:]), LSTM(3, return_sequences=True), GRU(2)])

    trained = model()
    _random_weights(trained)
    checkpoints = _Checkpoints(tmp_path, "epoch", is_chief=True)
    checkpoints.save(trained, epoch=1, steps_in_epoch=0, global_step=4)
    resumed = model()
    assert checkpoints.load(resumed) == (1, 0, 4)
    np.testing.assert_array_equal(resumed(X), trained(X))
    # The same backup as the former code wrote it: LSTM blocks [f|g|c|q], no gate order in the metadata.
    old = model()
    old.set_weights(trained.get_weights())
    lstm = old.layers[0].cell
    for variable in lstm.weights:
        i, f, c, o = np.split(np.asarray(variable), 4, axis=-1)
        variable.assign(np.concatenate([f, i, c, o], axis=-1))
    old.save_weights(str(tmp_path / "latest.weights.h5"))
    meta = json.loads((tmp_path / "training_metadata.json").read_text())
    del meta["lstm_gate_order"]
    (tmp_path / "training_metadata.json").write_text(json.dumps(meta))
    resumed = model()
    checkpoints.load(resumed)
    np.testing.assert_allclose(resumed(X), trained(X), atol=1e-6)
