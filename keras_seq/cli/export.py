"""`keras-seq export --model PATH --base-path export/NAME [--version N] [--name NAME] [--shards N]
[--dictionary] [--lexicon FILE]` (the last two: G2P models, see `keras_seq.g2p.serving`).

``--model pretrained`` (or ``pretrained:NAME``) exports the pretrained G2P model shipped with
keras-seq (`keras_seq.g2p.load_pretrained`); a directory of that name is ``./pretrained``."""

import argparse
import sys

import keras_seq.g2p  # noqa: F401  (registers G2P model directories with keras_seq.export)
import keras_seq.seq2seq  # noqa: F401  (registers TextSeq2Seq model directories)
from keras_seq.export import ExportError, export_saved_model, load_for_export


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="keras-seq export",
        description="Export a trained model into a TF Serving model repository (base_path/<version>/), atomically.",
    )
    parser.add_argument("--model", required=True,
                        help="a model directory (keras-seq train seq2seq|g2p --out), a .keras file, or 'pretrained' "
                        "(the pretrained G2P model shipped with keras-seq; 'pretrained:NAME' for another packaged one)")
    parser.add_argument("--base-path", required=True, help="the model's directory in the repository, e.g. export/g2p")
    parser.add_argument("--version", type=int, default=None, help="version number (default: the next one)")
    parser.add_argument("--name", default=None, help="model name written into warmup requests (default: base path's name)")
    parser.add_argument(
        "--shards", type=int, default=None,
        help="encoder-decoders: decode a batch of at least 2*N rows as N parts side by side, one core each "
        "(default 2; 1 decodes every batch in one loop)",
    )
    parser.add_argument("--dictionary", action="store_true",
                        help="G2P: answer the words of the model's dictionary inside the SavedModel (a lookup "
                        "table, with a per-row use_dictionary input and a from_dictionary output), and add "
                        "the text signature (sentences in, numbers written out; needs num2words here)")
    parser.add_argument("--lexicon", default=None,
                        help="G2P: a lexicon file (CMUdict or TSV format) whose words override or add to the "
                        "dictionary; implies --dictionary")
    args = parser.parse_args(argv)
    if args.shards is not None and args.shards < 1:
        parser.error(f"--shards must be at least 1, got {args.shards}")
    try:
        if args.model == "pretrained" or args.model.startswith("pretrained:"):
            from keras_seq.g2p.pretrained import DEFAULT_NAME, load_pretrained

            g2p = load_pretrained(args.model.partition(":")[2] or DEFAULT_NAME)
            loaded = g2p.export_inputs(shards=2 if args.shards is None else args.shards, dictionary=args.dictionary,
                                       lexicon=args.lexicon)
        else:
            loaded = load_for_export(args.model, shards=args.shards, dictionary=args.dictionary, lexicon=args.lexicon)
        path = export_saved_model(loaded.pop("module"), args.base_path, version=args.version, model_name=args.name,
                                  **loaded)
    except (ExportError, OSError, ValueError) as e:
        print(f"keras-seq export: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
