"""Writes the legacy fixture files of tests/layers/test_weight_layout.py (run once, kept in git).

Run with the keras-seq code BEFORE the LSTM's fused weights moved to Keras's gate order [i|f|c|o]
(commit 7645ddc, where the order was the book's [f|g|c|q]):

    PYTHONPATH=$PWD python3 tests/layers/data/make_legacy_files.py tests/layers/data

It saves a Sequential of the book layers and a small `EncoderDecoder` as `.keras` files, with the
inputs and the outputs that code computed, in `legacy_outputs.npz`. Re-running it with later code
would write files in the new order: the point of these files is that they were not.
"""

import sys
from pathlib import Path

import keras
import numpy as np

from keras_seq.layers import GRU, LSTM, ElmanRNN
from keras_seq.models import EncoderDecoder


def main(out):
    out = Path(out)
    rng = np.random.default_rng(19)
    layers = keras.Sequential([
        keras.Input((6, 3)),
        LSTM(4, return_sequences=True),
        keras.layers.Bidirectional(LSTM(3, candidate_activation="tanh", return_sequences=True)),
        GRU(3, return_sequences=True),
        ElmanRNN(2),
    ])
    layers.set_weights([rng.normal(scale=0.6, size=w.shape).astype("float32") for w in layers.get_weights()])
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    seq2seq = EncoderDecoder(7, 6, start_token=1, end_token=2, units=4, embedding_dim=3, cell="lstm")
    tokens = {"encoder_inputs": np.array([[3, 4, 5, 0], [6, 3, 0, 0]], "int32"),
              "decoder_inputs": np.array([[1, 3, 4], [1, 5, 0]], "int32")}
    seq2seq(tokens)
    seq2seq.set_weights([rng.normal(scale=0.6, size=w.shape).astype("float32") for w in seq2seq.get_weights()])
    layers.save(out / "legacy_layers.keras")
    seq2seq.save(out / "legacy_seq2seq.keras")
    np.savez(
        out / "legacy_outputs.npz", x=x, layers=np.asarray(layers(x)),
        encoder_inputs=tokens["encoder_inputs"], decoder_inputs=tokens["decoder_inputs"],
        seq2seq=np.asarray(seq2seq(tokens)),
    )


if __name__ == "__main__":
    main(sys.argv[1])
