"""The one place keras_seq reaches into Keras's private `keras.src`.

`keras.layers.RNN` prepares one dropout mask per sequence before its loop (so the loop body stays
stateless, which JAX and `tf.while_loop` need) and clears it afterwards, but only for a cell that
`isinstance(cell, DropoutRNNCell)` (`keras/src/layers/rnn/rnn.py`: `_maybe_config_dropout_masks`,
`_maybe_reset_dropout_masks`). The test is by class, not by duck typing: a cell that only defines
`get_dropout_mask`, `get_recurrent_dropout_mask` and `reset_dropout_mask` gets no masks prepared
and would create them inside the loop. Keras 3 (checked up to 3.15) exports `DropoutRNNCell` under
no public name (`keras.layers` has the Keras cells built on it, not the mixin), so the book cells
import it from here; if Keras ever exports it, this import is the only line to change.
"""

from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell

__all__ = ["DropoutRNNCell"]
