"""Which fast layer, and so which book cell, each cell type name of the models stands for.

The models of `keras_seq.models` take their recurrence by name (`cell="lstm"`), and their saved
configs keep that name. A layer registers its name once, beside its class:

    @register_sequence_layer("lstm")
    class LSTM(SequenceLayer):
        cell_class = LSTMCell

and a model asks `sequence_layer_class("lstm")` for the layer, `cell_class_of("lstm")` for its
cell. Everything else a model needs of a cell (how many states it carries, whether it takes a
`candidate_activation`) the cell states itself (see `keras_seq.cells.BookCell`), so a new cell
touches `keras_seq.cells` (the cell) and `keras_seq.layers` (its layer, registered) only.
"""

from keras_seq.layers.base import SequenceLayer

_SEQUENCE_LAYERS = {}


def register_sequence_layer(name):
    """Class decorator: models build `layer_class` for `cell=name`.

    `layer_class` is a `keras_seq.layers.base.SequenceLayer` with its `cell_class`. A name taken by
    another class is refused (ValueError); registering the same class again does nothing.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"A cell type name must be a non-empty string, got {name!r}.")

    def register(layer_class):
        if not (isinstance(layer_class, type) and issubclass(layer_class, SequenceLayer)
                and layer_class.cell_class is not None):
            raise TypeError(
                f"register_sequence_layer({name!r}) takes a SequenceLayer subclass with a "
                f"`cell_class`, got {layer_class!r}."
            )
        known = _SEQUENCE_LAYERS.get(name)
        if known is not None and known is not layer_class:
            raise ValueError(
                f"Cell type {name!r} is already registered for {known.__module__}.{known.__qualname__}."
            )
        _SEQUENCE_LAYERS[name] = layer_class
        return layer_class

    return register


def cell_types():
    """The registered cell type names, sorted ("elman", "gru", "lstm", and any registered since)."""
    return tuple(sorted(_SEQUENCE_LAYERS))


def sequence_layer_class(name):
    """The fast layer class registered for the cell type `name`; a ValueError lists the known ones."""
    if name not in _SEQUENCE_LAYERS:
        raise ValueError(f"Unknown cell type {name!r}; expected one of {list(cell_types())}.")
    return _SEQUENCE_LAYERS[name]


def cell_class_of(name):
    """The book cell class of the cell type `name` (the `cell_class` of its registered layer)."""
    return sequence_layer_class(name).cell_class
