"""Looking inside a recurrent layer: the per-step internals of the book's cells.

The layers of `keras_seq.layers` return h (and their final states) only: that is what training,
saving and export need, and it stays so. `internals` recomputes, on request, everything the book's
equations name at every step — the gates of the LSTM and the GRU, the pre-activation of the Elman
RNN — by running the layer's own cell (`cell.recurrence`, the code the fast layers run) one step at
a time, eagerly. Nothing of the layer changes.

Each cell states what it gives (`cell.internal_names`, computed by `cell.step_internals`, whose
docstring gives each name's equation); as NumPy arrays of shape (batch, time, units):

- `LSTMCell` (eq. 10.40-10.44): `f` forget gate, `g` external input gate, `c` cell input
  σ(b + U x + W h(t-1)), `q` output gate, `s` internal state, `h` = tanh(s) ⊙ q.
- `GRUCell` (eq. 10.45-10.47): `u` update gate, `r` reset gate, `c` candidate, `h`.
- `ElmanCell` (eq. 10.8-10.11): `a` pre-activation b + W h(t-1) + U x, `h` = tanh(a); with an
  output layer also `o` = c + V h and `y` = softmax(o).
- `OutputFeedbackCell` (Fig. 10.4): `a`, `h`, `o`, `y`.
- any other `keras_seq.cells.BookCell`: its own `internal_names`.

Time runs in the order of the input (index t is the step that read x(t)), also for a layer with
`go_backwards=True` (whose own sequence output is in reversed order: `flip(h, axis=1)`). For a
`keras.layers.Bidirectional` layer the result is `{"forward": {...}, "backward": {...}}`, both in
input order, as the Bidirectional layer merges them. At masked steps the states (`h`, `s`: those
of `cell.carried_internals`) carry over unchanged and every other quantity is 0. Dropout is off (inference).

Example:

>>> import numpy as np
>>> from keras_seq.layers import LSTM
>>> from keras_seq.introspect import internals
>>> layer = LSTM(4, return_sequences=True)
>>> x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
>>> out = layer(x)
>>> inside = internals(layer, x)
>>> sorted(inside), inside["f"].shape
(['c', 'f', 'g', 'h', 'q', 's'], (2, 5, 4))
>>> bool(np.allclose(inside["h"], np.tanh(inside["s"]) * inside["q"], atol=1e-6))
True
"""

import keras
import numpy as np
from keras import ops

from keras_seq.cells.base import BookCell


def internals(layer_or_cell, inputs, mask=None, initial_state=None):
    """The per-step internals of a book layer or cell over a whole sequence.

    Args:
        layer_or_cell: A `keras_seq.layers` layer (`ElmanRNN`, `LSTM`, `GRU`), a
            `keras.layers.RNN` over a book cell, a `keras.layers.Bidirectional` over either, or a
            book cell (`keras_seq.cells`) itself. Built if it is not yet.
        inputs: x, shape (batch, time, features).
        mask: Optional boolean (batch, time), False at padded steps.
        initial_state: Optional list of initial states (for a Bidirectional layer: the forward
            states followed by the backward ones), as for the layer's call.

    Returns:
        A dict of NumPy arrays of shape (batch, time, units), keyed by the book's names (see the
        module docstring); for a Bidirectional layer, `{"forward": dict, "backward": dict}`.
    """
    inputs = ops.convert_to_tensor(inputs)
    if len(inputs.shape) != 3:
        raise ValueError(f"`inputs` must have shape (batch, time, features), got {tuple(inputs.shape)}.")
    if isinstance(layer_or_cell, keras.layers.Bidirectional):
        return _bidirectional(layer_or_cell, inputs, mask, initial_state)
    if isinstance(layer_or_cell, keras.layers.RNN):
        layer = layer_or_cell
        if not layer.built:
            layer(inputs, mask=mask)
        return _run_cell(layer.cell, inputs, mask, initial_state, layer.go_backwards)
    _check_book_cell(layer_or_cell)
    if not layer_or_cell.built:
        layer_or_cell.build((None, inputs.shape[-1]))
    return _run_cell(layer_or_cell, inputs, mask, initial_state, False)


def _bidirectional(layer, inputs, mask, initial_state):
    if not layer.built:
        layer(inputs, mask=mask)
    forward_state = backward_state = None
    if initial_state is not None:
        half = len(initial_state) // 2
        forward_state, backward_state = list(initial_state[:half]), list(initial_state[half:])
    return {
        "forward": internals(layer.forward_layer, inputs, mask, forward_state),
        "backward": internals(layer.backward_layer, inputs, mask, backward_state),
    }


def _check_book_cell(cell):
    if not isinstance(cell, BookCell):
        raise TypeError(
            "internals() reads the book cells of keras_seq.cells (each a keras_seq.cells.BookCell, "
            f"which names its per-step internals) and the layers built on them; got {type(cell).__name__}."
        )
    return cell


def _run_cell(cell, inputs, mask, initial_state, go_backwards):
    """Runs `cell.step_internals` step by step; returns the internals in input time order."""
    names = names_of(cell)
    batch, steps = ops.shape(inputs)[0], inputs.shape[1]
    states = list(cell.get_initial_state(batch) if initial_state is None else initial_state)
    states = [ops.cast(ops.convert_to_tensor(s), cell.compute_dtype) for s in states]
    z = cell.input_projection(ops.cast(inputs, cell.compute_dtype))  # b + U x(t), every step
    valid = None if mask is None else ops.cast(ops.convert_to_tensor(mask), "bool")
    order = range(steps - 1, -1, -1) if go_backwards else range(steps)
    per_step = {name: [None] * steps for name in names}
    for t in order:
        new_states, values = cell.step_internals(z[:, t], states)
        if valid is not None:
            keep = valid[:, t, None]
            new_states = [ops.where(keep, new, old) for new, old in zip(new_states, states)]
            carried = cell.carried_internals(new_states)
            values = {
                name: carried[name] if name in carried else ops.where(keep, v, ops.zeros_like(v))
                for name, v in values.items()
            }
        states = new_states
        for name in names:
            per_step[name][t] = ops.convert_to_numpy(values[name])
    return {name: np.stack(per_step[name], axis=1) for name in names}


def names_of(layer_or_cell):
    """The names `internals` returns for a layer or cell (a tuple), without running it."""
    if isinstance(layer_or_cell, keras.layers.Bidirectional):
        layer_or_cell = layer_or_cell.forward_layer
    cell = layer_or_cell.cell if isinstance(layer_or_cell, keras.layers.RNN) else layer_or_cell
    return tuple(_check_book_cell(cell).internal_names)
