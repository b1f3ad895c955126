"""Book-faithful recurrent cells: one time step of each recurrence of *Deep Learning*, ch. 10.

Each cell takes the arguments of its Keras counterpart (`keras.layers.SimpleRNNCell`, `LSTMCell`,
`GRUCell`) and its fused weights, and works inside `keras.layers.RNN` and
`keras.layers.Bidirectional`; the fast full-sequence layers of `keras_seq.layers` are built on them. A new cell subclasses `BookCell`, which says what
it states about itself (its states, its per-step internals).
"""

from keras_seq.cells.base import BookCell
from keras_seq.cells.elman import ElmanCell, OutputFeedbackCell
from keras_seq.cells.gru import GRUCell
from keras_seq.cells.lstm import LSTMCell

__all__ = ["BookCell", "ElmanCell", "OutputFeedbackCell", "LSTMCell", "GRUCell"]
