"""The long short-term memory cell of *Deep Learning*, section 10.10.1, eq. 10.40-10.44."""

import contextlib
import contextvars

import keras
import numpy as np
from keras import ops

from keras_seq.cells.base import (
    BlockView, BookCell, activation_config, check_implementation, get_activation, is_tanh,
)

#: The order of the gate blocks in the fused LSTM weights: Keras's [i | f | c | o], which is the
#: book's [g | f | (cell input) | q]. Configs say so under `GATE_ORDER_KEY`; keras-seq before this
#: key existed fused the blocks as [f | g | c | q] (`LEGACY_GATE_ORDER`).
GATE_ORDER_KEY, GATE_ORDER, LEGACY_GATE_ORDER = "lstm_gate_order", "ifco", "fgcq"
_LEGACY_TO_KERAS = [1, 0, 2, 3]  # [f, g, c, q] -> [g, f, c, q] = [i, f, c, o]; its own inverse

_reading_legacy_config = contextvars.ContextVar("keras_seq_reading_legacy_lstm", default=False)


@contextlib.contextmanager
def legacy_gate_order():
    """Every `LSTMCell` made inside reads its next saved weights in the old [f|g|c|q] order."""
    token = _reading_legacy_config.set(True)
    try:
        yield
    finally:
        _reading_legacy_config.reset(token)


def from_config_in_gate_order(build, config, legacy):
    """`build(config)` without the gate-order key, inside `legacy_gate_order()` if the config was
    written before the key existed (`legacy`: what marks such a config) or names the old order.

    A `.keras` file of keras-seq before the change thus loads to the same numbers: its LSTM cells
    permute the blocks of the weights they read (`LSTMCell.load_own_variables`).
    """
    config = dict(config)
    order = config.pop(GATE_ORDER_KEY, LEGACY_GATE_ORDER if legacy else GATE_ORDER)
    if order not in (GATE_ORDER, LEGACY_GATE_ORDER):
        raise ValueError(
            f"Unknown `{GATE_ORDER_KEY}` {order!r} in a saved config; expected {GATE_ORDER!r} (Keras's "
            f"[i|f|c|o]) or {LEGACY_GATE_ORDER!r} (keras-seq's order before 2026-12)."
        )
    if order == LEGACY_GATE_ORDER:
        with legacy_gate_order():
            return build(config)
    return build(config)


def read_legacy_gate_order_next(layer):
    """Marks every `LSTMCell` in `layer` (a model or a layer) to reorder the next weights it loads
    from keras-seq's former [f|g|c|q]: for a weights file (`.weights.h5`, which has no config)
    known to be older than the Keras gate order, such as a backup that `--resume` reads."""
    for sublayer in layer._flatten_layers(include_self=True, recursive=True):
        if isinstance(sublayer, LSTMCell):
            sublayer.reads_legacy_gate_order = True


def legacy_lstm_config(config):
    """Whether a layer or cell config is an LSTM's saved by keras-seq before `GATE_ORDER_KEY`
    (it always had `candidate_activation`, which no Keras config has)."""
    return GATE_ORDER_KEY not in config and "candidate_activation" in config


@keras.saving.register_keras_serializable(package="keras_seq")
class LSTMCell(BookCell):
    """`keras.layers.LSTMCell`'s arguments, with one default from the book: the cell input is σ.

    LSTM cell, eq. 10.40-10.44 of *Deep Learning* (Goodfellow, Bengio & Courville):

        f(t) = σ(b^f + U^f x(t) + W^f h(t-1))                         (10.41, forget gate)
        g(t) = σ(b^g + U^g x(t) + W^g h(t-1))                         (10.42, external input gate)
        q(t) = σ(b^o + U^o x(t) + W^o h(t-1))                         (10.44, output gate)
        s(t) = f(t) ⊙ s(t-1) + g(t) ⊙ σ(b + U x(t) + W h(t-1))        (10.40, internal state)
        h(t) = tanh(s(t)) ⊙ q(t)                                      (10.43)

    Every argument of `keras.layers.LSTMCell` is here with Keras's default and meaning, and one
    more, `candidate_activation`, the nonlinearity of the cell input. Keras applies `activation`
    to the cell input and to the state (the tanh of eq. 10.43); the book applies σ to the cell input.
    So `candidate_activation=None` (the default) means: the book's σ while `activation` is left at
    tanh, and `activation` itself, as in Keras, when `activation` is set to anything else.
    `candidate_activation="tanh"` is exactly `keras.layers.LSTMCell` (PyTorch's and cuDNN's LSTM);
    a name given there always wins, and `activation` is then the state's squashing alone.

    The weights are fused as Keras fuses them, in the gate order [i | f | c | o], which is the book's
    [g | f | (cell input) | q]: `kernel` is [U^g | U^f | U | U^o], `recurrent_kernel`
    [W^g | W^f | W | W^o], `bias` [b^g | b^f | b | b^o]. So `set_weights` with the weights of a
    `keras.layers.LSTMCell` (and a Keras `.weights.h5` file) computes Keras's numbers (with
    `candidate_activation="tanh"`). Each block is readable under its book name: `U_f, W_f, b_f`
    (forget), `U_g, W_g, b_g` (input gate), `U, W, b` (cell input), `U_o, W_o, b_o` (output gate q).
    A `.keras` file saved by keras-seq before this order (2026-12; it fused [f | g | c | q]) loads
    to its old numbers: its config has no `lstm_gate_order`, and the cell reorders what it reads. A
    `.weights.h5` file has no config: one written by keras-seq before the change loads as it is
    (in Keras's order) unless `keras_seq.cells.lstm.read_legacy_gate_order_next(model)` is called
    before `model.load_weights` (`--resume` does so for its backups, whose metadata tells).

    The state is `[h, s]`; the output is h. Usable in `keras.layers.RNN`; `keras_seq.layers.LSTM`
    is the fast full-sequence layer built on this cell.

    Args:
        units: Positive integer, the number of cells (size of h and s).
        activation: The squashing of the state in eq. 10.43 (and, as in Keras, of the cell input
            unless `candidate_activation` says otherwise, see above). Default "tanh".
        recurrent_activation: The gates' nonlinearity σ. Default "sigmoid".
        use_bias: Whether the cell has biases b. Default True.
        kernel_initializer, recurrent_initializer, bias_initializer: Initializers of U, W and b.
        unit_forget_bias: Initialize b^f to 1 (Jozefowicz et al. 2015; the book's §10.10.1 notes
            the forget gate should start open). Default True.
        kernel_regularizer, recurrent_regularizer, bias_regularizer: Regularizers of U, W and b.
        kernel_constraint, recurrent_constraint, bias_constraint: Constraints of U, W and b.
        dropout: Fraction of the inputs x dropped (one mask per sequence). Default 0.
        recurrent_dropout: Fraction of h(t-1) dropped before W (one mask per sequence). Default 0.
        seed: Seed of the dropout masks.
        implementation: 1 or 2, Keras's switch between per-gate and fused products. Accepted for
            compatibility; it changes nothing here (the maths are the same either way in Keras too).
        candidate_activation: The cell input's nonlinearity in eq. 10.40; None (default): see above.

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

    U_g = BlockView("kernel", 0, "U^g")
    W_g = BlockView("recurrent_kernel", 0, "W^g")
    b_g = BlockView("bias", 0, "b^g")
    U_f = BlockView("kernel", 1, "U^f")
    W_f = BlockView("recurrent_kernel", 1, "W^f")
    b_f = BlockView("bias", 1, "b^f")
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
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        implementation=2,
        candidate_activation=None,
        **kwargs,
    ):
        super().__init__(
            units, activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
            dropout=dropout, recurrent_dropout=recurrent_dropout, seed=seed, **kwargs,
        )
        self.implementation = check_implementation(implementation)
        self.recurrent_activation_name = recurrent_activation
        self.recurrent_activation = get_activation(recurrent_activation, "recurrent_activation")
        if candidate_activation is None:  # the book's σ, or Keras's meaning of a chosen `activation`
            candidate_activation = "sigmoid" if is_tanh(activation) else activation
        self.candidate_activation_name = candidate_activation
        self.candidate_activation = get_activation(candidate_activation, "candidate_activation")
        self.unit_forget_bias = bool(unit_forget_bias)
        # Made from a config saved before the Keras gate order: the next weights read are reordered.
        self.reads_legacy_gate_order = _reading_legacy_config.get()

    @property
    def state_size(self):
        return [self.units, self.units]

    def _bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        units, rest = self.units, self.bias_initializer

        def initializer(shape, dtype=None):  # b^f = 1 (in the order [f|g|c|q]: see `_initializer`)
            return ops.concatenate([ops.ones((units,), dtype=dtype), rest((3 * units,), dtype=dtype)])

        return initializer

    def _initializer(self, initializer):
        """`initializer` drawn in keras-seq's former block order [f|g|c|q], then put in [i|f|c|o].

        Each gate so starts from the values it started from before the order changed (same seed,
        same initial gates), and seeded training runs reproduce their earlier results.
        """

        def in_gate_order(shape, dtype=None):
            blocks = ops.split(initializer(shape, dtype=dtype), 4, axis=-1)
            return ops.concatenate([blocks[j] for j in _LEGACY_TO_KERAS], axis=-1)

        return in_gate_order

    def load_own_variables(self, store):
        """Loads saved weights; those of a keras-seq file from before the Keras gate order (see the
        class docstring) are reordered from [f | g | c | q] to [g | f | c | q] on the way in."""
        if not self.reads_legacy_gate_order:
            return super().load_own_variables(store)
        self._check_load_own_variables(store)
        for i, variable in enumerate(self._trainable_variables + self._non_trainable_variables):
            blocks = np.split(np.asarray(store[f"{i}"]), 4, axis=-1)
            variable.assign(np.concatenate([blocks[j] for j in _LEGACY_TO_KERAS], axis=-1))
        self.reads_legacy_gate_order = False

    def split_recurrent_kernel(self, recurrent_kernel):
        """`(W_g, W_f, W, W_o)`: the blocks of W, each multiplied by h(t-1) in its own product."""
        return tuple(ops.split(recurrent_kernel, 4, axis=-1))

    def split_input_projection(self, z):
        """`(z_g, z_f, z_c, z_q)`: the blocks b^g + U^g x, b^f + U^f x, b + U x and b^o + U^o x."""
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
            z_g, z_f, z_c, z_q = z if isinstance(z, tuple) else self.split_input_projection(z)
            W_g, W_f, W, W_o = recurrent_kernel
            a_g, a_f = z_g + ops.matmul(h_in, W_g), z_f + ops.matmul(h_in, W_f)
            a_c, a_q = z_c + ops.matmul(h_in, W), z_q + ops.matmul(h_in, W_o)
        else:  # one step on its own (keras.layers.RNN, a decoder): one fused product, fewer ops
            z = ops.concatenate(z, axis=-1) if isinstance(z, tuple) else z
            W_all = self.recurrent_kernel if recurrent_kernel is None else recurrent_kernel
            a_g, a_f, a_c, a_q = ops.split(z + ops.matmul(h_in, W_all), 4, axis=-1)
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
            "implementation": self.implementation,
            # The order of the weights this cell holds (or, made from an old config and not yet
            # loaded, of those it is about to read).
            GATE_ORDER_KEY: LEGACY_GATE_ORDER if self.reads_legacy_gate_order else GATE_ORDER,
        }
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config):
        return from_config_in_gate_order(lambda c: cls(**c), config, legacy_lstm_config(config))
