"""The fast full-sequence Elman RNN (eq. 10.8-10.11), built on `keras_seq.cells.ElmanCell`."""

import keras
from keras import ops

from keras_seq.cells.base import derivative_from_output
from keras_seq.cells.elman import ElmanCell
from keras_seq.layers.base import KERAS_WEIGHT_SETTINGS, SequenceLayer, forward_to_cell, scan
from keras_seq.layers.registry import register_sequence_layer


@register_sequence_layer("elman")
@keras.saving.register_keras_serializable(package="keras_seq")
class ElmanRNN(SequenceLayer):
    """`keras.layers.SimpleRNN`'s arguments and defaults, and an optional output layer.

    Elman RNN over whole sequences, eq. 10.8-10.11 (Fig. 10.3) of *Deep Learning*:

        a(t) = b + W h(t-1) + U x(t),   h(t) = tanh(a(t)),   o(t) = c + V h(t),   ŷ(t) = softmax(o(t))

    A drop-in for `keras.layers.SimpleRNN`: every argument of it, with its default and meaning, and
    its properties; without `output_units` (the default) it computes what `SimpleRNN` computes and
    takes its weights (`set_weights`, a `.weights.h5` file) unchanged. `output_units` adds the
    book's output layer o = c + V h, ŷ = `output_activation`(o) (eq. 10.10-10.11), computed for all
    steps at once after the loop.

    U x(t) for all steps is one matrix product before the loop; the loop keeps W h(t-1) and tanh (in
    a loop that XLA compiles, inference and JAX's training compute each step's own U x(t) instead:
    see `keras_seq.layers.base.in_compiled_loop`).
    The gradient is written by hand (see `keras_seq.layers.base`).

    Example:

    >>> import numpy as np
    >>> from keras_seq.layers import ElmanRNN
    >>> tuple(ElmanRNN(16, output_units=5, return_sequences=True)(np.zeros((2, 7, 3), "float32")).shape)
    (2, 7, 5)
    """

    cell_class = ElmanCell
    differentiated_activations = ("activation_name",)

    def __init__(
        self,
        units,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        seed=None,
        output_units=None,
        output_activation="softmax",
        zero_output_for_mask=False,
        **kwargs,
    ):
        super().__init__(
            units, activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer, activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint, dropout=dropout, recurrent_dropout=recurrent_dropout,
            return_sequences=return_sequences, return_state=return_state,
            go_backwards=go_backwards, stateful=stateful, unroll=unroll, seed=seed,
            output_units=output_units, output_activation=output_activation,
            zero_output_for_mask=zero_output_for_mask, **kwargs,
        )

    def output_from_hidden(self, hs):
        cell = self.cell
        if not cell.output_units:
            return hs
        return cell.output_activation(cell.output_logits(hs))  # 10.10-10.11, all steps at once

    def backward_steps(self, args, residuals, upstream):
        *_, W, step_mask, recurrent_mask = args
        hs, _ = residuals
        dhs, dh_last = upstream
        dtanh = derivative_from_output(self.cell.activation_name)
        W_t = ops.transpose(W)

        def step(dh_next, inputs):
            dh_t, h_t = inputs[:2]
            dh = dh_next + dh_t
            da = dh * dtanh(h_t)  # dL/da(t), eq. 10.9
            dh_prev = ops.matmul(da, W_t)  # eq. 10.8
            if recurrent_mask is not None:
                dh_prev = dh_prev * recurrent_mask
            if step_mask is not None:  # a masked step passes the gradient through unchanged
                valid = inputs[2] > 0
                dh_prev, da = ops.where(valid, dh_prev, dh), ops.where(valid, da, ops.zeros_like(da))
            return dh_prev, [da]

        xs = [dhs, hs] + ([] if step_mask is None else [step_mask])
        dh0, (dz,) = scan(step, dh_last, xs, 1, reverse=True)
        return [dz, dh0]


forward_to_cell(
    ElmanRNN,
    ["units", "activation", "output_units", "output_activation", "use_bias", *KERAS_WEIGHT_SETTINGS,
     "dropout", "recurrent_dropout", "seed", "U", "W", "b", "V", "c"],
)


@keras.saving.register_keras_serializable(package="keras_seq")
class SimpleRNN(ElmanRNN):
    """`ElmanRNN` under Keras's name, so that a Keras weights file of `keras.layers.SimpleRNN` loads.

    Keras's weights files (`.weights.h5`, the weights in a `.keras` file) find each layer of a model
    under the snake-case name of its class ("simple_rnn", "simple_rnn_1", ...), so a model whose
    `keras.layers.SimpleRNN` became an `ElmanRNN` ("elman_rnn") finds nothing to load by path;
    with this class (`from keras_seq.layers import SimpleRNN`) it loads as is. Arguments,
    numbers and weights are those of `ElmanRNN` (and so of `keras.layers.SimpleRNN` without
    `output_units`). `LSTM` and `GRU` already have Keras's names.
    """
