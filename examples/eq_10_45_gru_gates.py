"""Eq. 10.45-10.47: the gates of a GRU at work, on the task of eq_10_40_lstm_gates.py (remember
the first symbol across 14 steps of noise). `keras_seq.introspect.internals` replays the trained
layer and the script prints, for the unit that holds the memory, the update gate u, the reset
gate r and the state h at every step:

    h(t) = u(t) ⊙ h(t-1) + (1 - u(t)) ⊙ c(t)     (10.45, c the candidate)

The memory is written when u is low (h takes the candidate) and kept while u stays near 1 (h
copies itself through the noise). With matplotlib and `--plot FILE.png`, heatmaps of every unit.

Run: python examples/eq_10_45_gru_gates.py [--tiny] [--plot gru_gates.png]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_seq.introspect import internals  # noqa: E402
from keras_seq.models import SequenceClassifier  # noqa: E402

CLASSES, NOISE, STEPS = 3, 4, 15


def make_data(n, rng):
    tokens = rng.integers(CLASSES, CLASSES + NOISE, size=(n, STEPS))
    tokens[:, 0] = rng.integers(0, CLASSES, size=n)
    return keras.utils.to_categorical(tokens, CLASSES + NOISE).astype("float32"), tokens[:, 0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="minimal budget (or KERAS_SEQ_EXAMPLE_TINY=1)")
    parser.add_argument("--plot", default=None, help="also draw the gates to this PNG (needs matplotlib)")
    args = parser.parse_args(argv)
    tiny = args.tiny or os.environ.get("KERAS_SEQ_EXAMPLE_TINY") == "1"
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = make_data(256 if tiny else 4096, rng)
    x_test, y_test = make_data(256, rng)

    model = SequenceClassifier(8, output_units=CLASSES, cell="gru")
    model.compile(keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"],
                  run_eagerly=tiny)
    model.fit(x, y, epochs=1 if tiny else 12, batch_size=64, verbose=0)
    accuracy = model.evaluate(x_test, y_test, verbose=0)[1]

    values = internals(model.rnn, x_test)  # u, r, c, h: (batch, steps, units)
    final = values["h"][:, -1]
    means = np.stack([final[y_test == k].mean(0) for k in range(CLASSES)])
    unit = int(np.argmax(means.std(0) / (final.std(0) + 1e-6)))
    print(f"Eq. 10.45-10.47 GRU remembering the first of {STEPS} symbols: accuracy {accuracy:.1%} "
          f"(chance {1 / CLASSES:.0%}); memory unit {unit}, averaged over {len(x_test)} sequences:")
    print("  step  input   u(update) r(reset)  h(state, class 0 / 1 / 2)")
    for t in range(STEPS):
        h_by_class = " / ".join(f"{values['h'][y_test == k, t, unit].mean():+.2f}" for k in range(CLASSES))
        print(f"  {t:>4}  {'class' if t == 0 else 'noise':<6}  {values['u'][:, t, unit].mean():8.2f}"
              f"  {values['r'][:, t, unit].mean():8.2f}   {h_by_class}")
    if args.plot:
        try:
            from keras_seq.plot import pyplot

            plt = pyplot()
            fig, axes = plt.subplots(1, 3, figsize=(7, 3.2), sharey=True)
            for ax, name in zip(axes, ("u", "r", "h")):
                ax.imshow(values[name][0].T, aspect="auto", vmin=0 if name != "h" else -1, vmax=1,
                          cmap="viridis" if name != "h" else "RdBu_r", interpolation="nearest")
                ax.set_title(name)
                ax.set_xlabel("step")
            axes[0].set_ylabel("unit")
            fig.tight_layout()
            fig.savefig(args.plot, dpi=90)
            print(f"wrote {args.plot}")
        except ImportError as e:
            print(e)
    return accuracy


if __name__ == "__main__":
    main()
