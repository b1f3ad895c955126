"""G2P.predict in Python against the exported signature called in-process, on the same words
(issue 20: "`G2P.predict(words)`, the way most users call it, reaches the words/s of the exported
signature").

    python bench/g2p_predict.py [--model pretrained|RUN_DIR] [--words 2048] [--rounds 5]

Words: the first `--words` dev words that are not training words (../shared/data/g2p), in the
file's order. Both sides run the model alone at batch 256 with the model's beam width: Python
`G2P.predict(words, use_dictionary=False)` (it sorts the words by length and batches internally),
and the ``serving_default`` signature of a `keras-seq export` of the same model (no ``--dictionary``)
loaded with `tf.saved_model.load`, called on batches of 256 words in the file's order, as a client
sending batches would. Interleaved rounds; prints each side's median words/s and their ratio.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_seq.g2p import G2P, load_pretrained, read_cmudict  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "g2p")


def dev_words_not_in_train(count):
    train = {word for word, _ in read_cmudict(os.path.join(DATA, "cmudict-0.7b.train-dev-20-21"))}
    words = [word for word, _ in read_cmudict(os.path.join(DATA, "cmudict-0.7b.train-dev-1-21")) if word not in train]
    return words[:count]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="pretrained", help="'pretrained' or a G2P run directory")
    parser.add_argument("--words", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    words = dev_words_not_in_train(args.words)
    g2p = load_pretrained() if args.model == "pretrained" else G2P.load(args.model)
    with tempfile.TemporaryDirectory() as base:
        subprocess.run([sys.executable, "-m", "keras_seq.cli", "export", "--model", args.model, "--base-path", base],
                       check=True, stdout=subprocess.DEVNULL)
        signature = tf.saved_model.load(os.path.join(base, "1")).signatures["serving_default"]
        batches = [tf.constant(np.array([w.encode() for w in words[i: i + args.batch]], dtype=object))
                   for i in range(0, len(words), args.batch)]
        sides = {
            "exported signature": lambda: [signature(words=batch) for batch in batches],
            "G2P.predict": lambda: g2p.predict(words, batch_size=args.batch, use_dictionary=False),
        }
        served = [p.decode() for batch in batches for p in signature(words=batch)["pronunciation"].numpy()]
        python = sides["G2P.predict"]()
        same = sum(a == b for a, b in zip(served, python))
        print(f"{len(words)} dev words not in train; the same pronunciation on both sides: {same}/{len(words)}")
        speeds = {name: [] for name in sides}
        for _ in range(args.rounds):
            for name, call in sides.items():
                started = time.perf_counter()
                call()
                speeds[name].append(len(words) / (time.perf_counter() - started))
    median = {name: statistics.median(values) for name, values in speeds.items()}
    for name, value in median.items():
        print(f"{name:>20}: {value:8.1f} words/s  (rounds: {', '.join(f'{v:.0f}' for v in speeds[name])})")
    print(f"G2P.predict / exported signature: {median['G2P.predict'] / median['exported signature']:.3f}x")


if __name__ == "__main__":
    main()
