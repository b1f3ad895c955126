"""Fig. 10.9: an RNN that maps one fixed vector x to a sequence, x entering every hidden unit at
every step (R x) and the previous output y(t-1) fed back: here x is the one-hot code of a "digit"
and the sequence is its spelling, e.g. 3 -> t h r e e </s>.

Run: python examples/fig_10_09_vector_to_sequence.py [--tiny] [--cell elman|lstm|gru]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_seq.models import VectorToSequence  # noqa: E402

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
LETTERS = ["."] + sorted({c for name in NAMES for c in name})  # "." ends a spelling
LENGTH = max(len(n) for n in NAMES) + 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="minimal budget (or KERAS_SEQ_EXAMPLE_TINY=1)")
    parser.add_argument("--cell", default="gru", choices=["elman", "lstm", "gru"])
    args = parser.parse_args(argv)
    tiny = args.tiny or os.environ.get("KERAS_SEQ_EXAMPLE_TINY") == "1"
    keras.utils.set_random_seed(0)

    context = np.eye(len(NAMES), dtype="float32")
    targets = np.zeros((len(NAMES), LENGTH), "int32")  # after its "." a spelling keeps emitting "."
    for i, name in enumerate(NAMES):
        targets[i, : len(name)] = [LETTERS.index(c) for c in name]
    repeat = 8 if tiny else 64  # the same ten examples, many times per epoch
    x, y = np.tile(context, (repeat, 1)), np.tile(targets, (repeat, 1))

    model = VectorToSequence(32, output_units=len(LETTERS), cell=args.cell, length=LENGTH)
    model.compile(keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy", run_eagerly=tiny)
    model.fit({"context": x, "targets": y}, y, epochs=1 if tiny else 40, batch_size=16, verbose=0)

    generated = np.argmax(model.generate(context), axis=-1)  # free-running: own outputs fed back
    correct = 0
    print(f"Fig. 10.9 vector -> sequence ({args.cell}): one-hot digit -> its spelling")
    for i, row in enumerate(generated):
        spelled = "".join(LETTERS[t] for t in row).split(".")[0]
        correct += spelled == NAMES[i]
        print(f"  {i} -> {spelled:<6} {'ok' if spelled == NAMES[i] else '(' + NAMES[i] + ')'}")
    print(f"  {correct}/{len(NAMES)} spelled right")
    return correct


if __name__ == "__main__":
    main()
