"""Models whose previous output y(t-1) enters the hidden units, trained with teacher forcing
(Fig. 10.6 of *Deep Learning*, Goodfellow, Bengio & Courville):

- `OutputRecurrentTagger`: output-to-hidden recurrence only (Fig. 10.4).
- `ConditionalSequenceTagger`: hidden-to-hidden recurrence plus y(t-1) → h(t) (Fig. 10.10).
- `VectorToSequence`: a fixed context vector x at every step plus y(t-1) → h(t) (Fig. 10.9).

In training (inputs with `"targets"`), the true y(t-1) is fed at every step: the targets are
one-hot encoded and shifted one step right inside the model ([0, y(1), ..., y(τ-1)], zeros at the
first step, where there is no previous output). At inference (inputs without `"targets"`, or
`generate`), the model feeds back its own most probable output, one step at a time, in one
compiled loop. Outputs are discrete (class indices y, ŷ a softmax over `output_units` classes).
"""

import keras
from keras import ops

from keras_seq.cells import OutputFeedbackCell
from keras_seq.models.base import (
    FeedbackModel, input_shapes, output_layer, previous_outputs, recurrent_layer, split_inputs,
    step_mask_of,
)


@keras.saving.register_keras_serializable(package="keras_seq")
class OutputRecurrentTagger(FeedbackModel):
    """Output-to-hidden recurrence, Fig. 10.4, trained with teacher forcing, Fig. 10.6:

        h(t) = tanh(b + W y(t-1) + U x(t))
        o(t) = c + V h(t),   ŷ(t) = softmax(o(t))

    The only recurrence is through the output. In training y(t-1) is the true previous target, so
    h(t) depends on nothing computed at other steps: all steps run at once, with no loop (two matrix
    products over the whole sequence). At inference y(t-1) is the one-hot vector of the model's own
    most probable output at t-1 (free-running), computed step by step.

    The weights are those of `keras_seq.cells.OutputFeedbackCell` (`self.output_cell`): U, W, b,
    V, c under the book's names. W multiplies the one-hot y(t-1), which is what the book's
    teacher forcing feeds in place of o(t-1); so does the free-running pass.

    Only eq. 10.8's Elman-style hidden layer fits this figure: with no hidden-to-hidden
    connection there is no LSTM or GRU state to carry, so there is no `cell` argument.

    Args:
        units: Positive integer, the size of h.
        output_units: Positive integer, the number of output classes (size of o).
        activation: The hidden nonlinearity. Default "tanh".
        cell_options: A dict of further arguments of `OutputFeedbackCell` (initializers,
            regularizers, constraints, `use_bias`; dropout is not supported).

    Call arguments:
        inputs: `{"inputs": x, "targets": y}` for teacher forcing (x of shape (batch, time,
            features), y class indices of shape (batch, time)); x alone (or a dict without
            "targets") for the free-running pass.
        mask: Optional boolean (batch, time), False at padded steps.

    Returns ŷ, shape (batch, time, output_units).

    Example:

    >>> import numpy as np
    >>> from keras_seq.models import OutputRecurrentTagger
    >>> model = OutputRecurrentTagger(16, output_units=4)
    >>> x, y = np.zeros((2, 6, 3), "float32"), np.zeros((2, 6), "int32")
    >>> tuple(model({"inputs": x, "targets": y}).shape)  # teacher forcing
    (2, 6, 4)
    >>> tuple(model(x).shape)  # free-running
    (2, 6, 4)
    """

    figure = "10.4"

    def __init__(self, units, output_units, activation="tanh", cell_options=None, **kwargs):
        super().__init__(**kwargs)
        self.units, self.output_units, self.activation = units, output_units, activation
        self.cell_options = dict(cell_options or {})
        if self.cell_options.get("dropout") or self.cell_options.get("recurrent_dropout"):
            raise ValueError("OutputRecurrentTagger does not support dropout in `cell_options`.")
        self.output_cell = OutputFeedbackCell(
            units, output_units, activation=activation, output_activation="softmax",
            name="output_feedback_cell", dtype=self.dtype_policy, **self.cell_options,
        )
        self.supports_masking = True

    def build(self, input_shape):
        x_shape, _ = input_shapes(input_shape, "inputs")
        self.output_cell.build((None, x_shape[-1]))
        self.built = True

    def get_initial_state(self, batch_size):
        return []  # no hidden-to-hidden state: y(t-1) is all that is carried

    def step(self, x, y_prev, states):
        """One step: ŷ(t) from x(t) and the one-hot y(t-1); returns `(ŷ(t), [])`."""
        cell = self.output_cell
        y_hat, _, _ = cell.recurrence(cell.input_projection(x), [y_prev])
        return y_hat, []

    def teacher_forced(self, x, targets):
        """ŷ(t) for all t at once, given the true y(t-1): no loop."""
        cell = self.output_cell
        y_prev = previous_outputs(targets, self.output_units, self.compute_dtype)
        h = cell.activation(cell.input_projection(x) + ops.matmul(y_prev, cell.recurrent_kernel))
        return cell.output_activation(cell.output_logits(h))

    def call(self, inputs, training=None, mask=None):
        x, targets = split_inputs(inputs, "inputs")
        if targets is None:
            return self.free_run(x, mask=step_mask_of(mask))
        return self.teacher_forced(x, targets)

    def compute_mask(self, inputs, mask=None):
        return step_mask_of(mask)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "output_units": self.output_units,
            "activation": self.activation,
            "cell_options": self.cell_options,
        }


@keras.saving.register_keras_serializable(package="keras_seq")
class ConditionalSequenceTagger(FeedbackModel):
    """Conditional sequence → sequence of the same length with output feedback, Fig. 10.10:

        h(t) = f(b + W h(t-1) + U x(t) + R y(t-1))
        o(t) = c + V h(t),   ŷ(t) = softmax(o(t))

    f is the recurrence of the chosen cell (Elman tanh, LSTM or GRU; for the gated cells every
    gate also gets its own U and R blocks). Unlike Fig. 10.3, the outputs are not conditionally
    independent given x: y(t-1) enters h(t), so the model gives P(y(1), ..., y(τ) | x) any
    dependence between outputs.

    The recurrent layer (`self.rnn`, the fast `keras_seq.layers` layer) reads [x(t); y(t-1)] at
    each step, so its kernel is [U; R]: the first `features` rows are U, the last `output_units`
    rows R. In training (teacher forcing) y(t-1) is the true previous target and the layer runs
    over the whole sequence at once; at inference it is the model's own most probable output.

    Args:
        units: Positive integer, the size of h.
        output_units: Positive integer, the number of output classes.
        cell: "elman" (default), "lstm" or "gru".
        cell_options: A dict of further arguments of the cell.

    Call arguments:
        inputs: `{"inputs": x, "targets": y}` for teacher forcing; x alone (or a dict without
            "targets") for the free-running pass.
        mask: Optional boolean (batch, time), False at padded steps.

    Example:

    >>> import numpy as np
    >>> from keras_seq.models import ConditionalSequenceTagger
    >>> model = ConditionalSequenceTagger(16, output_units=4, cell="lstm")
    >>> x, y = np.zeros((2, 6, 3), "float32"), np.zeros((2, 6), "int32")
    >>> tuple(model({"inputs": x, "targets": y}).shape), tuple(model(x).shape)
    ((2, 6, 4), (2, 6, 4))
    """

    figure = "10.10"
    input_key = "inputs"

    def __init__(self, units, output_units, cell="elman", cell_options=None, **kwargs):
        super().__init__(**kwargs)
        self.units, self.output_units, self.cell = units, output_units, cell
        self.cell_options = dict(cell_options or {})
        self.rnn = recurrent_layer(cell, units, self.cell_options, return_sequences=True, name="rnn",
                                   dtype=self.dtype_policy)
        self.output_layer = output_layer(output_units, "softmax", dtype=self.dtype_policy)
        self.supports_masking = True

    def build(self, input_shape):
        x_shape, _ = input_shapes(input_shape, self.input_key)
        self.rnn.build((None, None, x_shape[-1] + self.output_units))
        self.output_layer.build((None, None, self.units))
        self.built = True

    def get_initial_state(self, batch_size):
        return self.rnn.cell.get_initial_state(batch_size)

    def step(self, x, y_prev, states):
        """One step: ŷ(t) and the new states from x(t), the one-hot y(t-1) and the states."""
        h, new_states = self.rnn.cell(ops.concatenate([x, y_prev], axis=-1), list(states))
        return self.output_layer(h), new_states

    def step_inputs(self, inputs, targets):
        """x(t) for every step, shape (batch, time, features)."""
        return inputs

    def teacher_forced(self, x, targets, mask=None, training=None):
        """ŷ(t) for all t given the true y(t-1): one pass of the fast recurrent layer."""
        y_prev = previous_outputs(targets, self.output_units, self.compute_dtype)
        h = self.rnn(ops.concatenate([x, y_prev], axis=-1), mask=mask, training=training)
        return self.output_layer(h)

    def call(self, inputs, training=None, mask=None):
        x, targets = split_inputs(inputs, self.input_key)
        mask = step_mask_of(mask)
        x = self.step_inputs(x, targets)
        if targets is None:
            return self.free_run(x, mask=mask)
        return self.teacher_forced(x, targets, mask=mask, training=training)

    def compute_mask(self, inputs, mask=None):
        return step_mask_of(mask)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "output_units": self.output_units,
            "cell": self.cell,
            "cell_options": self.cell_options,
        }


@keras.saving.register_keras_serializable(package="keras_seq")
class VectorToSequence(ConditionalSequenceTagger):
    """Vector → sequence, Fig. 10.9: a fixed context vector x enters every step, and the previous
    output too (y(t) → h(t+1)):

        h(t) = f(b + W h(t-1) + U y(t-1) + R x)
        o(t) = c + V h(t),   ŷ(t) = softmax(o(t))

    e.g. generating a sequence from a class or image embedding x. f is the recurrence of the
    chosen cell (Elman tanh, LSTM or GRU). The recurrent layer (`self.rnn`) reads [x; y(t-1)] at
    each step, so its kernel is [R; U]: the first `context` rows are R, the last `output_units`
    rows U. R x is the extra input of every hidden unit at every step, as in the figure.

    In training the true y(t-1) is fed (teacher forcing) and the sequence length is that of the
    targets; at inference (`generate`, or the model called without targets) the model feeds back
    its own most probable output for `length` steps.

    Args:
        units: Positive integer, the size of h.
        output_units: Positive integer, the number of output classes.
        cell: "elman" (default), "lstm" or "gru".
        length: The number of steps generated when the model is called without targets.
        cell_options: A dict of further arguments of the cell.

    Call arguments:
        inputs: `{"context": x, "targets": y}` for teacher forcing (x of shape (batch, features),
            y class indices of shape (batch, time)); x alone (or a dict without "targets") to
            generate `length` steps.
        mask: Optional boolean (batch, time), False at padded target steps.

    Example:

    >>> import numpy as np
    >>> from keras_seq.models import VectorToSequence
    >>> model = VectorToSequence(16, output_units=5, cell="gru", length=7)
    >>> x = np.eye(3, dtype="float32")  # e.g. three one-hot classes
    >>> tuple(model({"context": x, "targets": np.zeros((3, 7), "int32")}).shape), tuple(model(x).shape)
    ((3, 7, 5), (3, 7, 5))
    """

    figure = "10.9"
    input_key = "context"

    def __init__(self, units, output_units, cell="elman", length=None, cell_options=None, **kwargs):
        super().__init__(units, output_units, cell=cell, cell_options=cell_options, **kwargs)
        self.length = length

    def step_inputs(self, context, targets, length=None):
        """The context x repeated at every step: shape (batch, time, features)."""
        if targets is not None:
            steps = ops.ones_like(ops.cast(targets, context.dtype))  # (batch, time)
        else:
            length = length or self.length
            if length is None:
                raise ValueError(
                    "VectorToSequence needs `targets` or a `length` (given to the constructor or "
                    "to `generate`) to know how many steps to generate."
                )
            steps = ops.ones((ops.shape(context)[0], length), dtype=context.dtype)
        return ops.expand_dims(steps, -1) * ops.expand_dims(context, 1)

    def generate(self, context, length=None):
        """ŷ for `length` steps (default: the constructor's), feeding back the model's own outputs."""
        return self.free_run(self.step_inputs(ops.convert_to_tensor(context), None, length))

    def get_config(self):
        return {**super().get_config(), "length": self.length}
