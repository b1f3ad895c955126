"""What every book cell shares: argument checks, fused weights with per-block views, dropout, config.

Each cell stores its weights fused, as Keras does (one `kernel` U, one `recurrent_kernel` W and one
`bias` b for all gates side by side), because one matrix product for all gates is fastest for U x
(the fast layers' loops split W into its blocks once: independent per-block products run at once on
several cores and need no per-step split). The book
names each block separately (U^f, W^f, b^f for the forget gate, ...); `BlockView` gives those names
back as read-only views for inspection: `cell.U_f` is the forget gate's block of `cell.kernel`.
"""

import keras
from keras import ops

# What `keras.layers.RNN` looks for to prepare one dropout mask per sequence (see the module).
from keras_seq.cells._keras_private import DropoutRNNCell

# Activations whose derivative can be written from their output alone; the fast layers' hand-written
# gradients support these and fall back to automatic differentiation for any other.
_DERIVATIVE_FROM_OUTPUT = {
    "tanh": lambda y: 1.0 - y * y,
    "sigmoid": lambda y: y * (1.0 - y),
    "linear": lambda y: ops.ones_like(y),
    "relu": lambda y: ops.cast(y > 0, y.dtype),
}


def get_activation(identifier, argument):
    """Resolve an activation name or callable; a ValueError names the argument and the bad value."""
    if identifier is None:
        return keras.activations.linear
    try:
        fn = keras.activations.get(identifier)
    except (ValueError, TypeError):
        fn = None
    if fn is None:
        raise ValueError(
            f"Unknown activation for `{argument}`: {identifier!r}. Use a name such as 'tanh', "
            "'sigmoid', 'relu' or 'linear', or a callable."
        )
    return fn


def activation_config(identifier):
    """What `get_config` stores for an activation argument: its name, or its serialized callable."""
    if identifier is None or isinstance(identifier, str):
        return identifier
    return keras.activations.serialize(identifier)


def activation_name(identifier):
    """The Keras name of a built-in activation given by name or as its function, else None."""
    if identifier is None:
        return "linear"
    if isinstance(identifier, str):
        return identifier
    try:
        name = keras.activations.serialize(identifier)
    except (ValueError, TypeError):
        return None
    return name if isinstance(name, str) else None


def derivative_from_output(identifier):
    """The derivative of an activation (a name or a built-in's function) as a function of its
    output, or None if not supported."""
    return _DERIVATIVE_FROM_OUTPUT.get(activation_name(identifier))


def is_tanh(identifier):
    """Whether an activation argument is tanh (by name or as `keras.activations.tanh`)."""
    return identifier is not None and get_activation(identifier, "activation") is keras.activations.tanh


def check_implementation(value):
    """Keras's `implementation` switch: 1 or 2 (or Keras 1's 0, which Keras's configs may still
    hold): how Keras batches its products, never the maths; nothing in keras-seq."""
    if value not in (0, 1, 2) or isinstance(value, bool):
        raise ValueError(
            f"Argument `implementation` must be 1 or 2 (as in Keras; it changes how Keras batches "
            f"its products, and nothing in keras-seq), got {value!r}."
        )
    return value


def check_units(value, argument="units"):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(
            f"Received an invalid value for argument `{argument}`, expected a positive integer, "
            f"got {value!r}."
        )
    return value


def check_rate(value, argument):
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"Argument `{argument}` must be in [0, 1], got {value!r}.")
    return float(value)


class BlockView:
    """A read-only view of one gate's block of a fused weight, under the book's name.

    `U_f = BlockView("kernel", 0, "U^f")` makes `cell.U_f` return `cell.kernel[:, 0:units]`.
    """

    def __init__(self, weight, block, book_name):
        self.weight, self.block, self.book_name = weight, block, book_name

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, cell, owner=None):
        if cell is None:
            return self
        variable = getattr(cell, self.weight, None)
        if variable is None:
            raise AttributeError(
                f"{type(cell).__name__}.{self.name} ({self.book_name}) does not exist before the cell "
                "is built, or without a bias (use_bias=False)."
            )
        start, stop = self.block * cell.units, (self.block + 1) * cell.units
        return variable[..., start:stop]


class BookCell(keras.layers.Layer, DropoutRNNCell):
    """Base of the book cells: `blocks` gate blocks of U (input), W (recurrent) and b (bias).

    Subclasses set `blocks` (how many blocks of `units` columns the fused weights have) and implement
    `recurrence(z, states, recurrent_kernel, recurrent_mask)`: one step of the book's equations given
    `z = b + U x(t)` for all blocks (fused, or as `split_input_projection` returns it) and W (as
    `split_recurrent_kernel` returns it, or None for the cell's own). `call` projects the input and runs one recurrence step; the fast
    sequence layers project all steps at once and loop over `recurrence` alone.

    Each cell also states, under the book's names, what the code around it needs to know without
    asking which cell it is: `state_names` (its states, in the order of `state_size`: how many a
    model carries per layer), `internal_names` and `step_internals` (everything its equations name
    at one step, for `keras_seq.introspect`), `pictured_internals` (what `keras-seq plot gates`
    draws) and `takes_candidate_activation`.
    """

    blocks = 1
    #: The book's names of the states, in the order of `state_size` and of `recurrence`'s states.
    state_names = ("h",)
    #: The book's names of the quantities `step_internals` returns, in that order.
    internal_names = ("h",)
    #: What a picture of the internals shows (`keras_seq.plot`): `(name, title, value range)` rows,
    #: the range None for one drawn symmetric about 0 from the values.
    pictured_internals = (("h", "h", None),)
    #: Whether the cell takes a `candidate_activation` argument (the nonlinearity of a candidate or
    #: cell input, as the LSTM's and the GRU's); a model passes its own setting only to such cells.
    takes_candidate_activation = False

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
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_units(units)
        self.activation_name = activation
        self.activation = get_activation(activation, "activation")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.recurrent_constraint = keras.constraints.get(recurrent_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.dropout = check_rate(dropout, "dropout")
        self.recurrent_dropout = check_rate(recurrent_dropout, "recurrent_dropout")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)
        self.bias = None

    # -- sizes -------------------------------------------------------------------------------------
    @property
    def state_size(self):
        return self.units

    @property
    def output_size(self):
        return self.units

    @property
    def recurrent_input_size(self):
        """Size of the state that the recurrent kernel W multiplies (h for most cells)."""
        return self.units

    # -- weights -----------------------------------------------------------------------------------
    def build(self, input_shape):
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape (batch, features) with a known "
                f"number of features, got shape {tuple(input_shape)}."
            )
        n = self.blocks * self.units
        self.kernel = self.add_weight(
            shape=(input_shape[-1], n), name="kernel", initializer=self._initializer(self.kernel_initializer),
            regularizer=self.kernel_regularizer, constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.recurrent_input_size, n), name="recurrent_kernel",
            initializer=self._initializer(self.recurrent_initializer), regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                shape=self._bias_shape(n), name="bias", initializer=self._initializer(self._bias_initializer()),
                regularizer=self.bias_regularizer, constraint=self.bias_constraint,
            )

    def _bias_initializer(self):
        return self.bias_initializer

    def _bias_shape(self, n):
        """The shape of `bias` for `n` fused columns: (n,), by default."""
        return (n,)

    def _initializer(self, initializer):
        """The initializer of a fused weight as `build` uses it (`initializer` itself, by default)."""
        return initializer

    def split_recurrent_kernel(self, recurrent_kernel):
        """W as `recurrence` takes it (the fused W itself, by default); a loop splits it once."""
        return recurrent_kernel

    def split_input_projection(self, z):
        """z = b + U x as `recurrence` takes it (z itself, by default); a loop splits all steps once."""
        return z

    def input_projection(self, x, kernel=None, bias=None):
        """z = b + U x for every block at once (x may have any number of leading axes)."""
        z = ops.matmul(x, self.kernel if kernel is None else kernel)
        if self.use_bias:
            z = z + (self.bias if bias is None else bias)
        return z

    # -- one step ----------------------------------------------------------------------------------
    def _masks(self, inputs, state, training):
        """The per-sequence dropout masks (prepared once per sequence by `keras.layers.RNN`)."""
        input_mask = self.get_dropout_mask(inputs) if training and self.dropout > 0 else None
        recurrent_mask = (
            self.get_recurrent_dropout_mask(state) if training and self.recurrent_dropout > 0 else None
        )
        return input_mask, recurrent_mask

    def call(self, inputs, states, training=False):
        """One time step: z = b + U x(t) (after input dropout), then the cell's `recurrence`."""
        self._check_step_inputs(inputs)
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        input_mask, recurrent_mask = self._masks(inputs, states[0], training)
        x = inputs if input_mask is None else inputs * input_mask
        output, new_states, _ = self.recurrence(self.input_projection(x), states, None, recurrent_mask)
        return self.step_output(output), new_states

    def step_internals(self, z, states):
        """One step of `recurrence` (no dropout) with every quantity the book names.

        `z` is b + U x(t) for all blocks (fused) and `states` the states entering the step. Returns
        `(new_states, values)`: `values` a dict keyed by `internal_names`, each (batch, size). By
        default the states themselves, under `state_names`.
        """
        _, new_states, _ = self.recurrence(z, states)
        return new_states, dict(zip(self.state_names, new_states))

    def carried_internals(self, states):
        """Those of `step_internals`'s values that are states, given the states after a step.

        `keras_seq.introspect` shows these carried over a masked step (every other value is 0
        there). By default every state, under `state_names`.
        """
        return dict(zip(self.state_names, states))

    def step_output(self, output):
        """The cell's output given what `recurrence` returns (that output itself, by default)."""
        return output

    def _check_step_inputs(self, inputs):
        if len(inputs.shape) != 2:
            raise ValueError(
                f"{type(self).__name__} processes one time step of shape (batch, features); got "
                f"inputs of rank {len(inputs.shape)} with shape {tuple(inputs.shape)}. To process "
                "whole sequences, wrap the cell in keras.layers.RNN or use the keras_seq.layers layer."
            )

    def get_initial_state(self, batch_size=None):
        sizes = self.state_size if isinstance(self.state_size, (list, tuple)) else [self.state_size]
        return [ops.zeros((batch_size, size), dtype=self.compute_dtype) for size in sizes]

    # -- config ------------------------------------------------------------------------------------
    def get_config(self):
        s = keras.saving.serialize_keras_object
        config = {
            "units": self.units,
            "activation": activation_config(self.activation_name),
            "use_bias": self.use_bias,
            "kernel_initializer": s(self.kernel_initializer),
            "recurrent_initializer": s(self.recurrent_initializer),
            "bias_initializer": s(self.bias_initializer),
            "kernel_regularizer": s(self.kernel_regularizer),
            "recurrent_regularizer": s(self.recurrent_regularizer),
            "bias_regularizer": s(self.bias_regularizer),
            "kernel_constraint": s(self.kernel_constraint),
            "recurrent_constraint": s(self.recurrent_constraint),
            "bias_constraint": s(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}
