"""Fig. 10.4 and 10.6: an RNN whose only recurrence goes from the output y(t-1) to the hidden units,
trained with teacher forcing, on a running sum modulo 3, y(t) = (y(t-1) + x(t)) mod 3.

The output is the whole state of this task, so output-to-hidden recurrence suffices. In training
the true y(t-1) is fed (Fig. 10.6, left): every step is independent and there is no loop at all.
At test time the model feeds back its own outputs (Fig. 10.6, right), one step at a time; a single
mistake then propagates, which is why free-running accuracy trails teacher-forced accuracy early on.

Run: python examples/fig_10_04_06_output_recurrence_teacher_forcing.py [--tiny]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_seq.models import OutputRecurrentTagger  # noqa: E402

STEPS, K = 10, 3


def make_data(n, rng):
    x = rng.integers(0, K, size=(n, STEPS))
    y = np.cumsum(x, axis=1) % K
    return keras.utils.to_categorical(x, K).astype("float32"), y


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="minimal budget (or KERAS_SEQ_EXAMPLE_TINY=1)")
    args = parser.parse_args(argv)
    tiny = args.tiny or os.environ.get("KERAS_SEQ_EXAMPLE_TINY") == "1"
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = make_data(256 if tiny else 4096, rng)
    x_test, y_test = make_data(512, rng)

    model = OutputRecurrentTagger(16, output_units=K)  # h(t) = tanh(b + W y(t-1) + U x(t))
    model.compile(keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy", run_eagerly=tiny)
    model.fit({"inputs": x, "targets": y}, y, epochs=1 if tiny else 20, batch_size=64, verbose=0)

    forced = np.argmax(model({"inputs": x_test, "targets": y_test}), axis=-1)  # true y(t-1) fed
    free = np.argmax(model(x_test), axis=-1)  # own outputs fed back
    print("Fig. 10.4/10.6 output recurrence, y(t) = (y(t-1) + x(t)) mod 3")
    print(f"  teacher-forced accuracy per step {np.mean(forced == y_test):.1%}")
    print(f"  free-running accuracy per step   {np.mean(free == y_test):.1%}")
    print(f"  free-running whole sequences     {np.mean((free == y_test).all(axis=1)):.1%}")
    print("  x         ", " ".join(map(str, np.argmax(x_test[0], -1))))
    print("  y         ", " ".join(map(str, y_test[0])))
    print("  free run  ", " ".join(map(str, free[0])))
    return float(np.mean(free == y_test))


if __name__ == "__main__":
    main()
