"""Fast full-sequence layers built on the book cells: `ElmanRNN`, `LSTM`, `GRU`.

Each is a `keras.layers.RNN` over its cell that projects the inputs of all steps at once and
differentiates its loop by hand; the numbers equal the cell's inside `keras.layers.RNN`.
"""

from keras_seq.layers.elman import ElmanRNN
from keras_seq.layers.gru import GRU
from keras_seq.layers.lstm import LSTM

__all__ = ["ElmanRNN", "LSTM", "GRU"]
