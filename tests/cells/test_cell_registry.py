"""A new cell touches `keras_seq.cells` and `keras_seq.layers` only (ARCHITECTURE.md).

This file defines a toy cell and its fast layer, registers the layer under a cell type name by the
public mechanism (`keras_seq.layers.register_sequence_layer`), and then uses it by name in an
`EncoderDecoder` (teacher-forced pass, greedy decoding, `.keras` round trip) and in
`keras_seq.introspect`, none of which names the cell anywhere.
"""

import keras
import numpy as np
import pytest
from keras import ops

from keras_seq.cells import BookCell
from keras_seq.introspect import internals, names_of
from keras_seq.layers import (
    GRU, LSTM, ElmanRNN, SequenceLayer, cell_class_of, cell_types, register_sequence_layer,
    sequence_layer_class,
)
from keras_seq.models import EncoderDecoder

ALPHAS = {"mu_fast": 0.5, "mu_slow": 0.9}


class LeakyCell(BookCell):
    """Toy cell: an Elman recurrence read by two leaky units (Deep Learning, §10.9.2):

        a(t) = b + W h(t-1) + U x(t),   h(t) = tanh(a(t))          (10.8-10.9)
        μ(t) = α μ(t-1) + (1 - α) h(t)   for α = 0.5 (mu_fast) and 0.9 (mu_slow)

    Three states, (h, mu_fast, mu_slow): no book cell carries three, so a model that counts states
    itself, rather than asking the cell, gets it wrong.
    """

    state_names = ("h", "mu_fast", "mu_slow")
    internal_names = ("a", "h", "mu_fast", "mu_slow")
    pictured_internals = (("h", "h = tanh(a) (10.9)", (-1, 1)), ("mu_slow", "μ, α = 0.9", (-1, 1)))

    @property
    def state_size(self):
        return [self.units] * len(self.state_names)

    def recurrence(self, z, states, recurrent_kernel=None, recurrent_mask=None):
        h_tm1, *means = states
        W = self.recurrent_kernel if recurrent_kernel is None else recurrent_kernel
        h_in = h_tm1 if recurrent_mask is None else h_tm1 * recurrent_mask
        a = z + ops.matmul(h_in, W)
        h = self.activation(a)
        means = [alpha * mu + (1.0 - alpha) * h for alpha, mu in zip(ALPHAS.values(), means)]
        return h, [h, *means], (a,)

    def step_internals(self, z, states):
        _, new_states, (a,) = self.recurrence(z, states)
        return new_states, {"a": a, **dict(zip(self.state_names, new_states))}


@register_sequence_layer("leaky")
@keras.saving.register_keras_serializable(package="test_cell_registry")
class LeakyRNN(SequenceLayer):
    """The toy cell's fast layer (inference only: no hand-written backward pass)."""

    cell_class = LeakyCell


def test_the_book_cells_are_registered_by_the_names_models_take():
    assert {"elman", "lstm", "gru", "leaky"} <= set(cell_types())
    assert (sequence_layer_class("lstm"), sequence_layer_class("gru"), sequence_layer_class("elman")) == (
        LSTM, GRU, ElmanRNN)
    assert cell_class_of("leaky") is LeakyCell
    assert [len(cell_class_of(n).state_names) for n in ("lstm", "gru", "elman")] == [2, 1, 1]
    with pytest.raises(ValueError, match="Unknown cell type 'rnn'.*'leaky'"):
        sequence_layer_class("rnn")


def test_a_name_is_registered_once():
    register_sequence_layer("leaky")(LeakyRNN)  # the same class again: nothing happens
    with pytest.raises(ValueError, match="already registered"):
        register_sequence_layer("lstm")(LeakyRNN)
    with pytest.raises(TypeError, match="SequenceLayer"):
        register_sequence_layer("dense")(keras.layers.Dense)
    assert sequence_layer_class("lstm") is LSTM


def encoder_inputs():
    x = np.random.default_rng(0).integers(3, 12, size=(3, 6)).astype("int32")
    x[1, 4:] = 0  # padded
    return x


@pytest.mark.parametrize("bidirectional", [False, True], ids=["copy_bridge", "dense_bridge"])
def test_an_encoder_decoder_over_the_new_cell(bidirectional, tmp_path):
    keras.utils.set_random_seed(0)
    model = EncoderDecoder(
        12, 9, start_token=1, end_token=2, units=8, embedding_dim=4, cell="leaky",
        bidirectional_encoder=bidirectional, attention=bidirectional,
        candidate_activation="tanh",  # the LSTM's and GRU's setting: the toy cell takes none
        max_output_length=5,
    )
    model.build()
    bias = model.output_layer.bias  # untrained, it may emit the pad, which the decoder then skips
    bias.assign(ops.convert_to_numpy(bias) - 100.0 * np.eye(9, dtype="float32")[model.pad_token])
    x = encoder_inputs()
    out = model.generate(x, method="greedy")
    tokens, lengths = ops.convert_to_numpy(out["tokens"]), ops.convert_to_numpy(out["lengths"])
    assert tokens.shape == (3, 5) and model.states_per_layer == 3
    assert all(len(states) == 3 for states in model.initial_decoder_state(x)["rnn"])

    # The compiled loop steps the cell; a teacher-forced pass over its own output runs the fast
    # layer: both pick the same tokens.
    decoder_inputs = np.concatenate([np.ones((3, 1), "int32"), tokens[:, :-1]], axis=1)
    logits = ops.convert_to_numpy(model({"encoder_inputs": x, "decoder_inputs": decoder_inputs}))
    for row, length in enumerate(lengths):
        np.testing.assert_array_equal(logits[row, :length].argmax(-1), tokens[row, :length])

    path = tmp_path / "leaky.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert reloaded.get_config()["cell"] == "leaky"
    np.testing.assert_array_equal(ops.convert_to_numpy(reloaded.generate(x)["tokens"]), tokens)

    # introspect reads the encoder's cell like any book cell.
    embedded = model.source_embedding(ops.convert_to_tensor(x))
    inside = internals(model.encoder[0], embedded, mask=x != 0)
    parts = [inside["forward"], inside["backward"]] if bidirectional else [inside]
    for part in parts:
        assert tuple(part) == LeakyCell.internal_names and part["h"].shape == (3, 6, 8)


def test_introspect_reads_the_new_cell():
    layer = LeakyRNN(4, return_sequences=True)
    x = np.random.default_rng(1).normal(size=(2, 5, 3)).astype("float32")
    h = ops.convert_to_numpy(layer(x))
    assert names_of(layer) == ("a", "h", "mu_fast", "mu_slow")
    inside = internals(layer, x)
    np.testing.assert_allclose(inside["h"], h, atol=1e-6)
    np.testing.assert_allclose(inside["h"], np.tanh(inside["a"]), atol=1e-6)
    mu = np.zeros((2, 4), "float32")
    for t in range(5):  # μ(t) = α μ(t-1) + (1 - α) h(t), the slow unit
        mu = 0.9 * mu + 0.1 * inside["h"][:, t]
        np.testing.assert_allclose(inside["mu_slow"][:, t], mu, atol=1e-6)

    mask = np.array([[True] * 5, [True, True, True, False, False]])
    masked = internals(layer, x, mask=mask)
    # At masked steps the states carry over and every other quantity is 0.
    np.testing.assert_array_equal(masked["mu_fast"][1, 3:], masked["mu_fast"][1, [2, 2]])
    np.testing.assert_array_equal(masked["a"][1, 3:], 0.0)
