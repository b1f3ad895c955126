"""Fig. 10.10: a conditional RNN mapping a sequence x to a sequence y of the same length, with the
previous output y(t-1) fed to the hidden units (as well as h(t-1) and x(t)): y(t) = x(t) XOR
y(t-1), the running parity of a bit string, a task where each output depends on the last one.

Trained with teacher forcing (the true y(t-1) fed); at test time the model feeds its own outputs
back. The outputs are then not conditionally independent given x (contrast Fig. 10.3).

Run: python examples/fig_10_10_conditional_sequence.py [--tiny] [--cell elman|lstm|gru]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_seq.models import ConditionalSequenceTagger  # noqa: E402

STEPS = 12


def make_data(n, rng):
    bits = rng.integers(0, 2, size=(n, STEPS))
    parity = np.cumsum(bits, axis=1) % 2
    return bits[..., None].astype("float32"), parity


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="minimal budget (or KERAS_SEQ_EXAMPLE_TINY=1)")
    parser.add_argument("--cell", default="elman", choices=["elman", "lstm", "gru"])
    args = parser.parse_args(argv)
    tiny = args.tiny or os.environ.get("KERAS_SEQ_EXAMPLE_TINY") == "1"
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = make_data(256 if tiny else 4096, rng)
    x_test, y_test = make_data(512, rng)

    model = ConditionalSequenceTagger(16, output_units=2, cell=args.cell)
    model.compile(keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy", run_eagerly=tiny)
    model.fit({"inputs": x, "targets": y}, y, epochs=1 if tiny else 10, batch_size=64, verbose=0)

    free = np.argmax(model(x_test), axis=-1)
    print(f"Fig. 10.10 conditional RNN with output feedback ({args.cell}): y(t) = x(t) XOR y(t-1)")
    print(f"  free-running accuracy per step {np.mean(free == y_test):.1%}, "
          f"whole sequences {np.mean((free == y_test).all(axis=1)):.1%}")
    print("  x         ", "".join(map(str, x_test[0, :, 0].astype(int))))
    print("  y         ", "".join(map(str, y_test[0])))
    print("  free run  ", "".join(map(str, free[0])))
    return float(np.mean(free == y_test))


if __name__ == "__main__":
    main()
