"""Fig. 10.3: an Elman RNN with an output at every step (eq. 10.8-10.11), learning to echo its
input with a delay of two steps, y(t) = x(t-2): the answer is not in x(t) but only in the hidden
state h(t), which must carry the last two inputs forward through W.

Run: python examples/fig_10_03_elman_seq2seq_same_length.py [--tiny]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_seq.models import SequenceTagger  # noqa: E402

SYMBOLS, STEPS, DELAY = 4, 12, 2


def make_data(n, rng):
    tokens = rng.integers(1, SYMBOLS, size=(n, STEPS))
    targets = np.zeros_like(tokens)  # "nothing yet" (0) for the first DELAY steps
    targets[:, DELAY:] = tokens[:, :-DELAY]
    return keras.utils.to_categorical(tokens, SYMBOLS).astype("float32"), targets


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="minimal budget (or KERAS_SEQ_EXAMPLE_TINY=1)")
    args = parser.parse_args(argv)
    tiny = args.tiny or os.environ.get("KERAS_SEQ_EXAMPLE_TINY") == "1"
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = make_data(256 if tiny else 4096, rng)
    x_test, y_test = make_data(256, rng)

    model = SequenceTagger(32, output_units=SYMBOLS, cell="elman")  # a(t) = b + W h(t-1) + U x(t)
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"],
                  run_eagerly=tiny)
    model.fit(x, y, epochs=1 if tiny else 15, batch_size=64, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)

    predicted = np.argmax(model.predict(x_test[:1], verbose=0), axis=-1)[0]
    print(f"Fig. 10.3 Elman RNN, y(t) = x(t-{DELAY}); test accuracy per step {accuracy:.1%} (chance ~{1 / SYMBOLS:.0%})")
    print("input     ", " ".join(str(t) for t in np.argmax(x_test[0], -1)))
    print("target    ", " ".join(str(t) for t in y_test[0]))
    print("predicted ", " ".join(str(t) for t in predicted))
    return accuracy


if __name__ == "__main__":
    main()
