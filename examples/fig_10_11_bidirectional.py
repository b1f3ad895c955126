"""Fig. 10.11: a bidirectional RNN, whose output at step t sees the whole input: a forward state
h(t) (the past) and a backward state g(t) (the future). Task: y(t) = x(t+1), naming the *next*
symbol, which no one-directional RNN can do; the script trains both and compares them.

Run: python examples/fig_10_11_bidirectional.py [--tiny] [--cell elman|lstm|gru]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_seq.models import BidirectionalTagger, SequenceTagger  # noqa: E402

SYMBOLS, STEPS = 5, 10


def make_data(n, rng):
    tokens = rng.integers(1, SYMBOLS, size=(n, STEPS))
    targets = np.zeros_like(tokens)  # 0: "no next symbol" at the last step
    targets[:, :-1] = tokens[:, 1:]
    return keras.utils.to_categorical(tokens, SYMBOLS).astype("float32"), targets


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="minimal budget (or KERAS_SEQ_EXAMPLE_TINY=1)")
    parser.add_argument("--cell", default="gru", choices=["elman", "lstm", "gru"])
    args = parser.parse_args(argv)
    tiny = args.tiny or os.environ.get("KERAS_SEQ_EXAMPLE_TINY") == "1"
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = make_data(256 if tiny else 4096, rng)
    x_test, y_test = make_data(512, rng)

    print(f"Fig. 10.11 bidirectional RNN ({args.cell}): y(t) = x(t+1)")
    results = {}
    for name, model in [("forward only (Fig. 10.3)", SequenceTagger(24, SYMBOLS, cell=args.cell)),
                        ("bidirectional (Fig. 10.11)", BidirectionalTagger(24, SYMBOLS, cell=args.cell))]:
        model.compile(keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"],
                      run_eagerly=tiny)
        model.fit(x, y, epochs=1 if tiny else 8, batch_size=64, verbose=0)
        results[name] = model.evaluate(x_test, y_test, verbose=0)[1]
        print(f"  {name:<28} test accuracy per step {results[name]:.1%}")
    guess = (STEPS - 1) / STEPS / (SYMBOLS - 1) + 1 / STEPS  # it only knows the last step is 0
    print(f"  (a forward-only RNN can only guess the next symbol: ~{guess:.0%} at best)")
    return results


if __name__ == "__main__":
    main()
