"""The fast full-sequence GRU (eq. 10.45-10.47), built on `keras_seq.cells.GRUCell`."""

import keras
from keras import ops

from keras_seq.cells.base import derivative_from_output
from keras_seq.cells.gru import GRUCell
from keras_seq.layers.base import SequenceLayer, forward_to_cell, scan, sum_over_steps
from keras_seq.layers.registry import register_sequence_layer


@register_sequence_layer("gru")
@keras.saving.register_keras_serializable(package="keras_seq")
class GRU(SequenceLayer):
    """GRU over whole sequences, eq. 10.45-10.47 of *Deep Learning*:

        u = σ(b^u + U^u x + W^u h(t-1)),   r = σ(b^r + U^r x + W^r h(t-1))
        h(t) = u ⊙ h(t-1) + (1 - u) ⊙ σ(b + U x + W (r ⊙ h(t-1)))

    U x(t) for all steps and the three blocks is one matrix product before the loop; the loop keeps
    the products W^u h(t-1), W^r h(t-1) and W (r ⊙ h(t-1)) and the gate arithmetic. The gradient
    is written by hand (see `keras_seq.layers.base`). Arguments are those of
    `keras_seq.cells.GRUCell` (`candidate_activation="tanh"` equals
    `keras.layers.GRU(reset_after=False)`) and of `keras.layers.RNN`.

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

    def backward_steps(self, args, residuals, upstream):
        *_, W, step_mask, recurrent_mask = args
        _, h_prev, u, r, c, _ = residuals
        dhs, dh_last = upstream
        cell = self.cell
        dsigma = derivative_from_output(cell.recurrent_activation_name)
        dcandidate = derivative_from_output(cell.candidate_activation_name)
        W_u_t, W_r_t, W_t = [ops.transpose(block) for block in cell.split_recurrent_kernel(W)]

        def step(dh_next, inputs):
            dh_t, h_prev_t, u_t, r_t, c_t = inputs[:5]
            h_in = h_prev_t if recurrent_mask is None else h_prev_t * recurrent_mask
            dh = dh_next + dh_t
            da_c = dh * (1.0 - u_t) * dcandidate(c_t)  # 10.45, candidate
            d_rh = ops.matmul(da_c, W_t)
            da_u = dh * (h_prev_t - c_t) * dsigma(u_t)  # 10.46
            da_r = d_rh * h_in * dsigma(r_t)  # 10.47
            dh_in = d_rh * r_t + ops.matmul(da_u, W_u_t) + ops.matmul(da_r, W_r_t)
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
    ["units", "recurrent_activation", "candidate_activation", "use_bias", "dropout",
     "recurrent_dropout", "U_u", "W_u", "b_u", "U_r", "W_r", "b_r", "U", "W", "b"],
)
