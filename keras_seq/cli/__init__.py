"""The `keras-seq` command line: one sub-command per module, imported only when it is used.

The serving sub-commands (`serve`, `predict`) never import model code, as TF Serving never does.
"""

import importlib
import os
import sys
import tempfile

# TensorFlow prints a lot at import; keep the user's own output readable.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def import_tensorflow_quietly():
    """Imports TensorFlow with file descriptor 2 sent to a temporary file.

    Some of TensorFlow's start-up lines (oneDNN, CUDA probing) are written by its C++ runtime
    before it reads TF_CPP_MIN_LOG_LEVEL. They are dropped, unless the import fails: then they
    are printed, as they may explain why. Set TF_CPP_MIN_LOG_LEVEL below 3 to see them always.
    """
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") in ("0", "1", "2") or "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)

# sub-command -> (module, function taking argv, one-line help)
COMMANDS = {
    "demo": ("keras_seq.demo", "main", "train -> export -> serve -> predict over gRPC, end to end"),
    "train": ("keras_seq.cli.tasks", "train_main", "train a model (keras-seq train seq2seq|g2p|reverse ...)"),
    "distill": ("keras_seq.cli.tasks", "distill_main",
                "train a small student G2P on a teacher's pronunciations (knowledge distillation)"),
    "g2p": ("keras_seq.cli.g2p", "main", "print the pronunciations of words with the pretrained G2P model"),
    "pretrained": ("keras_seq.cli.g2p", "pretrained_main", "pack a trained G2P model as the package's pretrained one"),
    "evaluate": ("keras_seq.cli.tasks", "evaluate_main", "score a model on a data file, and its decoding speed"),
    "average": ("keras_seq.cli.tasks", "average_main", "average the weights of a run's last epochs into one model"),
    "ensemble": ("keras_seq.cli.tasks", "ensemble_main", "combine trained models into one that decodes with all"),
    "export": ("keras_seq.cli.export", "main", "export a trained model into a TF Serving repository"),
    "serve": ("keras_seq.serving.server", "main", "serve a model repository over TF Serving's gRPC API"),
    "predict": ("keras_seq.cli.predict", "main",
                "decode lines with a model directory (--model) or a server (--server)"),
    "plot": ("keras_seq.plot", "main", "draw gates, training curves or attention as PNG files"),
}


# SavedModels, TF Serving's protocol and the exported graphs are TensorFlow's on any backend.
_NEED_TENSORFLOW = ("serve", "predict", "export", "demo")


def _usage():
    lines = ["usage: keras-seq COMMAND [ARGS...]", "", "commands:"]
    for name, (_, _, help_text) in COMMANDS.items():
        lines.append(f"  {name:<10}{help_text}")
    lines.append("")
    lines.append("Run `keras-seq COMMAND --help` for the arguments of a command.")
    return "\n".join(lines)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"keras-seq: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, function_name, _ = COMMANDS[name]
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow" or name in _NEED_TENSORFLOW:
        try:
            import_tensorflow_quietly()
        except ModuleNotFoundError as e:
            if e.name != "tensorflow":
                raise
            print(f"keras-seq {name}: needs TensorFlow, which is not installed here (pip install tensorflow); "
                  "without it, train and evaluate run on KERAS_BACKEND=jax", file=sys.stderr)
            return 2
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("keras_seq"):
            print(f"keras-seq: command {name!r} is not available in this build ({e})", file=sys.stderr)
            return 2
        raise
    return getattr(module, function_name)(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
