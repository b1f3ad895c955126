"""Fast full-sequence layers built on the book cells: `ElmanRNN`, `LSTM`, `GRU`.

Each takes the arguments and the weights of its Keras counterpart (`keras.layers.SimpleRNN`, `LSTM`,
`GRU`; `SimpleRNN` is `ElmanRNN` under Keras's name, for Keras weights files) and is a
`keras.layers.RNN` over its cell that projects the inputs of all steps at once and differentiates
its loop by hand; the numbers equal the cell's inside `keras.layers.RNN`.

Each registers the cell type name the models take (`cell="elman"`, `"lstm"`, `"gru"`) with
`register_sequence_layer`; `sequence_layer_class(name)` and `cell_class_of(name)` look them up.
A new cell's layer subclasses `SequenceLayer` and registers its name the same way.
"""

from keras_seq.layers.base import SequenceLayer
from keras_seq.layers.elman import ElmanRNN, SimpleRNN
from keras_seq.layers.gru import GRU
from keras_seq.layers.lstm import LSTM
from keras_seq.layers.registry import (
    cell_class_of, cell_types, register_sequence_layer, sequence_layer_class,
)

__all__ = [
    "ElmanRNN", "SimpleRNN", "LSTM", "GRU", "SequenceLayer",
    "register_sequence_layer", "sequence_layer_class", "cell_class_of", "cell_types",
]
