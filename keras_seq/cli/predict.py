"""`keras-seq predict`: decode with a model directory (offline), or query a server.

    keras-seq predict --model DIR [TEXT ...] [--input FILE] [--greedy | --beam-width K] [--nbest N]
                      [--max-length L] [--lexicon FILE] [--no-dictionary] [--show-source]
    keras-seq predict --server HOST:PORT --model NAME WORD ... [--beam-width K] [--num-results N]
                      [--max-length L] [--length-penalty A]      (TF Serving's gRPC API)

With ``--model`` naming a model directory (keras-seq train --out) and no ``--server``, the lines
of ``--input`` (or standard input, or the TEXT arguments) are decoded in this process, one output
line per input line (``source<TAB>output``; ``--nbest N`` adds N lines per source with scores).
An empty line gives an empty output; a line longer than the model's maximum ends the command with
a message that names the line. ``--num-results`` is another name of ``--nbest``.

With ``--server``, the decoding settings go to the export's ``decode`` signature, one value per
word (`keras_seq.serving.Client.predict`).

A G2P model answers the words of its dictionary from it (`keras_seq.g2p.G2P.predict`); ``--lexicon
FILE`` (CMUdict or TSV format) adds or overrides words, ``--no-dictionary`` decodes every word with
the model, and ``--show-source`` adds a column saying where each answer came from (``dictionary``
or ``model``).
"""

import argparse
import os
import sys

EXIT_USAGE = 2


def _offline_parser():
    p = argparse.ArgumentParser(prog="keras-seq predict", description="Decode lines with a trained model directory.")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="sources to decode (default: the lines of --input)")
    p.add_argument("--model", required=True, help="model directory (keras-seq train ... --out)")
    p.add_argument("--input", default="-", help="file of sources, one a line ('-': standard input)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--greedy", action="store_true", help="greedy search")
    group.add_argument("--beam-width", type=int, default=None, help="beam width (default: the model's)")
    p.add_argument("--nbest", "--num-results", dest="nbest", type=int, default=1,
                   help="outputs per source, with their scores")
    p.add_argument("--max-length", type=int, default=None, help="largest output length (default: the model's)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lexicon", default=None, help="G2P: a lexicon (CMUdict or TSV format) whose words are "
                   "answered from it, before the model's dictionary")
    p.add_argument("--no-dictionary", action="store_true", help="G2P: decode every word with the model")
    p.add_argument("--show-source", action="store_true", help="G2P: add a column, 'dictionary' or 'model'")
    return p


def load_application(directory):
    """The `TextSeq2Seq` (or `G2P`) saved in `directory`."""
    from keras_seq.g2p.model import G2P
    from keras_seq.seq2seq.model import TextSeq2Seq

    for cls in (G2P, TextSeq2Seq):
        if cls.is_model_directory(directory):
            return cls.load(directory)
    raise FileNotFoundError(f"{directory} is not a keras-seq model directory (no g2p.json or seq2seq.json)")


def offline_main(argv):
    args = _offline_parser().parse_args(argv)
    prog = "keras-seq predict"
    if args.nbest < 1 or (args.beam_width is not None and args.beam_width < args.nbest):
        print(f"{prog}: error: --nbest must be between 1 and the beam width", file=sys.stderr)
        return EXIT_USAGE
    if args.max_length is not None and args.max_length < 1:
        print(f"{prog}: error: --max-length must be >= 1", file=sys.stderr)
        return EXIT_USAGE
    if args.texts:
        lines, name = list(args.texts), "argument"
    elif args.input == "-":
        lines, name = [line.rstrip("\r\n") for line in sys.stdin], "<stdin>"
    else:
        try:
            with open(args.input, encoding="utf-8") as f:
                lines, name = [line.rstrip("\r\n") for line in f], args.input
        except (OSError, UnicodeDecodeError) as e:
            print(f"{prog}: error: --input {args.input}: {e}", file=sys.stderr)
            return EXIT_USAGE
    from keras_seq.text import SourceTooLongError

    from keras_seq.g2p.data import normalize_word
    from keras_seq.g2p.model import G2P

    try:
        app = load_application(args.model)
        g2p = isinstance(app, G2P)
        if not g2p and (args.lexicon or args.no_dictionary or args.show_source):
            raise ValueError("--lexicon, --no-dictionary and --show-source are for G2P models")
        if args.lexicon:
            app.add_lexicon(args.lexicon)
    except (FileNotFoundError, ValueError, OSError) as e:
        print(f"{prog}: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return EXIT_USAGE
    dictionary = app.dictionary if g2p and not args.no_dictionary else {}
    for number, line in enumerate(lines, start=1):
        try:
            if normalize_word(line) not in dictionary:
                app.encode([line])
        except SourceTooLongError as e:
            print(f"{prog}: error: {name}:{number}: {e}", file=sys.stderr)
            return EXIT_USAGE
    method = "greedy" if args.greedy else "beam"
    width = None if args.greedy else max(args.beam_width or app.beam_width, args.nbest)
    settings = dict(method=method, beam_width=width, num_results=1 if args.greedy else args.nbest,
                    batch_size=args.batch_size, max_length=args.max_length)
    try:
        if g2p:
            details = app.predict_details(lines, use_dictionary=not args.no_dictionary, **settings)
            results, sources = [d.pronunciations for d in details], [d.source for d in details]
        else:
            results, sources = app.predict(lines, **settings), [None] * len(lines)
    except ValueError as e:  # a --max-length over the model's
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    out = sys.stdout
    for line, result, source in zip(lines, results, sources):
        for output, score in result[: args.nbest]:
            fields = [line, output if isinstance(output, str) else " ".join(output)]
            fields += [f"{score:.4f}"] if args.nbest > 1 else []
            fields += [source] if args.show_source else []
            out.write("\t".join(fields) + "\n")
    return 0


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    model = None
    for i, arg in enumerate(argv):
        if arg == "--model" and i + 1 < len(argv):
            model = argv[i + 1]
        elif arg.startswith("--model="):
            model = arg.split("=", 1)[1]
    if model is not None and os.path.isdir(model) and not any(a == "--server" or a.startswith("--server=") for a in argv):
        return offline_main(argv)
    from keras_seq.serving.client import main as served_main

    return served_main(argv)


if __name__ == "__main__":
    sys.exit(main())
