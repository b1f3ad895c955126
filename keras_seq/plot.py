"""Pictures of recurrent models at work, as PNG files: `keras-seq plot gates|curves|attention`.

- `gates`: heatmaps of the gate activations of a trained G2P encoder over the characters of a
  word (LSTM f, g, q and h; GRU u, r and h; Elman a and h: each cell's `pictured_internals`), one
  column per direction for a bidirectional encoder. The values come from
  `keras_seq.introspect.internals`.
- `curves`: the training curves of a `keras-seq train` run, read from its `metrics.csv`: loss and
  val_loss, and dev WER / PER, per epoch.
- `attention`: the attention weights of a trained encoder-decoder with attention: the word is
  decoded greedily, then the decoder is re-run step by step on its own output to read the weights
  of each output step over the input characters.

Each command has a function that computes the numbers (`gate_activations`, `read_metrics`,
`attention_weights`) and one that draws them (`plot_gates`, `plot_curves`, `plot_attention`).
matplotlib is an optional dependency (`pip install keras-seq[plot]`), imported only to draw, with
the non-interactive Agg backend.
"""

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

INSTALL_HINT = "pip install keras-seq[plot]"

class MissingMatplotlib(ImportError):
    """matplotlib is not installed; the message says how to install it."""


def pyplot():
    """matplotlib.pyplot with the Agg backend, or `MissingMatplotlib` naming the extra."""
    try:
        import matplotlib
    except ImportError as e:
        raise MissingMatplotlib(
            f"Plotting needs matplotlib, an optional dependency of keras-seq: {INSTALL_HINT}"
        ) from e
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out):
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    pyplot().close(fig)
    return out


def _labels(g2p, word):
    """The characters of `word` as the model reads them (`?` for one out of its vocabulary)."""
    ids = g2p.encode([word])[0]
    ids = ids[ids != g2p.source_vocabulary.pad_id]
    if not len(ids):
        raise ValueError(f"No characters to show for the word {word!r}.")
    return [g2p.source_vocabulary.id_to_token(i) if i != g2p.source_vocabulary.oov_id else "?" for i in ids], ids


# -- gates -----------------------------------------------------------------------------------------
def _one_model(g2p):
    """The G2P's encoder-decoder; an ensemble has several, which a picture cannot show at once."""
    members = getattr(g2p.model, "members", None)
    if members is not None:
        raise ValueError(f"This model is an ensemble of {len(members)} encoder-decoders; "
                         "plot one of the models it was made from.")
    return g2p.model


def gate_activations(g2p, word, layer=0):
    """The internals of encoder layer `layer` of a G2P model over the characters of `word`.

    Returns `(characters, cell_name, parts)`: `parts` maps a direction ("forward", "backward", or
    "" for a one-directional encoder) to the dict of `keras_seq.introspect.internals` for the one
    word, each array of shape (characters, units).
    """
    characters, cell, parts = _encoder_internals(g2p, word, layer)
    return characters, type(cell).__name__, parts


def _encoder_internals(g2p, word, layer):
    """`gate_activations` with the encoder layer's cell itself in place of its class name."""
    from keras import ops

    from keras_seq.introspect import internals

    model = _one_model(g2p)
    if not 0 <= layer < len(model.encoder):
        raise ValueError(f"The encoder has {len(model.encoder)} layer(s); no layer {layer}.")
    characters, ids = _labels(g2p, word)
    tokens = ops.convert_to_tensor(ids[None, :].astype("int32"))
    mask = ops.ones_like(tokens, dtype="bool")
    x = model.source_embedding(tokens)
    for below in model.encoder[:layer]:
        x = below(x, mask=mask)[0]
    encoder = model.encoder[layer]
    values = internals(encoder, x, mask=mask)
    if "forward" not in values:
        values = {"": values}
    parts = {direction: {k: v[0] for k, v in d.items()} for direction, d in values.items()}
    rnn = getattr(encoder, "forward_layer", encoder)
    return characters, rnn.cell, parts


def plot_gates(g2p, word, out, layer=0, max_units=64):
    """Writes heatmaps (units × characters) of the encoder's gates for `word` to the PNG `out`."""
    plt = pyplot()
    characters, cell, parts = _encoder_internals(g2p, word, layer)
    cell_name = type(cell).__name__
    rows = cell.pictured_internals  # (name, title, value range), as the cell states them
    directions = list(parts)
    units = min(max_units, next(iter(parts.values()))["h"].shape[-1])
    width = 1.6 + len(directions) * (0.32 * len(characters) + 1.4)
    height = 0.9 + len(rows) * min(3.0, 0.6 + 0.035 * units)
    fig, axes = plt.subplots(len(rows), len(directions), figsize=(width, height), squeeze=False)
    for col, direction in enumerate(directions):
        for row, (name, title, limits) in enumerate(rows):
            ax = axes[row][col]
            values = parts[direction][name][:, :units].T  # (units, characters)
            vmin, vmax = limits if limits else (-np.abs(values).max() or -1, np.abs(values).max() or 1)
            image = ax.imshow(values, aspect="auto", cmap="viridis" if limits == (0, 1) else "RdBu_r",
                              vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_title(f"{direction}: {title}" if direction else title, fontsize=8)
            ax.set_xticks(range(len(characters)))
            ax.set_xticklabels(characters, fontsize=8)
            ax.tick_params(axis="y", labelsize=6)
            if col == 0:
                ax.set_ylabel("unit", fontsize=7)
            fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02).ax.tick_params(labelsize=6)
    fig.suptitle(f"{cell_name[:-4]} encoder layer {layer}, word {word!r}", fontsize=9)
    fig.tight_layout()
    return _save(fig, out)


# -- curves ----------------------------------------------------------------------------------------
def read_metrics(run_dir):
    """The columns of `run_dir/metrics.csv` (or of the CSV file `run_dir`) as float arrays.

    Missing values (an epoch without dev scores) are NaN. Raises FileNotFoundError without a file
    and ValueError without an `epoch` column or rows.
    """
    path = Path(run_dir)
    if path.is_dir():
        path = path / "metrics.csv"
    if not path.exists():
        raise FileNotFoundError(f"No metrics file {path}: is {run_dir} a `keras-seq train` run directory?")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "epoch" not in rows[0]:
        raise ValueError(f"{path} has no rows with an `epoch` column.")

    def number(text):
        try:
            return float(text)
        except (TypeError, ValueError):
            return float("nan")

    return {key: np.array([number(row.get(key)) for row in rows]) for key in rows[0]}


def plot_curves(run_dir, out):
    """Writes the loss curves and the dev WER / PER per epoch of a training run to the PNG `out`."""
    plt = pyplot()
    metrics = read_metrics(run_dir)
    epochs = metrics["epoch"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    for key, style in [("loss", "-o"), ("val_loss", "-s")]:
        if key in metrics and not np.all(np.isnan(metrics[key])):
            left.plot(epochs, metrics[key], style, markersize=3, label=key)
    left.set_xlabel("epoch")
    left.set_ylabel("cross-entropy per phoneme")
    left.set_title("loss (teacher forcing)", fontsize=9)
    for key, label in [("dev_wer", "dev WER"), ("dev_per", "dev PER")]:
        if key in metrics and not np.all(np.isnan(metrics[key])):
            values = metrics[key] * 100.0
            right.plot(epochs, values, "-o", markersize=3, label=label)
            last = np.flatnonzero(~np.isnan(values))[-1]
            right.annotate(f"{values[last]:.1f}%", (epochs[last], values[last]), fontsize=7,
                           textcoords="offset points", xytext=(2, 4))
    right.set_xlabel("epoch")
    right.set_ylabel("%")
    right.set_title("dev error rates (greedy)", fontsize=9)
    from matplotlib.ticker import MaxNLocator

    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(f"training run {Path(run_dir).name}", fontsize=9)
    fig.tight_layout()
    return _save(fig, out)


# -- attention -------------------------------------------------------------------------------------
def attention_weights(g2p, word, max_length=None):
    """Greedy decoding of `word` and the attention weights of each output step.

    Returns `(characters, phonemes, weights)`: `phonemes` the greedy output (with "</s>" last if
    the model ended it), `weights` a NumPy array (len(phonemes), len(characters)) whose row t is
    the distribution α(t) over the input characters when the decoder emitted `phonemes[t]`.
    """
    from keras import ops

    model = _one_model(g2p)
    if model.attention is None:
        raise ValueError("This model has no attention (it was trained with attention off).")
    characters, ids = _labels(g2p, word)
    tokens_in = ops.convert_to_tensor(ids[None, :].astype("int32"))
    out = model.generate(tokens_in, method="greedy", max_length=max_length)
    length = int(ops.convert_to_numpy(out["lengths"])[0])
    outputs = ops.convert_to_numpy(out["tokens"])[0, :length]

    # Re-run the decoder on its own output, one step at a time (decoder_step's arithmetic), and
    # read the attention weights that `decoder_step` does not return.
    state = model.initial_decoder_state(tokens_in)
    previous = ops.full((1,), model.start_token, "int32")
    rnn, rows = state["rnn"], []
    for token in outputs:
        x = model.decoder_inputs_of(previous, state.get("context"))
        new_rnn = []
        for layer, states in zip(model.decoder, rnn):
            x, new_states = layer.cell(x, list(states))
            new_rnn.append(list(new_states))
        rnn = new_rnn
        _, weights = model.attention(x, state["memory"], state["memory_mask"], return_weights=True)
        rows.append(ops.convert_to_numpy(weights)[0])
        previous = ops.full((1,), int(token), "int32")
    phonemes = [g2p.target_vocabulary.id_to_token(int(t)) for t in outputs]
    return characters, phonemes, np.array(rows).reshape(len(outputs), len(characters))


def plot_attention(g2p, word, out, max_length=None):
    """Writes the attention weights (output phonemes × input characters) for `word` to `out`."""
    plt = pyplot()
    characters, phonemes, weights = attention_weights(g2p, word, max_length)
    fig, ax = plt.subplots(figsize=(1.8 + 0.38 * len(characters), 1.2 + 0.3 * max(len(phonemes), 1)))
    image = ax.imshow(weights, aspect="auto", cmap="Greys", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks(range(len(characters)))
    ax.set_xticklabels(characters)
    ax.set_yticks(range(len(phonemes)))
    ax.set_yticklabels(phonemes, fontsize=8)
    ax.xaxis.tick_top()
    ax.set_xlabel("input characters")
    ax.set_ylabel("output phonemes (greedy)")
    fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03)
    fig.tight_layout()
    return _save(fig, out)


# -- command line ----------------------------------------------------------------------------------
def _parser():
    parser = argparse.ArgumentParser(
        prog="keras-seq plot", description="Draw pictures of recurrent models as PNG files."
    )
    commands = parser.add_subparsers(dest="what", required=True, metavar="{gates,curves,attention}")
    gates = commands.add_parser("gates", help="heatmaps of a G2P encoder's gates over a word")
    gates.add_argument("--model", required=True, help="G2P model directory")
    gates.add_argument("--word", required=True)
    gates.add_argument("--out", required=True, help="PNG file to write")
    gates.add_argument("--layer", type=int, default=0, help="encoder layer (default 0)")
    gates.add_argument("--units", type=int, default=64, help="show at most this many units (default 64)")
    curves = commands.add_parser("curves", help="loss and dev WER/PER per epoch of a training run")
    curves.add_argument("--run", required=True, help="run directory (with metrics.csv) or the CSV file")
    curves.add_argument("--out", required=True, help="PNG file to write")
    attention = commands.add_parser("attention", help="attention weights of a G2P model for a word")
    attention.add_argument("--model", required=True, help="G2P model directory (trained with attention)")
    attention.add_argument("--word", required=True)
    attention.add_argument("--out", required=True, help="PNG file to write")
    attention.add_argument("--max-length", type=int, default=None, help="most output phonemes")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        pyplot()
        if args.what == "curves":
            out = plot_curves(args.run, args.out)
        else:
            from keras_seq.cli.predict import load_application

            g2p = load_application(args.model)  # a G2P or any TextSeq2Seq model directory
            if args.what == "gates":
                out = plot_gates(g2p, args.word, args.out, layer=args.layer, max_units=args.units)
            else:
                out = plot_attention(g2p, args.word, args.out, max_length=args.max_length)
    except (MissingMatplotlib, FileNotFoundError, ValueError) as e:
        print(f"keras-seq plot: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
