"""The fast full-sequence LSTM (eq. 10.40-10.44), built on `keras_seq.cells.LSTMCell`."""

import keras
from keras import ops

from keras_seq.cells.base import derivative_from_output
from keras_seq.cells.lstm import LSTMCell, from_config_in_gate_order, legacy_lstm_config
from keras_seq.layers.base import KERAS_WEIGHT_SETTINGS, SequenceLayer, forward_to_cell, scan
from keras_seq.layers.registry import register_sequence_layer


@register_sequence_layer("lstm")
@keras.saving.register_keras_serializable(package="keras_seq")
class LSTM(SequenceLayer):
    """`keras.layers.LSTM`'s arguments, with one default from the book: the cell input is σ.

    LSTM over whole sequences, eq. 10.40-10.44 of *Deep Learning*:

        f = σ(b^f + U^f x + W^f h(t-1)),  g = σ(b^g + U^g x + W^g h(t-1)),  q = σ(b^o + U^o x + W^o h(t-1))
        s(t) = f ⊙ s(t-1) + g ⊙ σ(b + U x + W h(t-1)),   h(t) = tanh(s(t)) ⊙ q

    A drop-in for `keras.layers.LSTM`: every argument of it, with its default and meaning, the
    same properties (`units`, `activation`, `kernel_initializer`, `recurrent_regularizer`,
    `dropout`, ...), and the same fused weights in Keras's gate order [i | f | c | o] (the book's
    [g | f | c | q]; see `keras_seq.cells.LSTMCell`), so `set_weights(keras_lstm.get_weights())` and
    a Keras `.weights.h5` file load unchanged. The one default that differs is the book's:
    `candidate_activation=None` applies σ to the cell input while `activation` is left at tanh (and
    `activation`, as Keras does, once it is set to anything else); `candidate_activation="tanh"`
    computes exactly what `keras.layers.LSTM` computes. Old code passing `candidate_activation=`
    keeps its meaning.

    `use_cudnn` and `implementation` are Keras's performance switches and change nothing in the
    maths; this layer always runs its own loop ('auto' and False are accepted; True, which asks
    for cuDNN, raises a ValueError when called, as Keras does where cuDNN cannot run).
    `zero_output_for_mask` is `keras.layers.RNN`'s.

    U x(t) for all steps and all four blocks is one matrix product before the loop; the loop keeps
    the four products W^g h(t-1), W^f h(t-1), W h(t-1), W^o h(t-1) (independent, so they run at
    once) and the gate arithmetic. The gradient is written by hand, and used whenever a gradient is
    taken (`fit`, a `GradientTape` with or without `training=True`, `jax.grad`): back through the
    steps for the pre-activation gradients, then dW as one product (see `keras_seq.layers.base`).
    With `return_state=True` the states are `[h, s]`.

    Example:

    >>> import numpy as np
    >>> from keras_seq.layers import LSTM
    >>> out, h, s = LSTM(8, return_sequences=True, return_state=True)(np.zeros((2, 5, 3), "float32"))
    >>> tuple(out.shape), tuple(h.shape), tuple(s.shape)
    ((2, 5, 8), (2, 8), (2, 8))
    """

    cell_class = LSTMCell
    differentiated_activations = ("activation_name", "recurrent_activation_name", "candidate_activation_name")
    kept_previous_states = (1,)  # s(t-1)
    num_internals = 4  # the gates f, g, q and the cell input c

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        use_cudnn="auto",
        implementation=2,
        candidate_activation=None,
        zero_output_for_mask=False,
        **kwargs,
    ):
        super().__init__(
            units, activation=activation, recurrent_activation=recurrent_activation,
            use_bias=use_bias, kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias, kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
            dropout=dropout, recurrent_dropout=recurrent_dropout, seed=seed,
            return_sequences=return_sequences, return_state=return_state,
            go_backwards=go_backwards, stateful=stateful, unroll=unroll, use_cudnn=use_cudnn,
            implementation=implementation, candidate_activation=candidate_activation,
            zero_output_for_mask=zero_output_for_mask, **kwargs,
        )

    @classmethod
    def from_config(cls, config):
        return from_config_in_gate_order(lambda c: cls(**c), config, legacy_lstm_config(config))

    def backward_steps(self, args, residuals, upstream):
        *_, W, step_mask, recurrent_mask = args
        _, s_prev, f, g, c, q, _, s_last = residuals
        dhs, dh_last, ds_last = upstream
        cell = self.cell
        squash = cell.activation
        dsquash = derivative_from_output(cell.activation_name)
        dsigma = derivative_from_output(cell.recurrent_activation_name)
        dcandidate = derivative_from_output(cell.candidate_activation_name)
        # dh(t-1) = dA(t) Wᵀ: on JAX one product with the fused Wᵀ (see `in_compiled_loop`); on
        # TensorFlow block by block, four independent products, as in the forward pass.
        fused = keras.backend.backend() == "jax"
        W_T = ops.transpose(W) if fused else [ops.transpose(block) for block in cell.split_recurrent_kernel(W)]

        def step(carry, inputs):
            dh_next, ds_next, s_t = carry  # s(t): carried back from the step after
            dh_t, s_prev_t, f_t, g_t, c_t, q_t = inputs[:6]
            dh = dh_next + dh_t
            tanh_s = squash(s_t)
            ds = ds_next + dh * q_t * dsquash(tanh_s)  # 10.43
            da_f = ds * s_prev_t * dsigma(f_t)  # 10.41 through 10.40
            da_g = ds * c_t * dsigma(g_t)  # 10.42 through 10.40
            da_c = ds * g_t * dcandidate(c_t)  # the cell input of 10.40
            da_q = dh * tanh_s * dsigma(q_t)  # 10.44 through 10.43
            da = ops.concatenate([da_g, da_f, da_c, da_q], axis=-1)  # Keras's [i|f|c|o]
            if fused:
                dh_prev = ops.matmul(da, W_T)
            else:
                W_g_t, W_f_t, W_t, W_o_t = W_T
                dh_prev = (
                    ops.matmul(da_f, W_f_t) + ops.matmul(da_g, W_g_t) + ops.matmul(da_c, W_t)
                    + ops.matmul(da_q, W_o_t)
                )
            if recurrent_mask is not None:
                dh_prev = dh_prev * recurrent_mask
            ds_prev = ds * f_t
            if step_mask is not None:  # a masked step passes the gradients through unchanged
                valid = inputs[6] > 0
                dh_prev, ds_prev = ops.where(valid, dh_prev, dh), ops.where(valid, ds_prev, ds_next)
                da = ops.where(valid, da, ops.zeros_like(da))
            return [dh_prev, ds_prev, s_prev_t], [da]

        xs = [dhs, s_prev, f, g, c, q] + ([] if step_mask is None else [step_mask])
        (dh0, ds0, _), (dz,) = scan(step, [dh_last, ds_last, s_last], xs, 1, reverse=True)
        return [dz, dh0, ds0]


forward_to_cell(
    LSTM,
    ["units", "activation", "recurrent_activation", "candidate_activation", "use_bias",
     "unit_forget_bias", *KERAS_WEIGHT_SETTINGS, "dropout", "recurrent_dropout", "seed", "implementation",
     "U_f", "W_f", "b_f", "U_g", "W_g", "b_g", "U", "W", "b", "U_o", "W_o", "b_o"],
)
