"""keras-seq: the recurrent networks of *Deep Learning* (Goodfellow, Bengio & Courville), chapter 10,
as Keras 3 layers, with export to TensorFlow Serving.

Sub-packages, in the order they depend on each other:

- `keras_seq.cells`: one step of each recurrence, in the book's notation (usable in `keras.layers.RNN`).
- `keras_seq.layers`: fast full-sequence layers built on the cells.
- `keras_seq.convert`: weight converters from and to Keras's own (and torch's) LSTM and GRU.
- `keras_seq.serving`: a TF-Serving-compatible gRPC server and client (never imports model code).
"""

__version__ = "0.1.0"
