"""Eq. 10.40-10.44: the gates of an LSTM at work. The task is to remember the first symbol of a
sequence across 14 steps of distracting noise and name it at the end (a sequence classifier,
Fig. 10.5, with an LSTM cell). After training, `keras_seq.introspect.internals` replays the
layer step by step and the script prints, for the unit that holds the memory, the forget gate f,
the input gate g, the output gate q and the internal state s at every step:

    s(t) = f(t) ⊙ s(t-1) + g(t) ⊙ c(t)     (10.40)     h(t) = tanh(s(t)) ⊙ q(t)     (10.43)

Look for the state being written at the first step and kept through the noise: f stays high
after the first step and s(t) is apart for the three classes from then on. Training is free to
find its own solution, and a common one is a loop: the class, fed back through h(t-1), keeps
writing a class-dependent amount g ⊙ c into s, which then drifts apart (a rate, not a constant).
`--candidate tanh` swaps the book's sigmoid cell input for the usual LSTM's tanh.
With matplotlib and `--plot FILE.png`, heatmaps of every unit's gates are drawn too.

Run: python examples/eq_10_40_lstm_gates.py [--tiny] [--candidate sigmoid|tanh] [--plot lstm_gates.png]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_seq.introspect import internals  # noqa: E402
from keras_seq.models import SequenceClassifier  # noqa: E402

CLASSES, NOISE, STEPS = 3, 4, 15  # symbols 0-2 are the classes, 3-6 noise


def make_data(n, rng):
    tokens = rng.integers(CLASSES, CLASSES + NOISE, size=(n, STEPS))
    tokens[:, 0] = rng.integers(0, CLASSES, size=n)
    return keras.utils.to_categorical(tokens, CLASSES + NOISE).astype("float32"), tokens[:, 0]


def memory_unit(values, labels):
    """The unit whose final state s(τ) best separates the classes (between-class spread)."""
    final = values["s"][:, -1]
    means = np.stack([final[labels == k].mean(0) for k in range(CLASSES)])
    return int(np.argmax(means.std(0) / (final.std(0) + 1e-6)))


def draw(values, tokens, path, names=("f", "g", "q", "s", "h")):
    from keras_seq.plot import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(2.3 * len(names), 3.2), sharey=True)
    for ax, name in zip(axes, names):
        image = ax.imshow(values[name][0].T, aspect="auto", cmap="viridis" if name in "fgq" else "RdBu_r",
                          vmin=0 if name in "fgq" else -1, vmax=1, interpolation="nearest")
        ax.set_title(name)
        ax.set_xticks(range(STEPS))
        ax.set_xticklabels(tokens, fontsize=6)
        fig.colorbar(image, ax=ax, fraction=0.08)
    axes[0].set_ylabel("unit")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"wrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="minimal budget (or KERAS_SEQ_EXAMPLE_TINY=1)")
    parser.add_argument("--candidate", default="sigmoid", choices=["sigmoid", "tanh"],
                        help="the cell input's nonlinearity (the book's sigmoid, or tanh)")
    parser.add_argument("--plot", default=None, help="also draw the gates to this PNG (needs matplotlib)")
    args = parser.parse_args(argv)
    tiny = args.tiny or os.environ.get("KERAS_SEQ_EXAMPLE_TINY") == "1"
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = make_data(256 if tiny else 4096, rng)
    x_test, y_test = make_data(256, rng)

    model = SequenceClassifier(8, output_units=CLASSES, cell="lstm",
                               cell_options={"candidate_activation": args.candidate})
    model.compile(keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"],
                  run_eagerly=tiny)
    model.fit(x, y, epochs=1 if tiny else 12, batch_size=64, verbose=0)
    accuracy = model.evaluate(x_test, y_test, verbose=0)[1]

    values = internals(model.rnn, x_test)  # f, g, c, q, s, h: (batch, steps, units)
    unit = memory_unit(values, y_test)
    print(f"Eq. 10.40-10.44 LSTM remembering the first of {STEPS} symbols: accuracy {accuracy:.1%} "
          f"(chance {1 / CLASSES:.0%}); memory unit {unit}, averaged over {len(x_test)} sequences:")
    print("  step  input   f(forget) g(input)  q(output)  s(state, class 0 / 1 / 2)")
    for t in range(STEPS):
        s_by_class = " / ".join(f"{values['s'][y_test == k, t, unit].mean():+.2f}" for k in range(CLASSES))
        print(f"  {t:>4}  {'class' if t == 0 else 'noise':<6}  {values['f'][:, t, unit].mean():8.2f}"
              f"  {values['g'][:, t, unit].mean():8.2f}  {values['q'][:, t, unit].mean():8.2f}   {s_by_class}")
    if args.plot:
        try:
            draw({k: v[:1] for k, v in values.items()}, np.argmax(x_test[0], -1), args.plot)
        except ImportError as e:
            print(e)
    return accuracy


if __name__ == "__main__":
    main()
