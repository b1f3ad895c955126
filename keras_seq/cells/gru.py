"""The gated recurrent unit of *Deep Learning*, section 10.10.2, eq. 10.45-10.47."""

import keras
from keras import ops

from keras_seq.cells.base import BlockView, BookCell, activation_config, get_activation


@keras.saving.register_keras_serializable(package="keras_seq")
class GRUCell(BookCell):
    """GRU cell, eq. 10.45-10.47 of *Deep Learning* (Goodfellow, Bengio & Courville):

        u(t) = σ(b^u + U^u x(t) + W^u h(t-1))                                  (10.46, update gate)
        r(t) = σ(b^r + U^r x(t) + W^r h(t-1))                                  (10.47, reset gate)
        h(t) = u(t) ⊙ h(t-1) + (1 - u(t)) ⊙ σ(b + U x(t) + W (r(t) ⊙ h(t-1)))   (10.45)

    The book prints the gates of eq. 10.45 with index t-1 and x(t-1), which does not agree with
    eq. 10.46-10.47 nor with Cho et al. (2014); here, as in every GRU implementation, the gates and
    the candidate at step t are computed from x(t) and h(t-1).

    The book applies a sigmoid to the candidate: that is the default, `candidate_activation=
    "sigmoid"`; `"tanh"` gives the usual GRU, equal to `keras.layers.GRU(reset_after=False)` (whose
    update gate z is the book's u: `keras_seq.convert` maps its weights unchanged).

    The weights are fused in the block order u, r, (candidate): `kernel` is [U^u | U^r | U],
    `recurrent_kernel` is [W^u | W^r | W], `bias` is [b^u | b^r | b]; each block is readable
    under its book name (`U_u, W_u, b_u, U_r, W_r, b_r, U, W, b`).

    Args:
        units: Positive integer, the size of h.
        recurrent_activation: The gates' nonlinearity σ. Default "sigmoid".
        candidate_activation: The candidate's nonlinearity in eq. 10.45. Default "sigmoid" (book).
        use_bias, *_initializer, *_regularizer, *_constraint, dropout, recurrent_dropout, seed:
            As for `keras_seq.cells.LSTMCell`.

    Call arguments:
        inputs: x(t), shape (batch, features).
        states: [h(t-1)], shape (batch, units).
        training: Whether dropout applies.

    Example:

    >>> import keras, numpy as np
    >>> from keras_seq.cells import GRUCell
    >>> tuple(keras.layers.RNN(GRUCell(4, candidate_activation="tanh"))(np.ones((1, 3, 2))).shape)
    (1, 4)
    """

    blocks = 3

    U_u = BlockView("kernel", 0, "U^u")
    W_u = BlockView("recurrent_kernel", 0, "W^u")
    b_u = BlockView("bias", 0, "b^u")
    U_r = BlockView("kernel", 1, "U^r")
    W_r = BlockView("recurrent_kernel", 1, "W^r")
    b_r = BlockView("bias", 1, "b^r")
    U = BlockView("kernel", 2, "U")
    W = BlockView("recurrent_kernel", 2, "W")
    b = BlockView("bias", 2, "b")

    state_names = ("h",)
    internal_names = ("u", "r", "c", "h")
    pictured_internals = (
        ("u", "u: update gate (10.46)", (0, 1)),
        ("r", "r: reset gate (10.47)", (0, 1)),
        ("h", "h (10.45)", None),
    )
    takes_candidate_activation = True

    def __init__(self, units, recurrent_activation="sigmoid", candidate_activation="sigmoid", **kwargs):
        kwargs.pop("activation", None)  # the GRU has no separate output squashing
        super().__init__(units, activation="linear", **kwargs)
        self.recurrent_activation_name = recurrent_activation
        self.recurrent_activation = get_activation(recurrent_activation, "recurrent_activation")
        self.candidate_activation_name = candidate_activation
        self.candidate_activation = get_activation(candidate_activation, "candidate_activation")

    @property
    def state_size(self):
        return [self.units]

    def split_recurrent_kernel(self, recurrent_kernel):
        """`(W_u, W_r, W)`: the blocks of W, each in its own product."""
        return tuple(ops.split(recurrent_kernel, 3, axis=-1))

    def split_input_projection(self, z):
        """`(z_u, z_r, z_c)`: the blocks b^u + U^u x, b^r + U^r x and b + U x."""
        return tuple(ops.split(z, 3, axis=-1))

    def recurrence(self, z, states, recurrent_kernel=None, recurrent_mask=None):
        """One step of eq. 10.45-10.47 given z = b + U x(t) for the three blocks.

        `z` is fused or the blocks from `split_input_projection`; `recurrent_kernel` the blocks from
        `split_recurrent_kernel` (the fast layers' loops: each block's product is its own, so that
        TensorFlow runs those of u and r at once, and that of u beside the candidate's), or a fused
        W, or None for the cell's own (one step on its own: one product for u and r together).
        Returns `(h, [h], (u, r, c, h_in))`: c is the candidate σ(b + U x + W (r ⊙ h)), and h_in
        is h(t-1) after recurrent dropout, kept for the fast layers' hand-written gradient.
        """
        (h_tm1,) = states
        h_in = h_tm1 if recurrent_mask is None else h_tm1 * recurrent_mask
        if isinstance(recurrent_kernel, tuple):  # a loop's blocks: one product per block
            z_u, z_r, z_c = z if isinstance(z, tuple) else self.split_input_projection(z)
            W_u, W_r, W = recurrent_kernel
            u = self.recurrent_activation(z_u + ops.matmul(h_in, W_u))  # 10.46
            r = self.recurrent_activation(z_r + ops.matmul(h_in, W_r))  # 10.47
        else:  # one step on its own: one product for [W^u | W^r], fewer ops
            z = ops.concatenate(z, axis=-1) if isinstance(z, tuple) else z
            z_ur, z_c = ops.split(z, [2 * self.units], axis=-1)
            W_all = self.recurrent_kernel if recurrent_kernel is None else recurrent_kernel
            W_ur, W = W_all[:, : 2 * self.units], W_all[:, 2 * self.units :]
            u, r = ops.split(self.recurrent_activation(z_ur + ops.matmul(h_in, W_ur)), 2, axis=-1)  # 10.46, 10.47
        c = self.candidate_activation(z_c + ops.matmul(r * h_in, W))
        h = u * h_tm1 + (1.0 - u) * c  # 10.45
        return h, [h], (u, r, c, h_in)

    def step_internals(self, z, states):
        """One step's `(new_states, values)`: u update gate (10.46), r reset gate (10.47), c the
        candidate σ(b + U x + W (r ⊙ h(t-1))) and h (10.45)."""
        _, new_states, (u, r, c, _) = self.recurrence(z, states)
        return new_states, {"u": u, "r": r, "c": c, "h": new_states[0]}

    def get_config(self):
        config = super().get_config()
        config.pop("activation")
        config["recurrent_activation"] = activation_config(self.recurrent_activation_name)
        config["candidate_activation"] = activation_config(self.candidate_activation_name)
        return config
