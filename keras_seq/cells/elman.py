"""The Elman RNN (hidden-to-hidden recurrence) of *Deep Learning*, eq. 10.8-10.11, Fig. 10.3."""

import keras
from keras import ops

from keras_seq.cells.base import BlockView, BookCell, activation_config, check_units, get_activation


class OutputLayerMixin:
    """The output layer o = c + V h, ŷ = output_activation(o) shared by the Elman-family cells."""

    V = property(lambda self: self.output_kernel, doc="V: hidden-to-output weights (eq. 10.10).")
    c = property(lambda self: self.output_bias, doc="c: output biases (eq. 10.10).")

    def _init_output_layer(self, output_units, output_activation):
        self.output_units = None if output_units is None else check_units(output_units, "output_units")
        self.output_activation_name = output_activation
        self.output_activation = get_activation(output_activation, "output_activation")
        self.output_kernel = self.output_bias = None

    def _build_output_layer(self):
        self.output_kernel = self.add_weight(
            shape=(self.units, self.output_units), name="output_kernel",
            initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.output_bias = None
        if self.use_bias:
            self.output_bias = self.add_weight(
                shape=(self.output_units,), name="output_bias", initializer=self.bias_initializer,
                regularizer=self.bias_regularizer, constraint=self.bias_constraint,
            )

    def output_logits(self, h):
        """o = c + V h (eq. 10.10), for one step or all steps at once."""
        o = ops.matmul(h, self.output_kernel)
        return o if self.output_bias is None else o + self.output_bias

    def _output_layer_config(self):
        return {
            "output_units": self.output_units,
            "output_activation": activation_config(self.output_activation_name),
        }


@keras.saving.register_keras_serializable(package="keras_seq")
class ElmanCell(OutputLayerMixin, BookCell):
    """`keras.layers.SimpleRNNCell`'s arguments and defaults, and an optional output layer.

    Elman RNN cell, eq. 10.8-10.11 of *Deep Learning* (Goodfellow, Bengio & Courville):

        a(t) = b + W h(t-1) + U x(t)      (10.8)
        h(t) = tanh(a(t))                 (10.9)
        o(t) = c + V h(t)                 (10.10, only with `output_units`)
        ŷ(t) = softmax(o(t))              (10.11, `output_activation`)

    Without `output_units` the cell's output is h(t): it is Keras's `SimpleRNNCell` with the book's
    names, argument for argument, and takes its weights (`set_weights`, `.weights.h5`) unchanged.
    With it, the output is ŷ(t) of size `output_units` and the state is still h(t).

    Weights: `kernel` U, `recurrent_kernel` W, `bias` b, and with an output layer `output_kernel`
    V and `output_bias` c; the book's names `U, W, b, V, c` are views of them.

    Args:
        units: Positive integer, the size of h.
        activation: The nonlinearity of eq. 10.9. Default "tanh".
        output_units: Size of o and ŷ, or None for no output layer. Default None.
        output_activation: The nonlinearity of eq. 10.11. Default "softmax".
        use_bias, *_initializer, *_regularizer, *_constraint, dropout, recurrent_dropout, seed:
            As for `keras_seq.cells.LSTMCell` (the output layer shares the kernel's and bias's).

    Example:

    >>> import keras, numpy as np
    >>> from keras_seq.cells import ElmanCell
    >>> rnn = keras.layers.RNN(ElmanCell(8, output_units=3), return_sequences=True)
    >>> tuple(rnn(np.zeros((2, 5, 4), "float32")).shape)
    (2, 5, 3)
    """

    blocks = 1
    U = BlockView("kernel", 0, "U")
    W = BlockView("recurrent_kernel", 0, "W")
    b = BlockView("bias", 0, "b")

    state_names = ("h",)
    pictured_internals = (
        ("a", "a = b + W h(t-1) + U x (10.8)", None),
        ("h", "h = tanh(a) (10.9)", (-1, 1)),
    )

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
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        output_units=None,
        output_activation="softmax",
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
        self._init_output_layer(output_units, output_activation)

    @property
    def output_size(self):
        return self.output_units or self.units

    def build(self, input_shape):
        super().build(input_shape)
        if self.output_units:
            self._build_output_layer()

    def recurrence(self, z, states, recurrent_kernel=None, recurrent_mask=None):
        """One step of eq. 10.8-10.9 given z = b + U x(t); returns `(h, [h], (h,))`."""
        h_tm1 = states[0]
        W = self.recurrent_kernel if recurrent_kernel is None else recurrent_kernel
        h_in = h_tm1 if recurrent_mask is None else h_tm1 * recurrent_mask
        h = self.activation(z + ops.matmul(h_in, W))  # 10.8-10.9
        return h, [h], (h,)

    def step_output(self, h):
        if self.output_units:
            return self.output_activation(self.output_logits(h))  # 10.10-10.11
        return h

    @property
    def internal_names(self):
        return ("a", "h", "o", "y") if self.output_units else ("a", "h")

    def step_internals(self, z, states):
        """One step's `(new_states, values)`: a = b + W h(t-1) + U x (10.8), h = tanh(a) (10.9),
        and with an output layer o = c + V h (10.10) and ŷ = softmax(o) (10.11) as `y`."""
        _, new_states, (h,) = self.recurrence(z, states)
        values = {"a": z + ops.matmul(states[0], self.recurrent_kernel), "h": h}  # 10.8
        if self.output_units:
            o = self.output_logits(h)
            values.update(o=o, y=self.output_activation(o))
        return new_states, values

    def get_config(self):
        return {**super().get_config(), **self._output_layer_config()}


@keras.saving.register_keras_serializable(package="keras_seq")
class OutputFeedbackCell(OutputLayerMixin, BookCell):
    """Output-to-hidden recurrence, Fig. 10.4 of *Deep Learning* (Goodfellow, Bengio & Courville):

        h(t) = tanh(b + W o(t-1) + U x(t))
        o(t) = c + V h(t)
        ŷ(t) = softmax(o(t))              (`output_activation`)

    The only recurrence is from the previous output o(t-1) to the hidden units, so the state is
    o(t-1) (size `output_units`) and W has shape (output_units, units). Less powerful than the
    Elman RNN (o must carry all the past), but trainable with teacher forcing (Fig. 10.6): feed the
    true y(t-1) in place of o(t-1) and all steps decouple (see `keras_seq.models`).

    Weights: `kernel` U, `recurrent_kernel` W, `bias` b, `output_kernel` V, `output_bias` c, with
    the book's names `U, W, b, V, c` as views.

    Args:
        units: Positive integer, the size of h.
        output_units: Positive integer, the size of o.
        activation: The hidden nonlinearity. Default "tanh".
        output_activation: Applied to o for the cell's output ŷ. Default "softmax".
        use_bias, *_initializer, *_regularizer, *_constraint, dropout, recurrent_dropout, seed:
            As for `keras_seq.cells.LSTMCell` (recurrent dropout drops o(t-1)).
    """

    blocks = 1
    U = BlockView("kernel", 0, "U")
    W = BlockView("recurrent_kernel", 0, "W")
    b = BlockView("bias", 0, "b")

    state_names = ("o",)  # o(t-1)
    internal_names = ("a", "h", "o", "y")

    def __init__(self, units, output_units, activation="tanh", output_activation="softmax", **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        if output_units is None:
            raise ValueError("OutputFeedbackCell needs `output_units`: its state is the output o.")
        self._init_output_layer(output_units, output_activation)

    @property
    def state_size(self):
        return [self.output_units]

    @property
    def output_size(self):
        return self.output_units

    @property
    def recurrent_input_size(self):
        return self.output_units

    def build(self, input_shape):
        super().build(input_shape)
        self._build_output_layer()

    def recurrence(self, z, states, recurrent_kernel=None, recurrent_mask=None):
        """One step of Fig. 10.4 given z = b + U x(t); returns `(ŷ, [o], (h, o))`."""
        o_tm1 = states[0]
        W = self.recurrent_kernel if recurrent_kernel is None else recurrent_kernel
        o_in = o_tm1 if recurrent_mask is None else o_tm1 * recurrent_mask
        h = self.activation(z + ops.matmul(o_in, W))
        o = self.output_logits(h)
        return self.output_activation(o), [o], (h, o)

    def step_internals(self, z, states):
        """One step's `(new_states, values)`: a = b + W o(t-1) + U x, h = tanh(a), o = c + V h and
        ŷ = softmax(o) as `y`."""
        new_states, (h, o) = self.recurrence(z, states)[1:]
        a = z + ops.matmul(states[0], self.recurrent_kernel)
        return new_states, {"a": a, "h": h, "o": o, "y": self.output_activation(o)}

    def carried_internals(self, states):
        """None: the state is o(t-1), shown as the step's o, which is 0 at a masked step like ŷ."""
        return {}

    def get_config(self):
        return {**super().get_config(), **self._output_layer_config()}
