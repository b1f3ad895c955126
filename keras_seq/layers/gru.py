"""The fast full-sequence GRU (eq. 10.45-10.47), built on `keras_seq.cells.GRUCell`."""

import keras
from keras import ops

from keras_seq.cells.base import derivative_from_output
from keras_seq.cells.gru import GRUCell
from keras_seq.layers.base import SequenceLayer, forward_to_cell, scan, shift_in, sum_over_steps


@keras.saving.register_keras_serializable(package="keras_seq")
class GRU(SequenceLayer):
    """GRU over whole sequences, eq. 10.45-10.47 of *Deep Learning*:

        u = σ(b^u + U^u x + W^u h(t-1)),   r = σ(b^r + U^r x + W^r h(t-1))
        h(t) = u ⊙ h(t-1) + (1 - u) ⊙ σ(b + U x + W (r ⊙ h(t-1)))

    U x(t) for all steps and the three blocks is one matrix product before the loop. The gradient
    is written by hand (see `keras_seq.layers.base`). Arguments are those of
    `keras_seq.cells.GRUCell` (`candidate_activation="tanh"` equals
    `keras.layers.GRU(reset_after=False)`) and of `keras.layers.RNN`.

    Example:

    >>> import numpy as np
    >>> from keras_seq.layers import GRU
    >>> GRU(8)(np.zeros((2, 5, 3), "float32")).shape
    (2, 8)
    """

    cell_class = GRUCell
    differentiated_activations = ("recurrent_activation_name", "candidate_activation_name")
    num_internals = 4

    def backward(self, args, residuals, upstream):
        z, h0, W, step_mask, recurrent_mask = args
        hs, u, r, c, h_in = residuals
        (dhs,) = upstream
        cell = self.cell
        n = cell.units
        dsigma = derivative_from_output(cell.recurrent_activation_name)
        dcandidate = derivative_from_output(cell.candidate_activation_name)
        W_ur_t, W_t = ops.transpose(W[:, : 2 * n]), ops.transpose(W[:, 2 * n :])

        def step(dh_next, inputs):
            dh_t, m_t, h_prev, u_t, r_t, c_t, h_in_t = inputs
            dh = dh_next + dh_t
            da_c = dh * (1.0 - u_t) * dcandidate(c_t)  # 10.45, candidate
            d_rh = ops.matmul(da_c, W_t)
            da_ur = ops.concatenate(
                [dh * (h_prev - c_t) * dsigma(u_t), d_rh * h_in_t * dsigma(r_t)], axis=-1
            )  # 10.46, 10.47
            dh_in = d_rh * r_t + ops.matmul(da_ur, W_ur_t)
            dh_prev = dh * u_t + dh_in * recurrent_mask
            valid = m_t > 0
            da = ops.concatenate([da_ur, da_c], axis=-1)
            return ops.where(valid, dh_prev, dh), [ops.where(valid, da, ops.zeros_like(da))]

        dh0, (dz,) = scan(
            step, ops.zeros_like(h0), [dhs, step_mask, shift_in(h0, hs), u, r, c, h_in], 1, reverse=True
        )
        dW = ops.concatenate(
            [sum_over_steps(h_in, dz[..., : 2 * n]), sum_over_steps(r * h_in, dz[..., 2 * n :])], axis=1
        )
        return [dz, dh0, dW, ops.zeros_like(step_mask), ops.zeros_like(recurrent_mask)]


forward_to_cell(
    GRU,
    ["units", "recurrent_activation", "candidate_activation", "use_bias", "dropout",
     "recurrent_dropout", "U_u", "W_u", "b_u", "U_r", "W_r", "b_r", "U", "W", "b"],
)
