"""Sequence → sequence of the same length with an output at every step: the RNN of Fig. 10.3 and
the bidirectional RNN of Fig. 10.11 of *Deep Learning* (Goodfellow, Bengio & Courville)."""

import keras

from keras_seq.models.base import BookModel, output_layer, recurrent_layer


@keras.saving.register_keras_serializable(package="keras_seq")
class SequenceTagger(BookModel):
    """An output at every step from hidden-to-hidden recurrence, Fig. 10.3 (eq. 10.8-10.11):

        a(t) = b + W h(t-1) + U x(t)      (10.8, inside the recurrent layer)
        h(t) = tanh(a(t))                 (10.9)
        o(t) = c + V h(t)                 (10.10, `output_layer`)
        ŷ(t) = softmax(o(t))              (10.11, `output_activation`)

    With `cell="lstm"` or `"gru"` the recurrence 10.8-10.9 is that of the LSTM (eq. 10.40-10.44) or
    the GRU (eq. 10.45-10.47); the output layer is the same. The recurrent layer is the fast
    `keras_seq.layers` layer of that cell (`self.rnn`).

    Padded steps are skipped when a mask is given (the `mask` call argument, or the mask of a
    `keras.layers.Masking` or `Embedding(mask_zero=True)` before the model): the state carries over
    them, and the mask is passed on with the outputs so that Keras's losses ignore those steps.

    Args:
        units: Positive integer, the size of h.
        output_units: Positive integer, the size of o (e.g. the number of classes).
        cell: The recurrence: "elman" (default), "lstm" or "gru".
        output_activation: The nonlinearity of eq. 10.11. Default "softmax"; None gives o itself.
        cell_options: A dict of further arguments of the cell (`keras_seq.cells`), e.g.
            `{"dropout": 0.1}` or `{"candidate_activation": "tanh"}`.

    Call arguments:
        inputs: x, shape (batch, time, features).
        mask: Optional boolean (batch, time), False at padded steps.

    Example:

    >>> import numpy as np
    >>> from keras_seq.models import SequenceTagger
    >>> model = SequenceTagger(16, output_units=3, cell="gru")
    >>> tuple(model(np.zeros((2, 7, 4), "float32")).shape)
    (2, 7, 3)
    """

    figure = "10.3"

    def __init__(self, units, output_units, cell="elman", output_activation="softmax",
                 cell_options=None, **kwargs):
        super().__init__(**kwargs)
        self.units, self.output_units, self.cell = units, output_units, cell
        self.output_activation, self.cell_options = output_activation, dict(cell_options or {})
        self.rnn = recurrent_layer(cell, units, self.cell_options, return_sequences=True, name="rnn",
                                   dtype=self.dtype_policy)
        self.output_layer = output_layer(output_units, output_activation, dtype=self.dtype_policy)
        self.supports_masking = True

    def build(self, input_shape):
        self.rnn.build(input_shape)
        self.output_layer.build((None, None, self.units))
        self.built = True

    def call(self, inputs, training=None, mask=None):
        h = self.rnn(inputs, mask=mask, training=training)
        return self.output_layer(h)

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "output_units": self.output_units,
            "cell": self.cell,
            "output_activation": self.output_activation,
            "cell_options": self.cell_options,
        }


@keras.saving.register_keras_serializable(package="keras_seq")
class BidirectionalTagger(BookModel):
    """Bidirectional RNN, Fig. 10.11: a forward state h(t) and a backward state g(t) at every step,
    combined into the output o(t), which so depends on the whole input sequence:

        h(t) = f(b + W h(t-1) + U x(t))          (forward, reads x(1) ... x(t))
        g(t) = f(b' + W' g(t+1) + U' x(t))       (backward, reads x(τ) ... x(t))
        o(t) = c + V [h(t); g(t)],   ŷ(t) = softmax(o(t))

    f is the recurrence of the chosen cell (Elman tanh, LSTM or GRU). The two directions are
    `keras.layers.Bidirectional` over the fast `keras_seq.layers` layer (`self.rnn`); `merge_mode`
    chooses how h(t) and g(t) are combined ("concat", the figure's, or "sum", "ave", "mul").
    With a mask, the backward direction starts at each sequence's last valid step.

    Args:
        units: Positive integer, the size of h and of g.
        output_units: Positive integer, the size of o.
        cell: "elman" (default), "lstm" or "gru".
        output_activation: Default "softmax"; None gives o itself.
        merge_mode: How h(t) and g(t) are combined. Default "concat".
        cell_options: A dict of further arguments of the cell.

    Call arguments:
        inputs: x, shape (batch, time, features).
        mask: Optional boolean (batch, time), False at padded steps.

    Example:

    >>> import numpy as np
    >>> from keras_seq.models import BidirectionalTagger
    >>> tuple(BidirectionalTagger(8, output_units=3, cell="lstm")(np.zeros((2, 5, 4), "float32")).shape)
    (2, 5, 3)
    """

    figure = "10.11"

    def __init__(self, units, output_units, cell="elman", output_activation="softmax",
                 merge_mode="concat", cell_options=None, **kwargs):
        super().__init__(**kwargs)
        self.units, self.output_units, self.cell = units, output_units, cell
        self.output_activation, self.merge_mode = output_activation, merge_mode
        self.cell_options = dict(cell_options or {})
        self.rnn = keras.layers.Bidirectional(
            recurrent_layer(cell, units, self.cell_options, return_sequences=True, dtype=self.dtype_policy),
            merge_mode=merge_mode, name="rnn", dtype=self.dtype_policy,
        )
        self.output_layer = output_layer(output_units, output_activation, dtype=self.dtype_policy)
        self.supports_masking = True

    def build(self, input_shape):
        self.rnn.build(input_shape)
        merged = 2 * self.units if self.merge_mode == "concat" else self.units
        self.output_layer.build((None, None, merged))
        self.built = True

    def call(self, inputs, training=None, mask=None):
        return self.output_layer(self.rnn(inputs, mask=mask, training=training))

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "output_units": self.output_units,
            "cell": self.cell,
            "output_activation": self.output_activation,
            "merge_mode": self.merge_mode,
            "cell_options": self.cell_options,
        }
