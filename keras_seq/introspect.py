"""Looking inside a recurrent layer: the per-step internals of the book's cells.

The layers of `keras_seq.layers` return h (and their final states) only: that is what training,
saving and export need, and it stays so. `internals` recomputes, on request, everything the book's
equations name at every step — the gates of the LSTM and the GRU, the pre-activation of the Elman
RNN — by running the layer's own cell (`cell.recurrence`, the code the fast layers run) one step at
a time, eagerly. Nothing of the layer changes.

What each cell gives, as NumPy arrays of shape (batch, time, units):

- `LSTMCell` (eq. 10.40-10.44): `f` forget gate, `g` external input gate, `c` cell input
  σ(b + U x + W h(t-1)), `q` output gate, `s` internal state, `h` = tanh(s) ⊙ q.
- `GRUCell` (eq. 10.45-10.47): `u` update gate, `r` reset gate, `c` candidate, `h`.
- `ElmanCell` (eq. 10.8-10.11): `a` pre-activation b + W h(t-1) + U x, `h` = tanh(a); with an
  output layer also `o` = c + V h and `y` = softmax(o).
- `OutputFeedbackCell` (Fig. 10.4): `a`, `h`, `o`, `y`.

Time runs in the order of the input (index t is the step that read x(t)), also for a layer with
`go_backwards=True` (whose own sequence output is in reversed order: `flip(h, axis=1)`). For a
`keras.layers.Bidirectional` layer the result is `{"forward": {...}, "backward": {...}}`, both in
input order, as the Bidirectional layer merges them. At masked steps the states (`h`, `s`) carry
over unchanged and every other quantity is 0. Dropout is off (inference).

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

from keras_seq.cells import ElmanCell, GRUCell, LSTMCell, OutputFeedbackCell

#: The names `internals` returns for each book cell, in the order it returns them.
NAMES = {
    LSTMCell: ("f", "g", "c", "q", "s", "h"),
    GRUCell: ("u", "r", "c", "h"),
    ElmanCell: ("a", "h"),
    OutputFeedbackCell: ("a", "h", "o", "y"),
}
#: The states among them (carried over masked steps rather than zeroed).
STATES = ("h", "s")


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
    _cell_names(layer_or_cell)
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


def _cell_names(cell):
    for cell_class, names in NAMES.items():
        if type(cell) is cell_class or isinstance(cell, cell_class):
            return cell_class, names
    raise TypeError(
        f"internals() reads the book cells of keras_seq.cells ({', '.join(c.__name__ for c in NAMES)}) "
        f"and the layers built on them; got {type(cell).__name__}."
    )


def _run_cell(cell, inputs, mask, initial_state, go_backwards):
    """Runs `cell.recurrence` step by step; returns the internals in input time order."""
    cell_class, names = _cell_names(cell)[0], names_of(cell)
    batch, steps = ops.shape(inputs)[0], inputs.shape[1]
    states = list(cell.get_initial_state(batch) if initial_state is None else initial_state)
    states = [ops.cast(ops.convert_to_tensor(s), cell.compute_dtype) for s in states]
    z = cell.input_projection(ops.cast(inputs, cell.compute_dtype))  # b + U x(t), every step
    valid = None if mask is None else ops.cast(ops.convert_to_tensor(mask), "bool")
    order = range(steps - 1, -1, -1) if go_backwards else range(steps)
    per_step = {name: [None] * steps for name in names}
    for t in order:
        _, new_states, cell_internals = cell.recurrence(z[:, t], states)
        values = _named(cell_class, cell, z[:, t], states, new_states, cell_internals)
        if valid is not None:
            keep = valid[:, t, None]
            new_states = [ops.where(keep, new, old) for new, old in zip(new_states, states)]
            carried = _named_states(cell_class, new_states)
            values = {
                name: carried[name] if name in carried else ops.where(keep, v, ops.zeros_like(v))
                for name, v in values.items()
            }
        states = new_states
        for name in names:
            per_step[name][t] = ops.convert_to_numpy(values[name])
    return {name: np.stack(per_step[name], axis=1) for name in names}


def _named_states(cell_class, states):
    if cell_class is LSTMCell:
        return {"h": states[0], "s": states[1]}
    if cell_class is OutputFeedbackCell:
        return {}  # its state is o(t-1); h is not carried
    return {"h": states[0]}


def _named(cell_class, cell, z, states, new_states, cell_internals):
    """The book's names for one step's values, from `recurrence`'s internals."""
    if cell_class is LSTMCell:
        f, g, c, q = cell_internals
        h, s = new_states
        return {"f": f, "g": g, "c": c, "q": q, "s": s, "h": h}
    if cell_class is GRUCell:
        u, r, c, _ = cell_internals
        return {"u": u, "r": r, "c": c, "h": new_states[0]}
    a = z + ops.matmul(states[0], cell.recurrent_kernel)  # eq. 10.8 (Fig. 10.4: W o(t-1))
    if cell_class is OutputFeedbackCell:
        h, o = cell_internals
        return {"a": a, "h": h, "o": o, "y": cell.output_activation(o)}
    (h,) = cell_internals
    values = {"a": a, "h": h}
    if cell.output_units:
        o = cell.output_logits(h)
        values.update(o=o, y=cell.output_activation(o))
    return values


def names_of(layer_or_cell):
    """The names `internals` returns for a layer or cell (a tuple), without running it."""
    if isinstance(layer_or_cell, keras.layers.Bidirectional):
        layer_or_cell = layer_or_cell.forward_layer
    cell = layer_or_cell.cell if isinstance(layer_or_cell, keras.layers.RNN) else layer_or_cell
    names = _cell_names(cell)[1]
    if isinstance(cell, ElmanCell) and cell.output_units:
        names = names + ("o", "y")
    return names
