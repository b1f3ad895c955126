"""The fast full-sequence Elman RNN (eq. 10.8-10.11), built on `keras_seq.cells.ElmanCell`."""

import keras
from keras import ops

from keras_seq.cells.base import derivative_from_output
from keras_seq.cells.elman import ElmanCell
from keras_seq.layers.base import SequenceLayer, forward_to_cell, scan
from keras_seq.layers.registry import register_sequence_layer


@register_sequence_layer("elman")
@keras.saving.register_keras_serializable(package="keras_seq")
class ElmanRNN(SequenceLayer):
    """Elman RNN over whole sequences, eq. 10.8-10.11 (Fig. 10.3) of *Deep Learning*:

        a(t) = b + W h(t-1) + U x(t),   h(t) = tanh(a(t)),   o(t) = c + V h(t),   ŷ(t) = softmax(o(t))

    U x(t) for all steps is one matrix product before the loop and V h(t) one after it; the loop
    keeps W h(t-1) and tanh. The gradient is written by hand (see `keras_seq.layers.base`).
    Arguments are those of `keras_seq.cells.ElmanCell` and of `keras.layers.RNN`
    (`return_sequences`, `return_state`, `go_backwards`, `stateful`, `unroll`), as for
    `keras.layers.SimpleRNN`.

    Example:

    >>> import numpy as np
    >>> from keras_seq.layers import ElmanRNN
    >>> tuple(ElmanRNN(16, output_units=5, return_sequences=True)(np.zeros((2, 7, 3), "float32")).shape)
    (2, 7, 5)
    """

    cell_class = ElmanCell
    differentiated_activations = ("activation_name",)

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
    ["units", "activation", "output_units", "output_activation", "use_bias", "dropout",
     "recurrent_dropout", "U", "W", "b", "V", "c"],
)
