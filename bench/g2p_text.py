"""Reading sentences for G2P: the export's graph ops (`keras_seq.g2p.text_graph`, the ``text``
signature before pronunciation) against Python (`split_sentence` + `spoken_words` with num2words,
what `G2P.pronounce_text` runs), on the same sentences, interleaved rounds.

    python bench/g2p_text.py [--batch 256] [--rounds 5]

Prints texts/s and words/s of each, and checks that both read the same words.
"""

import argparse
import os
import random
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from keras_seq.g2p.sentences import split_sentence, spoken_words  # noqa: E402
from keras_seq.g2p.text_graph import NumberWords, spoken_text  # noqa: E402

WORDS = "the a cat sat on mat in I read books don't well-known price of for and , . ! ?".split()


def sentences(count, seed=0):
    """Sentences of 8-16 tokens, about one in five a number (cardinal, year, ordinal, money, %, decimal)."""
    rng = random.Random(seed)
    numbers = [lambda: str(rng.randint(0, 10**rng.randint(1, 9))), lambda: str(rng.randint(1100, 2099)),
               lambda: f"{rng.randint(1, 99)}th", lambda: f"${rng.randint(0, 9999):,}.{rng.randint(0, 99):02d}",
               lambda: f"{rng.randint(0, 100)}%", lambda: f"{rng.randint(0, 99)}.{rng.randint(0, 99)}"]
    return [" ".join(rng.choice(numbers)() if rng.random() < 0.2 else rng.choice(WORDS)
                     for _ in range(rng.randint(8, 16))) for _ in range(count)]


def python_words(texts):
    out = []
    for text in texts:
        for token in split_sentence(text):
            out += spoken_words(token) or [""]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    texts = sentences(args.batch)
    tables = NumberWords.from_num2words()
    graph = tf.function(lambda t: spoken_text(t, tables)[0],
                        input_signature=[tf.TensorSpec([None], tf.string)])
    batch = tf.constant(texts)
    words = [w.decode() for w in graph(batch).numpy()]  # traced once, outside the timing
    assert words == python_words(texts), "the graph and Python read different words"
    times = {"graph": [], "python": []}
    for _ in range(args.rounds):
        start = time.perf_counter()
        graph(batch)
        times["graph"].append(time.perf_counter() - start)
        start = time.perf_counter()
        python_words(texts)
        times["python"].append(time.perf_counter() - start)
    print(f"{len(texts)} texts, {len(words)} words per batch; median of {args.rounds} interleaved rounds")
    for name, seconds in times.items():
        median = sorted(seconds)[len(seconds) // 2]
        print(f"{name:7s} {len(texts) / median:10.0f} texts/s {len(words) / median:10.0f} words/s "
              f"({median * 1000:.1f} ms per batch)")


if __name__ == "__main__":
    main()
