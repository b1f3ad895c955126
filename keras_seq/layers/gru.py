"""The fast full-sequence GRU (eq. 10.45-10.47), built on `keras_seq.cells.GRUCell`."""

import keras
from keras import ops

from keras_seq.cells.base import derivative_from_output
from keras_seq.cells.gru import GRUCell
from keras_seq.layers.base import KERAS_WEIGHT_SETTINGS, SequenceLayer, forward_to_cell, scan, sum_over_steps
from keras_seq.layers.registry import register_sequence_layer


@register_sequence_layer("gru")
@keras.saving.register_keras_serializable(package="keras_seq")
class GRU(SequenceLayer):
    """`keras.layers.GRU`'s arguments, with two defaults from the book: a σ candidate and
    `reset_after=False`.

    GRU over whole sequences, eq. 10.45-10.47 of *Deep Learning*:

        u = σ(b^u + U^u x + W^u h(t-1)),   r = σ(b^r + U^r x + W^r h(t-1))
        h(t) = u ⊙ h(t-1) + (1 - u) ⊙ σ(b + U x + W (r ⊙ h(t-1)))

    A drop-in for `keras.layers.GRU`: every argument of it, with its meaning, the same properties
    and the same fused weights ([z | r | h] = the book's [u | r | candidate]). Two defaults are the
    book's: the candidate's nonlinearity is σ while `activation` is left at tanh
    (`candidate_activation`, as for `keras_seq.cells.GRUCell`), and `reset_after=False` (eq. 10.45;
    Keras's default `reset_after=True` is implemented as a non-book option, with Keras's (2, 3 units)
    bias, so that Keras's default GRU and its weights carry over: see `GRUCell`).
    `candidate_activation="tanh"` equals `keras.layers.GRU(reset_after=False)`, and with
    `reset_after=True` `keras.layers.GRU()`. `use_cudnn` and `implementation` are accepted and change
    nothing in the maths (as for `keras_seq.layers.LSTM`; `use_cudnn=True` raises when called).

    U x(t) for all steps and the three blocks is one matrix product before the loop; the loop keeps
    the products W^u h(t-1), W^r h(t-1) and W (r ⊙ h(t-1)) and the gate arithmetic (in a loop that XLA
    compiles, inference and JAX's training compute each step's own U x(t) instead:
    `keras_seq.layers.base.in_compiled_loop`). The gradient
    is written by hand and used whenever a gradient is taken (see `keras_seq.layers.base`); with
    `reset_after=True` the loop is differentiated automatically.

    Example:

    >>> import numpy as np
    >>> from keras_seq.layers import GRU
    >>> tuple(GRU(8)(np.zeros((2, 5, 3), "float32")).shape)
    (2, 8)
    """

    cell_class = GRUCell
    differentiated_activations = ("recurrent_activation_name", "candidate_activation_name")
    kept_previous_states = (0,)  # h(t-1)
    num_internals = 3  # the gates u, r and the candidate c

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
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
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        reset_after=False,
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
            kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer, activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint, dropout=dropout, recurrent_dropout=recurrent_dropout,
            seed=seed, return_sequences=return_sequences, return_state=return_state,
            go_backwards=go_backwards, stateful=stateful, unroll=unroll, reset_after=reset_after,
            use_cudnn=use_cudnn, implementation=implementation,
            candidate_activation=candidate_activation, zero_output_for_mask=zero_output_for_mask,
            **kwargs,
        )

    def _hand_written_gradient(self):
        return not self.cell.reset_after and super()._hand_written_gradient()

    def backward_steps(self, args, residuals, upstream):
        *_, W, step_mask, recurrent_mask = args
        _, h_prev, u, r, c, _ = residuals
        dhs, dh_last = upstream
        cell = self.cell
        dsigma = derivative_from_output(cell.recurrent_activation_name)
        dcandidate = derivative_from_output(cell.candidate_activation_name)
        W_u_t, W_r_t, W_t = [ops.transpose(block) for block in cell.split_recurrent_kernel(W)]
        # On JAX u's and r's products are one, with [W^u | W^r]ᵀ (see `in_compiled_loop`).
        W_ur_t = ops.transpose(W[:, : 2 * cell.units]) if keras.backend.backend() == "jax" else None

        def step(dh_next, inputs):
            dh_t, h_prev_t, u_t, r_t, c_t = inputs[:5]
            h_in = h_prev_t if recurrent_mask is None else h_prev_t * recurrent_mask
            dh = dh_next + dh_t
            da_c = dh * (1.0 - u_t) * dcandidate(c_t)  # 10.45, candidate
            d_rh = ops.matmul(da_c, W_t)
            da_u = dh * (h_prev_t - c_t) * dsigma(u_t)  # 10.46
            da_r = d_rh * h_in * dsigma(r_t)  # 10.47
            if W_ur_t is None:
                dh_in = d_rh * r_t + ops.matmul(da_u, W_u_t) + ops.matmul(da_r, W_r_t)
            else:
                dh_in = d_rh * r_t + ops.matmul(ops.concatenate([da_u, da_r], axis=-1), W_ur_t)
            dh_prev = dh * u_t + (dh_in if recurrent_mask is None else dh_in * recurrent_mask)
            da = ops.concatenate([da_u, da_r, da_c], axis=-1)
            if step_mask is not None:  # a masked step passes the gradient through unchanged
                valid = inputs[5] > 0
                dh_prev, da = ops.where(valid, dh_prev, dh), ops.where(valid, da, ops.zeros_like(da))
            return dh_prev, [da]

        xs = [dhs, h_prev, u, r, c] + ([] if step_mask is None else [step_mask])
        dh0, (dz,) = scan(step, dh_last, xs, 1, reverse=True)
        return [dz, dh0]

    def recurrent_kernel_gradient(self, args, residuals, dz):
        """dW: [W^u | W^r] multiply h_in(t-1), W multiplies r(t) ⊙ h_in(t-1)."""
        recurrent_mask, (_, h_prev, _, r, _, _), n = args[-1], residuals, self.cell.units
        h_in = h_prev if recurrent_mask is None else h_prev * recurrent_mask
        return ops.concatenate(
            [sum_over_steps(h_in, dz[..., : 2 * n]), sum_over_steps(r * h_in, dz[..., 2 * n :])], axis=1
        )


forward_to_cell(
    GRU,
    ["units", "activation", "recurrent_activation", "candidate_activation", "use_bias",
     *KERAS_WEIGHT_SETTINGS, "dropout", "recurrent_dropout", "reset_after", "seed", "implementation", "U_u", "W_u", "b_u", "U_r", "W_r", "b_r", "U", "W", "b"],
)
