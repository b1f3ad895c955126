"""Book-faithful recurrent cells: one time step of each recurrence of *Deep Learning*, ch. 10.

Each cell works inside `keras.layers.RNN` and `keras.layers.Bidirectional`; the fast full-sequence
layers of `keras_seq.layers` are built on them.
"""

from keras_seq.cells.elman import ElmanCell, OutputFeedbackCell
from keras_seq.cells.gru import GRUCell
from keras_seq.cells.lstm import LSTMCell

__all__ = ["ElmanCell", "OutputFeedbackCell", "LSTMCell", "GRUCell"]
