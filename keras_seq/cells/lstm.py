"""The long short-term memory cell of *Deep Learning*, section 10.10.1, eq. 10.40-10.44."""

import keras
from keras import ops

from keras_seq.cells.base import BlockView, BookCell, activation_config, get_activation


@keras.saving.register_keras_serializable(package="keras_seq")
class LSTMCell(BookCell):
    """LSTM cell, eq. 10.40-10.44 of *Deep Learning* (Goodfellow, Bengio & Courville):

        f(t) = σ(b^f + U^f x(t) + W^f h(t-1))                         (10.41, forget gate)
        g(t) = σ(b^g + U^g x(t) + W^g h(t-1))                         (10.42, external input gate)
        q(t) = σ(b^o + U^o x(t) + W^o h(t-1))                         (10.44, output gate)
        s(t) = f(t) ⊙ s(t-1) + g(t) ⊙ σ(b + U x(t) + W h(t-1))        (10.40, internal state)
        h(t) = tanh(s(t)) ⊙ q(t)                                      (10.43)

    The book applies a sigmoid to the cell input, σ(b + U x + W h): that is the default,
    `candidate_activation="sigmoid"`. `"tanh"` gives the usual LSTM of Keras, PyTorch and cuDNN
    (with `keras_seq.convert` mapping their weights). `recurrent_activation` is the gates' σ and
    `activation` the tanh of eq. 10.43.

    The weights are fused in the block order f, g, (cell input), q: `kernel` is
    [U^f | U^g | U | U^o], `recurrent_kernel` is [W^f | W^g | W | W^o] and `bias` is
    [b^f | b^g | b | b^o]. Each block is readable under its book name: `U_f, W_f, b_f` (forget),
    `U_g, W_g, b_g` (input gate), `U, W, b` (cell input), `U_o, W_o, b_o` (output gate q).

    The state is `[h, s]`; the output is h. Usable in `keras.layers.RNN`; `keras_seq.layers.LSTM`
    is the fast full-sequence layer built on this cell.

    Args:
        units: Positive integer, the number of cells (size of h and s).
        activation: The squashing of the state in eq. 10.43. Default "tanh".
        recurrent_activation: The gates' nonlinearity. Default "sigmoid".
        candidate_activation: The cell input's nonlinearity in eq. 10.40. Default "sigmoid" (book).
        use_bias: Whether the cell has biases b. Default True.
        unit_forget_bias: Initialize b^f to 1 (Jozefowicz et al. 2015; the book's §10.10.1 notes
            the forget gate should start open). Default True.
        kernel_initializer, recurrent_initializer, bias_initializer: Initializers of U, W and b.
        kernel_regularizer, recurrent_regularizer, bias_regularizer: Regularizers of U, W and b.
        kernel_constraint, recurrent_constraint, bias_constraint: Constraints of U, W and b.
        dropout: Fraction of the inputs x dropped (one mask per sequence). Default 0.
        recurrent_dropout: Fraction of h(t-1) dropped before W (one mask per sequence). Default 0.
        seed: Seed of the dropout masks.

    Call arguments:
        inputs: x(t), shape (batch, features).
        states: [h(t-1), s(t-1)], each of shape (batch, units).
        training: Whether dropout applies.

    Example:

    >>> import keras, numpy as np
    >>> from keras_seq.cells import LSTMCell
    >>> layer = keras.layers.RNN(LSTMCell(8))
    >>> tuple(layer(np.zeros((2, 5, 3), "float32")).shape)
    (2, 8)
    """

    blocks = 4

    U_f = BlockView("kernel", 0, "U^f")
    W_f = BlockView("recurrent_kernel", 0, "W^f")
    b_f = BlockView("bias", 0, "b^f")
    U_g = BlockView("kernel", 1, "U^g")
    W_g = BlockView("recurrent_kernel", 1, "W^g")
    b_g = BlockView("bias", 1, "b^g")
    U = BlockView("kernel", 2, "U")
    W = BlockView("recurrent_kernel", 2, "W")
    b = BlockView("bias", 2, "b")
    U_o = BlockView("kernel", 3, "U^o")
    W_o = BlockView("recurrent_kernel", 3, "W^o")
    b_o = BlockView("bias", 3, "b^o")

    state_names = ("h", "s")
    internal_names = ("f", "g", "c", "q", "s", "h")
    pictured_internals = (
        ("f", "f: forget gate (10.41)", (0, 1)),
        ("g", "g: input gate (10.42)", (0, 1)),
        ("q", "q: output gate (10.44)", (0, 1)),
        ("h", "h = tanh(s) ⊙ q (10.43)", (-1, 1)),
    )
    takes_candidate_activation = True

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        candidate_activation="sigmoid",
        unit_forget_bias=True,
        **kwargs,
    ):
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation_name = recurrent_activation
        self.recurrent_activation = get_activation(recurrent_activation, "recurrent_activation")
        self.candidate_activation_name = candidate_activation
        self.candidate_activation = get_activation(candidate_activation, "candidate_activation")
        self.unit_forget_bias = bool(unit_forget_bias)

    @property
    def state_size(self):
        return [self.units, self.units]

    def _bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        units, rest = self.units, self.bias_initializer

        def initializer(shape, dtype=None):
            return ops.concatenate(
                [ops.ones((units,), dtype=dtype), rest((3 * units,), dtype=dtype)]
            )

        return initializer

    def split_recurrent_kernel(self, recurrent_kernel):
        """`(W_f, W_g, W, W_o)`: the blocks of W, each multiplied by h(t-1) in its own product."""
        return tuple(ops.split(recurrent_kernel, 4, axis=-1))

    def split_input_projection(self, z):
        """`(z_f, z_g, z_c, z_q)`: the blocks b^f + U^f x, b^g + U^g x, b + U x and b^o + U^o x."""
        return tuple(ops.split(z, 4, axis=-1))

    def recurrence(self, z, states, recurrent_kernel=None, recurrent_mask=None):
        """One step of eq. 10.40-10.44 given z = b + U x(t) for the four blocks.

        `z` is fused or the blocks from `split_input_projection`; `recurrent_kernel` the blocks from
        `split_recurrent_kernel` (the fast layers' loops: each block's W h(t-1) is its own product,
        four independent products that TensorFlow runs at once on several cores), or a fused W, or
        None for the cell's own (one step on its own: one product for all blocks, fewer ops).

        Returns `(h, [h, s], gates)` where `gates = (f, g, c, q)` and c = σ(b + U x + W h) is the
        cell input; the fast layers keep the gates for their hand-written gradient.
        """
        h_tm1, s_tm1 = states
        h_in = h_tm1 if recurrent_mask is None else h_tm1 * recurrent_mask
        if isinstance(recurrent_kernel, tuple):  # a loop's blocks: one product per block
            z_f, z_g, z_c, z_q = z if isinstance(z, tuple) else self.split_input_projection(z)
            W_f, W_g, W, W_o = recurrent_kernel
            a_f, a_g = z_f + ops.matmul(h_in, W_f), z_g + ops.matmul(h_in, W_g)
            a_c, a_q = z_c + ops.matmul(h_in, W), z_q + ops.matmul(h_in, W_o)
        else:  # one step on its own (keras.layers.RNN, a decoder): one fused product, fewer ops
            z = ops.concatenate(z, axis=-1) if isinstance(z, tuple) else z
            W_all = self.recurrent_kernel if recurrent_kernel is None else recurrent_kernel
            a_f, a_g, a_c, a_q = ops.split(z + ops.matmul(h_in, W_all), 4, axis=-1)
        f = self.recurrent_activation(a_f)  # 10.41
        g = self.recurrent_activation(a_g)  # 10.42
        c = self.candidate_activation(a_c)  # the cell input of 10.40
        q = self.recurrent_activation(a_q)  # 10.44
        s = f * s_tm1 + g * c  # 10.40
        h = self.activation(s) * q  # 10.43
        return h, [h, s], (f, g, c, q)

    def step_internals(self, z, states):
        """One step's `(new_states, values)`: f forget gate (10.41), g external input gate (10.42),
        c cell input σ(b + U x + W h(t-1)) (10.40), q output gate (10.44), s internal state (10.40),
        h = tanh(s) ⊙ q (10.43)."""
        _, new_states, (f, g, c, q) = self.recurrence(z, states)
        h, s = new_states
        return new_states, {"f": f, "g": g, "c": c, "q": q, "s": s, "h": h}

    def get_config(self):
        config = {
            "recurrent_activation": activation_config(self.recurrent_activation_name),
            "candidate_activation": activation_config(self.candidate_activation_name),
            "unit_forget_bias": self.unit_forget_bias,
        }
        return {**super().get_config(), **config}
