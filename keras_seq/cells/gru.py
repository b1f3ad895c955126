"""The gated recurrent unit of *Deep Learning*, section 10.10.2, eq. 10.45-10.47."""

import keras
from keras import ops

from keras_seq.cells.base import (
    BlockView, BookCell, activation_config, activation_name, check_implementation, get_activation, is_tanh,
)


@keras.saving.register_keras_serializable(package="keras_seq")
class GRUCell(BookCell):
    """`keras.layers.GRUCell`'s arguments, with two defaults from the book: a σ candidate and
    `reset_after=False`.

    GRU cell, eq. 10.45-10.47 of *Deep Learning* (Goodfellow, Bengio & Courville):

        u(t) = σ(b^u + U^u x(t) + W^u h(t-1))                                  (10.46, update gate)
        r(t) = σ(b^r + U^r x(t) + W^r h(t-1))                                  (10.47, reset gate)
        h(t) = u(t) ⊙ h(t-1) + (1 - u(t)) ⊙ σ(b + U x(t) + W (r(t) ⊙ h(t-1)))   (10.45)

    The book prints the gates of eq. 10.45 with index t-1 and x(t-1), which does not agree with
    eq. 10.46-10.47 nor with Cho et al. (2014); here, as in every GRU implementation, the gates and
    the candidate at step t are computed from x(t) and h(t-1).

    Every argument of `keras.layers.GRUCell` is here, with Keras's meaning. Keras's `activation` is
    the candidate's nonlinearity, which the book takes to be σ; `candidate_activation` is another
    name for it: None (the default) means the book's σ while `activation` is left at tanh, and
    `activation` itself when it is set to anything else. `candidate_activation="tanh"` with
    `reset_after=False` is `keras.layers.GRUCell(reset_after=False)`, whose update gate z is the
    book's u (same weights, same numbers). After construction `activation` and
    `candidate_activation` both name the candidate's nonlinearity actually used.

    `reset_after`: Keras's default (True) and PyTorch's and cuDNN's GRU apply the reset gate after
    the recurrent product, c = act(b + U x + r ⊙ (W h(t-1) + b')), with a second bias b' for the
    recurrent product (`bias` then has shape (2, 3 units): [b; b']). That is not eq. 10.45 for any
    weights, so the book's `reset_after=False` is the default here; `reset_after=True` is
    implemented as a documented non-book option, so that Keras's default GRU and its weights
    (`set_weights`, `.weights.h5`) carry over unchanged. Its fast layer differentiates its loop
    automatically rather than by hand.

    The weights are fused in the block order u, r, (candidate), Keras's [z | r | h]: `kernel` is
    [U^u | U^r | U], `recurrent_kernel` is [W^u | W^r | W], `bias` is [b^u | b^r | b]; each block is
    readable under its book name (`U_u, W_u, b_u, U_r, W_r, b_r, U, W, b`; with `reset_after` the
    b views are of the input bias, the first row).

    Args:
        units: Positive integer, the size of h.
        activation: As in Keras, the candidate's nonlinearity (see above). Default "tanh".
        recurrent_activation: The gates' nonlinearity σ. Default "sigmoid".
        use_bias, *_initializer, *_regularizer, *_constraint, dropout, recurrent_dropout, seed:
            As for `keras_seq.cells.LSTMCell`.
        reset_after: Whether the reset gate multiplies W h(t-1) + b' (Keras's default, not the
            book's) rather than h(t-1) (eq. 10.45). Default False (the book).
        implementation: 1 or 2, Keras's switch between per-gate and fused products; accepted for
            compatibility, it changes nothing here.
        candidate_activation: The candidate's nonlinearity in eq. 10.45; None (default): see above.

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
    b_u = BlockView("input_bias", 0, "b^u")
    U_r = BlockView("kernel", 1, "U^r")
    W_r = BlockView("recurrent_kernel", 1, "W^r")
    b_r = BlockView("input_bias", 1, "b^r")
    U = BlockView("kernel", 2, "U")
    W = BlockView("recurrent_kernel", 2, "W")
    b = BlockView("input_bias", 2, "b")

    state_names = ("h",)
    internal_names = ("u", "r", "c", "h")
    pictured_internals = (
        ("u", "u: update gate (10.46)", (0, 1)),
        ("r", "r: reset gate (10.47)", (0, 1)),
        ("h", "h (10.45)", None),
    )
    takes_candidate_activation = True

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
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        reset_after=False,
        seed=None,
        implementation=2,
        candidate_activation=None,
        **kwargs,
    ):
        if candidate_activation is None:  # the book's σ, or Keras's meaning of a chosen `activation`
            candidate_activation = "sigmoid" if is_tanh(activation) else activation
        elif not is_tanh(activation) and activation_name(activation) != activation_name(candidate_activation):
            raise ValueError(
                f"GRUCell has one candidate nonlinearity, named `activation` (Keras) or "
                f"`candidate_activation` (keras-seq); got activation={activation!r} and "
                f"candidate_activation={candidate_activation!r}. Pass one of them."
            )
        super().__init__(
            units, activation=candidate_activation, use_bias=use_bias,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint, dropout=dropout, recurrent_dropout=recurrent_dropout,
            seed=seed, **kwargs,
        )
        self.implementation = check_implementation(implementation)
        self.reset_after = bool(reset_after)
        self.recurrent_activation_name = recurrent_activation
        self.recurrent_activation = get_activation(recurrent_activation, "recurrent_activation")
        self.candidate_activation_name = candidate_activation
        self.candidate_activation = self.activation  # one nonlinearity, two names

    @property
    def state_size(self):
        return [self.units]

    def _bias_shape(self, n):
        """(n,), or with `reset_after` (2, n): [b; b'], the input bias and the recurrent one."""
        return (2, n) if self.reset_after else (n,)

    @property
    def input_bias(self):
        """b: the bias added to U x (the first row of `bias` with `reset_after`)."""
        return self.bias[0] if self.reset_after and self.bias is not None else self.bias

    def input_projection(self, x, kernel=None, bias=None):
        bias = self.bias if bias is None else bias
        if self.reset_after and bias is not None:
            bias = bias[0]
        return super().input_projection(x, kernel, bias)

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
        if self.reset_after:
            return self._recurrence_reset_after(z, h_tm1, h_in, recurrent_kernel)
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

    def _recurrence_reset_after(self, z, h_tm1, h_in, recurrent_kernel):
        """Keras's `reset_after=True` step: c = act(b + U x + r ⊙ (W h(t-1) + b')), not the book's."""
        z = ops.concatenate(z, axis=-1) if isinstance(z, tuple) else z
        if isinstance(recurrent_kernel, tuple):
            recurrent_kernel = ops.concatenate(recurrent_kernel, axis=-1)
        W_all = self.recurrent_kernel if recurrent_kernel is None else recurrent_kernel
        a = ops.matmul(h_in, W_all)
        if self.use_bias:
            a = a + ops.cast(self.bias[1], a.dtype)
        z_u, z_r, z_c = ops.split(z, 3, axis=-1)
        a_u, a_r, a_c = ops.split(a, 3, axis=-1)
        u = self.recurrent_activation(z_u + a_u)
        r = self.recurrent_activation(z_r + a_r)
        c = self.candidate_activation(z_c + r * a_c)
        h = u * h_tm1 + (1.0 - u) * c
        return h, [h], (u, r, c, h_in)

    def step_internals(self, z, states):
        """One step's `(new_states, values)`: u update gate (10.46), r reset gate (10.47), c the
        candidate σ(b + U x + W (r ⊙ h(t-1))) and h (10.45)."""
        _, new_states, (u, r, c, _) = self.recurrence(z, states)
        return new_states, {"u": u, "r": r, "c": c, "h": new_states[0]}

    def get_config(self):
        config = super().get_config()
        config["recurrent_activation"] = activation_config(self.recurrent_activation_name)
        config["candidate_activation"] = activation_config(self.candidate_activation_name)
        config["reset_after"] = self.reset_after
        config["implementation"] = self.implementation
        return config
