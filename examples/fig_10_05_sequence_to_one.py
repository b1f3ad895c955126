"""Fig. 10.5: an RNN that reads a whole sequence and emits one output from its final state h(τ):
here, whether a sequence of random digits contains more 1s than 2s (a count kept in h across all
steps, of variable-length sequences padded and masked).

Run: python examples/fig_10_05_sequence_to_one.py [--tiny]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_seq.models import SequenceClassifier  # noqa: E402

MAX_STEPS = 15


def make_data(n, rng):
    lengths = rng.integers(5, MAX_STEPS + 1, size=n)
    tokens = rng.integers(1, 4, size=(n, MAX_STEPS))
    mask = np.arange(MAX_STEPS)[None, :] < lengths[:, None]
    tokens = np.where(mask, tokens, 0)
    more_ones = ((tokens == 1).sum(1) > (tokens == 2).sum(1)).astype("int32")
    return keras.utils.to_categorical(tokens, 4).astype("float32"), mask, more_ones


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="minimal budget (or KERAS_SEQ_EXAMPLE_TINY=1)")
    parser.add_argument("--cell", default="gru", choices=["elman", "lstm", "gru"])
    args = parser.parse_args(argv)
    tiny = args.tiny or os.environ.get("KERAS_SEQ_EXAMPLE_TINY") == "1"
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, mask, y = make_data(256 if tiny else 4096, rng)
    x_test, mask_test, y_test = make_data(512, rng)

    # Masking turns the all-zero padding vectors into a mask that the recurrent layer skips.
    inputs = keras.Input((MAX_STEPS, 4))
    model_core = SequenceClassifier(32, output_units=2, cell=args.cell)
    model = keras.Model(inputs, model_core(keras.layers.Masking()(inputs)))
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"],
                  run_eagerly=tiny)
    model.fit(x, y, epochs=1 if tiny else 15, batch_size=64, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"Fig. 10.5 sequence -> one output ({args.cell}): 'more 1s than 2s?' accuracy {accuracy:.1%} "
          f"(majority class {max(y_test.mean(), 1 - y_test.mean()):.1%})")
    shown = np.concatenate([np.flatnonzero(y_test == 1)[:2], np.flatnonzero(y_test == 0)[:2]])
    p = model.predict(x_test[shown], verbose=0)[:, 1]
    for tokens, m, prob, label in zip(np.argmax(x_test[shown], -1), mask_test[shown], p, y_test[shown]):
        print(f"  {''.join(map(str, tokens[m])):<16} P(more 1s) = {prob:.2f}  (truth: {bool(label)})")
    return accuracy


if __name__ == "__main__":
    main()
