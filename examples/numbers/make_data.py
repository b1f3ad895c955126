"""English number and date verbalization pairs for a speech front-end, from the `num2words` package.

    python examples/numbers/make_data.py OUT_DIR [--seed 0] [--train 6000 --dev 500 --test 1000]

writes OUT_DIR/train.tsv, dev.tsv and test.tsv (``written<TAB>spoken``), with no source in two
parts. The test part is held back: train on train.tsv, select on dev.tsv, report test.tsv.

Kinds of source (chosen at random, the same for a given seed):

    4721        four thousand seven hundred and twenty-one      (cardinals up to 999,999)
    in 1984     in nineteen eighty-four                          (years 1100-2099 after "in")
    21st        twenty-first                                     (ordinals up to 999)
    $3.50       three dollars fifty cents                        (amounts up to $9,999.99)
    3.14        three point one four                             (decimals)
    45%         forty-five percent                               (percentages)

Targets are num2words' English with its commas removed (a TTS front-end speaks no commas).
Needs the `[numbers]` extra (``pip install keras-seq[numbers]``).
"""

import argparse
import random
from pathlib import Path

from num2words import num2words


def _words(text):
    return " ".join(text.replace(",", "").split())


def _cardinal(rng):
    n = rng.choice([rng.randint(0, 99), rng.randint(100, 9999), rng.randint(10000, 999999)])
    return str(n), _words(num2words(n))


def _year(rng):
    n = rng.randint(1100, 2099)
    return f"in {n}", "in " + _words(num2words(n, to="year"))


def _ordinal(rng):
    n = rng.choice([rng.randint(1, 31), rng.randint(32, 999)])
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}", _words(num2words(n, to="ordinal"))


def _money(rng):
    dollars = rng.choice([rng.randint(0, 99), rng.randint(100, 9999)])
    cents = rng.choice([0, rng.randint(1, 99)])
    if dollars == 0 and cents == 0:
        cents = 5
    text = f"${dollars:,}" if cents == 0 and rng.random() < 0.5 else f"${dollars:,}.{cents:02d}"
    spoken = _words(num2words(dollars + cents / 100, to="currency", currency="USD"))
    spoken = spoken.removeprefix("zero dollars ").removesuffix(" zero cents")  # "$73.00", "$0.50"
    return text, spoken


def _decimal(rng):
    whole, digits = rng.randint(0, 999), rng.randint(1, 3)
    fraction = "".join(str(rng.randint(0, 9)) for _ in range(digits - 1)) + str(rng.randint(1, 9))
    text = f"{whole}.{fraction}"
    return text, _words(num2words(whole)) + " point " + " ".join(num2words(int(d)) for d in fraction)


def _percent(rng):
    n = rng.randint(0, 100)
    return f"{n}%", _words(num2words(n)) + " percent"


KINDS = (_cardinal, _year, _ordinal, _money, _decimal, _percent)


def make_pairs(n, rng, taken):
    """`n` pairs whose sources are not in `taken` (which grows)."""
    pairs = []
    while len(pairs) < n:
        source, target = rng.choice(KINDS)(rng)
        if source not in taken:
            taken.add(source)
            pairs.append((source, target))
    return pairs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=6000)
    parser.add_argument("--dev", type=int, default=500)
    parser.add_argument("--test", type=int, default=1000)
    args = parser.parse_args(argv)
    rng, taken = random.Random(args.seed), set()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("test", "dev", "train"):  # test first: its sources never depend on the train size
        pairs = make_pairs(getattr(args, name), rng, taken)
        with open(out / f"{name}.tsv", "w", encoding="utf-8", newline="\n") as f:
            f.writelines(f"{s}\t{t}\n" for s, t in pairs)
        print(f"{out / (name + '.tsv')}: {len(pairs)} pairs")


if __name__ == "__main__":
    main()
