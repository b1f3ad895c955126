"""`keras-seq g2p WORD ...`: pronunciations with no training and no server, and
`keras-seq pretrained pack`, which builds the pretrained model shipped in the package.

    keras-seq g2p hello world                     # hello<TAB>HH AH0 L OW1 ...: the pretrained model
    keras-seq g2p --text "In 1984, I read 3 books."   # one line per word: text, word, phonemes
    keras-seq g2p --model runs/g2p [--no-dictionary] [--lexicon FILE] [--show-source] WORD ...
    keras-seq pretrained pack --model runs/g2p-student --dev DEV_LEXICON [--name NAME] [--overwrite]

`keras-seq g2p` pronounces each WORD as `keras_seq.g2p.G2P.predict` does (dictionary first, the
best pronunciation), one ``word<TAB>pronunciation`` line per word, in order. A word without
letters (empty, digits, punctuation) or over the model's length limit gets an empty
pronunciation and a note on stderr, never an error; numbers and sentences go through ``--text``
(`G2P.pronounce_text`: numbers written out in words, word boundaries kept).
"""

import argparse
import sys

EXIT_USAGE = 2


def _parser():
    p = argparse.ArgumentParser(prog="keras-seq g2p", description="Print the pronunciations of words (ARPAbet) "
                                "with the pretrained G2P model shipped with keras-seq, or a trained one (--model).")
    p.add_argument("words", nargs="*", metavar="WORD", help="words to pronounce")
    p.add_argument("--text", default=None, help="a sentence instead: words and punctuation, numbers written out in "
                   "words (needs num2words: pip install keras-seq[numbers]); one line per word: text, word, phonemes")
    p.add_argument("--model", default=None, help="a G2P model directory (default: the pretrained model)")
    p.add_argument("--no-dictionary", action="store_true", help="decode every word with the model")
    p.add_argument("--lexicon", default=None, help="a lexicon (CMUdict or TSV format) whose words are answered "
                   "from it, before the model's dictionary")
    p.add_argument("--show-source", action="store_true", help="add a column: dictionary, model (or punctuation, "
                   "too_long with --text)")
    return p


def _load(model):
    """The G2P of a model directory, or the pretrained one."""
    from keras_seq.g2p.model import G2P
    from keras_seq.g2p.pretrained import load_pretrained

    if model is None:
        return load_pretrained()
    if not G2P.is_model_directory(model):
        raise FileNotFoundError(f"--model: {model} is not a G2P model directory (no {G2P.SETTINGS_FILE})")
    return G2P.load(model)


def main(argv=None):
    """`keras-seq g2p ...`; returns the exit code."""
    prog = "keras-seq g2p"
    args = _parser().parse_args(argv)
    if args.text is not None and args.words:
        print(f"{prog}: error: give words or --text, not both", file=sys.stderr)
        return EXIT_USAGE
    if args.text is None and not args.words:
        print(f"{prog}: error: nothing to pronounce: give words (keras-seq g2p hello world) or --text \"...\"",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        g2p = _load(args.model)
        if args.lexicon:
            g2p.add_lexicon(args.lexicon)
    except (FileNotFoundError, ValueError, OSError) as e:
        print(f"{prog}: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return EXIT_USAGE
    use_dictionary = not args.no_dictionary
    if args.text is not None:
        try:
            spoken = g2p.pronounce_text(args.text, use_dictionary=use_dictionary)
        except ImportError as e:  # digits without num2words
            print(f"{prog}: error: {str(e).splitlines()[0]}", file=sys.stderr)
            return EXIT_USAGE
        if not spoken:
            print(f"{prog}: the text has no words: nothing to pronounce", file=sys.stderr)
        for w in spoken:
            fields = [w.text, w.word, " ".join(w.phonemes)] + ([w.source] if args.show_source else [])
            print("\t".join(fields))
        return 0

    from keras_seq.g2p.data import normalize_word

    dictionary = g2p.dictionary if use_dictionary else {}
    notes = {}
    for word in args.words:
        if not any(c.isalpha() for c in word):
            notes[word] = (f"{word!r} has no letters: no pronunciation (numbers and sentences: --text)", "no_letters")
        elif len(word) > g2p.max_input_length and normalize_word(word) not in dictionary:
            notes[word] = (f"{word!r} is longer than the model's {g2p.max_input_length} characters: no pronunciation",
                           "too_long")
    readable = [w for w in args.words if w not in notes]
    answers = iter(g2p.predict_details(readable, use_dictionary=use_dictionary))
    for word in args.words:
        if word in notes:
            print(f"{prog}: {notes[word][0]}", file=sys.stderr)
            pronunciation, source = "", notes[word][1]
        else:
            answer = next(answers)
            pronunciation, source = " ".join(answer.pronunciations[0][0]), answer.source
        print("\t".join([word, pronunciation] + ([source] if args.show_source else [])))
    return 0


def _pretrained_parser():
    from keras_seq.g2p.pretrained import DEFAULT_NAME, MAX_MEGABYTES

    p = argparse.ArgumentParser(prog="keras-seq pretrained", description="The pretrained G2P model shipped in the "
                                "package (keras_seq.g2p.load_pretrained).")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    pack = sub.add_parser("pack", help="pack a trained G2P model directory into the package (float16 weights)",
                          description="Write a trained G2P model directory into keras_seq/g2p/pretrained/NAME/ "
                          "(settings, vocabularies, model.json, float16 weights.npz, pretrained.json), and with "
                          "--dev report the dev WER/PER of the float32 model and of the float16 copy.")
    pack.add_argument("--model", required=True, help="the trained G2P model directory")
    pack.add_argument("--name", default=DEFAULT_NAME, help="the packaged model's name (default: %(default)s)")
    pack.add_argument("--dev", default=None, help="dev lexicon (CMUdict or TSV): compare float32 and float16 on it")
    pack.add_argument("--dev-words", type=int, default=None, help="score the first N dev words only")
    pack.add_argument("--out", default=None, help="the folder of packaged models (default: the package's own)")
    pack.add_argument("--max-mb", type=float, default=MAX_MEGABYTES, help="the largest package allowed, in MB "
                      "(default: %(default)s)")
    pack.add_argument("--overwrite", action="store_true", help="replace an existing packaged model of that name")
    return p


def pretrained_main(argv=None):
    """`keras-seq pretrained pack ...`; returns the exit code."""
    args = _pretrained_parser().parse_args(argv)
    from keras_seq.g2p.pretrained import PRETRAINED_DIR, pack

    try:
        pack(args.model, args.name, dev=args.dev, dev_words=args.dev_words, out=args.out or PRETRAINED_DIR,
             max_megabytes=args.max_mb, overwrite=args.overwrite)
    except (FileNotFoundError, ValueError, OSError) as e:
        print(f"keras-seq pretrained pack: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
