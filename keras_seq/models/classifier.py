"""Sequence → single output: the RNN of Fig. 10.5 of *Deep Learning* (Goodfellow, Bengio & Courville)."""

import keras

from keras_seq.models.base import BookModel, output_layer, recurrent_layer


@keras.saving.register_keras_serializable(package="keras_seq")
class SequenceClassifier(BookModel):
    """Reads a whole sequence and produces one output from its final state, Fig. 10.5:

        h(t) = f(b + W h(t-1) + U x(t))     for t = 1 ... τ (eq. 10.8-10.9 for the Elman cell)
        o = c + V h(τ),   ŷ = softmax(o)

    f is the recurrence of the chosen cell (Elman, LSTM or GRU), run by the fast
    `keras_seq.layers` layer (`self.rnn`). With a mask, h(τ) is the state after each sequence's
    last valid step, so padding does not change the output.

    Args:
        units: Positive integer, the size of h.
        output_units: Positive integer, the size of o.
        cell: "elman" (default), "lstm" or "gru".
        output_activation: Default "softmax"; None gives o itself (e.g. for regression).
        cell_options: A dict of further arguments of the cell.

    Call arguments:
        inputs: x, shape (batch, time, features).
        mask: Optional boolean (batch, time), False at padded steps.

    Example:

    >>> import numpy as np
    >>> from keras_seq.models import SequenceClassifier
    >>> tuple(SequenceClassifier(8, output_units=2, cell="lstm")(np.zeros((3, 6, 4), "float32")).shape)
    (3, 2)
    """

    figure = "10.5"

    def __init__(self, units, output_units, cell="elman", output_activation="softmax",
                 cell_options=None, **kwargs):
        super().__init__(**kwargs)
        self.units, self.output_units, self.cell = units, output_units, cell
        self.output_activation, self.cell_options = output_activation, dict(cell_options or {})
        self.rnn = recurrent_layer(cell, units, self.cell_options, name="rnn", dtype=self.dtype_policy)
        self.output_layer = output_layer(output_units, output_activation, dtype=self.dtype_policy)
        self.supports_masking = True

    def build(self, input_shape):
        self.rnn.build(input_shape)
        self.output_layer.build((None, self.units))
        self.built = True

    def call(self, inputs, training=None, mask=None):
        h_final = self.rnn(inputs, mask=mask, training=training)  # h(τ)
        return self.output_layer(h_final)

    def compute_mask(self, inputs, mask=None):
        return None  # one output per sequence: nothing left to mask

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "output_units": self.output_units,
            "cell": self.cell,
            "output_activation": self.output_activation,
            "cell_options": self.cell_options,
        }
