"""Keras's own recurrent-layer tests, re-expressed for keras-seq's `LSTM`, `GRU` and `SimpleRNN`.

The cases are those of `keras/src/layers/rnn/lstm_test.py`, `gru_test.py` and `simple_rnn_test.py`
at the tag of the installed Keras (KERAS_TAG; README.md here lists them, and which are skipped and
why). Each case builds keras-seq's layer with the arguments Keras's test gives its own, plus
`KERAS_MEANING`: the book's defaults that differ from Keras's set to Keras's (a tanh candidate; for
the GRU, `reset_after=True`), since Keras's expected numbers assume them. Where Keras's test asserts
hard-coded numbers (what its layer computes), this suite asserts that keras-seq's layer computes what
the installed Keras layer computes with the same arguments, so no number is copied. `test_basics`
runs Keras's own layer-test harness (`run_layer_test`: construction, config and serialization round
trips, symbolic and eager calls, masking, losses, a short `fit`, mixed precision) on keras-seq's class.
"""

import keras
import numpy as np
import pytest
from keras.initializers import Constant

from keras_seq.layers import GRU, LSTM, SimpleRNN

KERAS_TAG = "v3.15.1"

FAMILIES = {  # keras-seq's class, Keras's, and what makes keras-seq's compute Keras's maths
    "lstm": (LSTM, keras.layers.LSTM, {"candidate_activation": "tanh"}),
    "gru": (GRU, keras.layers.GRU, {"candidate_activation": "tanh", "reset_after": True}),
    "simple_rnn": (SimpleRNN, keras.layers.SimpleRNN, {}),
}
CONSTANT = dict(kernel_initializer=Constant(0.01), recurrent_initializer=Constant(0.02), bias_initializer=Constant(0.03))


def keras_meaning(family, kwargs):
    """keras-seq's arguments for Keras's `kwargs`: Keras's meaning where the book's default differs."""
    return {**FAMILIES[family][2], **kwargs}


def both(family, units, **kwargs):
    """keras-seq's layer and Keras's, built from the same arguments."""
    ours, theirs, _ = FAMILIES[family]
    return ours(units, **keras_meaning(family, kwargs)), theirs(units, **kwargs)


def assert_same(ours, theirs, *args, **kwargs):
    a, b = ours(*args, **kwargs), theirs(*args, **kwargs)
    a, b = (a, b) if isinstance(a, (list, tuple)) else ([a], [b])
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def keras_test_case():
    """Keras's `TestCase` (tests only: `run_layer_test` is Keras's own harness, under keras.src)."""
    from keras.src import testing

    return testing.TestCase(methodName="run_layer_test")


# -- test_basics: Keras's harness on keras-seq's class ------------------------------------------------
BASICS = [
    # (family, init_kwargs, call_kwargs, output shape, losses, non-trainable variables)
    ("lstm", {"units": 3, "dropout": 0.5}, {"training": True}, (3, 3), None, None),
    ("lstm", {"units": 3, "dropout": 0.5, "recurrent_dropout": 0.5}, {"training": True}, (3, 3), None, None),
    ("lstm", {"units": 3, "return_sequences": True, "bias_regularizer": "l1", "kernel_regularizer": "l2",
              "recurrent_regularizer": "l2"}, None, (3, 2, 3), 3, None),
    ("gru", {"units": 3, "dropout": 0.5}, {"training": True}, (3, 3), None, None),
    ("gru", {"units": 3, "dropout": 0.5, "recurrent_dropout": 0.5}, {"training": True}, (3, 3), None, None),
    ("gru", {"units": 3, "return_sequences": True, "bias_regularizer": "l1", "kernel_regularizer": "l2",
             "recurrent_regularizer": "l2"}, None, (3, 2, 3), 3, None),
    ("simple_rnn", {"units": 3, "dropout": 0.5, "recurrent_dropout": 0.5}, {"training": True}, (3, 3), None, 1),
    ("simple_rnn", {"units": 3, "return_sequences": True, "bias_regularizer": "l1", "kernel_regularizer": "l2",
                    "recurrent_regularizer": "l2"}, None, (3, 2, 3), 3, None),
]


@pytest.mark.parametrize("family, init_kwargs, call_kwargs, shape, losses, non_trainable", BASICS)
def test_basics(keras_test_case, family, init_kwargs, call_kwargs, shape, losses, non_trainable):
    keras_test_case.setUp()
    keras_test_case.run_layer_test(
        FAMILIES[family][0],
        init_kwargs=keras_meaning(family, init_kwargs),
        input_shape=(3, 2, 4),
        call_kwargs=call_kwargs,
        expected_output_shape=shape,
        expected_num_trainable_weights=3,
        expected_num_non_trainable_weights=0,
        expected_num_non_trainable_variables=non_trainable,
        expected_num_losses=losses,
        supports_masking=True,
    )


# -- test_correctness: constant weights, each variant of Keras's test ----------------------------------
CORRECTNESS = (
    [("lstm", 3, (3, 6, 4), dict(v, implementation=i)) for i in (1, 2) for v in
     [{}, {"go_backwards": True}, {"unroll": True}, {"unit_forget_bias": False}, {"use_bias": False}]]
    + [("gru", 3, (3, 6, 4), dict(v, implementation=i)) for i in (1, 2) for v in
       [{}, {"go_backwards": True}, {"unroll": True}, {"reset_after": False}, {"use_bias": False}]]
    + [("simple_rnn", 4, (2, 3, 4), v) for v in
       [{}, {"unroll": True}, {"go_backwards": True}, {"go_backwards": True, "unroll": True}]]
)


@pytest.mark.parametrize("family, units, shape, kwargs", CORRECTNESS)
def test_correctness(family, units, shape, kwargs):
    sequence = np.arange(np.prod(shape)).reshape(shape).astype("float32")
    assert_same(*both(family, units, **CONSTANT, **kwargs), sequence)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_statefulness(family):
    sequence = np.arange(24).reshape((2, 3, 4)).astype("float32")
    ours, theirs = both(family, 4, stateful=True, **CONSTANT)
    for _ in range(2):  # two calls carry the state; reset_state starts again
        ours(sequence)
        theirs(sequence)
        assert_same(ours, theirs, sequence)
        ours.reset_state()
        theirs.reset_state()


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("go_backwards", [False, True])
def test_pass_initial_state(family, go_backwards):
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    units = 4 if family == "simple_rnn" else 2
    state = np.arange(2 * units).reshape((2, units)).astype("float32")
    initial_state = [state, state] if family == "lstm" else state
    ours, theirs = both(family, units, go_backwards=go_backwards, **CONSTANT)
    assert_same(ours, theirs, sequence, initial_state=initial_state)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_pass_return_state(go_backwards):
    """GRU's: the output and the final state, from an initial state."""
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    initial_state = np.arange(4).reshape((2, 2)).astype("float32")
    ours, theirs = both("gru", 2, return_state=True, go_backwards=go_backwards, **CONSTANT)
    assert_same(ours, theirs, sequence, initial_state=initial_state)


MASKS = {  # Keras's masks: the LSTM's trail off, the GRU's and the SimpleRNN's have holes
    "lstm": (np.array([[True, True, True, False], [True, True, False, False]]),
             np.array([[False, True, True, True], [False, False, True, True]])),
    "gru": (np.array([[True, True, False, True], [True, False, False, True]]),) * 2,
    "simple_rnn": (np.array([[True, True, False, True], [True, False, False, True]]),) * 2,
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize(
    "kwargs", [{"unroll": True}, {"return_sequences": True},
               {"return_sequences": True, "zero_output_for_mask": True}, {"go_backwards": True}],
    ids=["unroll", "sequences", "zero_output", "backwards"],
)
def test_masking(family, kwargs):
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    forward_mask, backwards_mask = MASKS[family]
    mask = backwards_mask if kwargs.get("go_backwards") else forward_mask
    units = 4 if family == "simple_rnn" and not kwargs.get("return_sequences") else 2
    assert_same(*both(family, units, **CONSTANT, **kwargs), sequence, mask=mask)


def test_legacy_implementation_argument():
    """A config with Keras 1's `implementation=0` still loads (GRU's case)."""
    sequence = np.arange(72).reshape((3, 6, 4)).astype("float32")
    ours, theirs = both("gru", 3, **CONSTANT)
    config = ours.get_config()
    config["implementation"] = 0
    assert_same(GRU.from_config(config), theirs, sequence)


def test_stateful_with_symbolic_batch_size():
    """GRU's TensorFlow case: a stateful layer inside a tf.function with an unknown batch size."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow only, as in Keras's test")
    import tensorflow as tf

    layer = GRU(5, stateful=True, **FAMILIES["gru"][2])
    x = np.ones((2, 10, 10), dtype=np.float32)
    layer(x, training=True)
    f = tf.function(lambda x: layer(x, training=True), input_signature=[tf.TensorSpec((None, 10, 10), tf.float32)])
    assert tuple(f(x).shape) == (2, 5)


def test_torch_cudnn_dispatch_fires():
    pytest.skip("Keras's torch-backend cuDNN dispatch check: keras-seq has no cuDNN path (README.md)")
