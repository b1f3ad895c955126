"""Fig. 10.7-10.8: the RNN as a generative model of sequences, here of the spelling of English
words, trained on the CMUdict word list by next-step prediction with teacher forcing.

Each word y(1..τ) is framed as <s> y(1) ... y(τ) </s>; the model learns P(y(t) | y(1..t-1)) and,
through the end symbol </s> (§10.2.3), where words end. Sampling draws one letter at a time and
feeds it back until </s>: new, plausible English-looking words. With `--g2p DIR` (a trained G2P
model directory) the invented words are also pronounced.

About two minutes on two CPU cores (`--tiny`: seconds, and gibberish).

Run: python examples/fig_10_08_language_model_sampling.py [--tiny] [--cell lstm|gru|elman] [--prefix qu]
     [--g2p DIR]
"""

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_seq.g2p.data import OUTPUT_RESERVED, Vocabulary, read_cmudict  # noqa: E402
from keras_seq.models.language_model import RNNLanguageModel, teacher_forcing_arrays  # noqa: E402

TRAIN = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "g2p" / "cmudict-0.7b.train-dev-20-21"
FALLBACK_WORDS = ("the of and to in is you that it he was for on are as with his they at be this have "
                  "from or one had by word but not what all were we when your can said there use an "
                  "each which she do how their if will up other about out many then them these so "
                  "some her would make like him into time has look two more write go see number no "
                  "way could people my than first water been call who oil its now find long down day "
                  "did get come made may part").split()


def load_words(path, limit, seed=0):
    """Alphabetic words of the word list (shuffled, at most `limit`)."""
    if path.exists():
        words = sorted({w for w, _ in read_cmudict(path) if w.isalpha() and len(w) <= 16})
    else:
        print(f"({path} not found: using {len(FALLBACK_WORDS)} common words instead)")
        words = sorted(set(FALLBACK_WORDS))
    np.random.default_rng(seed).shuffle(words)
    return words[:limit]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="minimal budget (or KERAS_SEQ_EXAMPLE_TINY=1)")
    parser.add_argument("--cell", default="lstm", choices=["elman", "lstm", "gru"])
    parser.add_argument("--words", type=Path, default=TRAIN, help="CMUdict-format file of training words")
    parser.add_argument("--prefix", default="qu", help="also continue words that start like this")
    parser.add_argument("--g2p", type=Path, default=None, help="a trained G2P model directory")
    args = parser.parse_args(argv)
    tiny = args.tiny or os.environ.get("KERAS_SEQ_EXAMPLE_TINY") == "1"
    keras.utils.set_random_seed(0)

    words = load_words(args.words.resolve(), 300 if tiny else 30000)
    letters = Vocabulary(list(OUTPUT_RESERVED) + sorted({c for w in words for c in w}))
    data = teacher_forcing_arrays([letters.encode(w) for w in words], letters.start_id, letters.end_id)
    model = RNNLanguageModel(len(letters), letters.start_id, letters.end_id, units=32 if tiny else 256,
                             embedding_dim=16 if tiny else 32, cell=args.cell, max_length=18)
    model.compile(keras.optimizers.Adam(0.01 if tiny else 0.005),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
                  run_eagerly=tiny)
    model.fit(data["inputs"], data["labels"], epochs=1 if tiny else 6, batch_size=128, verbose=0 if tiny else 2)
    print(f"Fig. 10.8 {args.cell} language model of {len(words)} English words: "
          f"perplexity {model.perplexity(data['labels'][:2000]):.2f} per letter "
          f"(uniform: {len(letters) - 2})")

    known = set(words)
    invented = []
    for title, out in [
        ("greedy (most probable letter at every step)", model.generate(1, method="greedy")),
        ("sampled at temperature 0.7, top-10", model.generate(10, temperature=0.7, top_k=10, seed=1)),
        ("sampled at temperature 1.0", model.generate(10, temperature=1.0, seed=2)),
    ]:
        print(f"{title}:")
        tokens, scores = np.asarray(out["tokens"]), np.asarray(out["scores"])
        for row, score in zip(tokens, scores):
            word = "".join(letters.decode(row))
            ended = letters.end_id in row
            note = "in the training list" if word in known else "new"
            print(f"  {word:<18} log P = {score:7.2f}  {note}{'' if ended else ', no </s> (cut at the limit)'}")
            if word not in known and ended and word.isalpha():
                invented.append(word)
    if args.prefix:
        out = model.generate(5, temperature=0.7, top_k=10, seed=3, prefix=letters.encode(args.prefix.lower()))
        continued = [args.prefix.lower() + "".join(letters.decode(row)) for row in np.asarray(out["tokens"])]
        print(f"continuing {args.prefix!r}: {', '.join(continued)}")
    if args.g2p is not None and invented:
        from keras_seq.g2p.model import G2P

        g2p = G2P.load(args.g2p)
        print("pronounced by the G2P model:")
        for word, pronunciation in zip(invented, g2p.predict(invented)):
            print(f"  {word:<18} {pronunciation}")
    return invented


if __name__ == "__main__":
    main()
