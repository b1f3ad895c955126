"""The ``text`` signature's words (`keras_seq.g2p.text_graph`) against `split_sentence` and
`spoken_words` (num2words itself, in Python). The exported signature is checked against
`G2P.pronounce_text` in tests/g2p/test_g2p_dictionary_export.py (slow: it reuses that export)."""

import random
import sys

import pytest
import tensorflow as tf

from keras_seq.g2p.data import parse_cmudict_lines
from keras_seq.g2p.model import G2P
from keras_seq.g2p.sentences import split_sentence, spoken_words

pytest.importorskip("num2words")

ARPABET = "HELLO  HH AH0 L OW1\nWORLD  W ER1 L D\nTOMATO  T AH0 M EY1 T OW2\nZYX  Z IH1 K S\n"
USER = [("in", ["IH N"]), ("nineteen", ["N AY N T IY N"])]
# Every kind of token: words, numbers, ordinals, years, decimals, money, %, punctuation; nothing.
TEXTS = ["In 1984, I read 3 books.", "", "  ", "?! #", "$3.50 and £0.05 for the 2nd time: 50% of 1,000,000!",
         "Don't DOLLARS nineteen-eighty 1.05 3.0 0th 21st 101st 1100 2009 2099 2100 007",
         "supercalifragilistic 123456789012345 quattuorvigintillion", "٣ books\u00a0and 4thly", "€1 $0 $1,000.999",
         "x" * 30]


def _reference(text):
    """(token, word) of each SpokenWord of `text`, by the Python rules."""
    out = []
    for token in split_sentence(text):
        words = spoken_words(token)
        out += [(token.text, w) for w in words] if words else [(token.text, "")]
    return out


def _number():
    digits = random.randint(1, 15)
    n = random.randint(10 ** (digits - 1), 10**digits - 1)
    return random.choice([str(n), f"{n:,}", f"{n}{random.choice(['st', 'nd', 'rd', 'th', 'TH'])}",
                          f"{n}.{random.randint(0, 999):0{random.randint(1, 3)}d}", f"{n % 1000}%",
                          f"{random.choice('$£€')}{n % 10**7:,}{random.choice(['', '.5', '.05', '.999', '.00'])}",
                          str(random.randint(1000, 2200)), f"{'0' * random.randint(1, 3)}{n % 10000}"])


def test_graph_reads_texts_as_spoken_words_does():
    from keras_seq.g2p.text_graph import NumberWords, spoken_text

    random.seed(0)
    texts = TEXTS + ["9" * 400, "1" + "0" * 305, "1" + "0" * 306 + "th", "$" + "9" * 320 + ".50",
                     "1st2nd 3rd's 1,0000 1,000th $1stx 1.5th ١٢٣ O’Neil _x_ a__b well-known",
                     "naïve café résumé\u2003x\u3000y tab\tnew\nline 1,000,000th 1,001 101,000 1000001 100000001"]
    for _ in range(300):
        parts = [random.choice(["the", "cat", ",", "—", "don't", _number(), _number(), ".", "x2", "2x"])
                 for _ in range(random.randint(0, 10))]
        texts.append(random.choice(["", " "]).join(parts))
    # Any character: other scripts' letters and digits, numerals that are letters to Python (², Ⅻ),
    # case folding (ſt is an ordinal suffix), combining marks, NUL, Unicode spaces, lone currency signs.
    characters = list("abc XYZ019,.%$£€'’-_\t\n\x00\u0301\u00a0\u2028\u3000ſKİßΣσς١٢৩²½Ⅻ五😀\u200b\ufeffstndrdth")
    texts += ["".join(random.choices(characters, k=random.randint(0, 30))) for _ in range(300)]
    words, tokens, rows = spoken_text(tf.constant(texts), NumberWords.from_num2words())
    got = [[] for _ in texts]
    for word, token, row in zip(words.numpy(), tokens.numpy(), rows.numpy()):
        got[row].append((token.decode(), word.decode()))
    for text, spoken in zip(texts, got):
        assert spoken == _reference(text), text


def test_without_num2words_the_export_has_no_text_signature(monkeypatch):
    g2p = G2P.create(parse_cmudict_lines(ARPABET.splitlines(), remove_stress=True), units=4, embedding_dim=2)
    g2p.add_lexicon(USER)
    monkeypatch.setitem(sys.modules, "num2words", None)
    with pytest.warns(UserWarning, match=r"no `text` signature.*pip install keras-seq\[numbers\]"):
        module = g2p.serving_module(dictionary=True)
    assert "text" not in module.signatures() and "text" not in module.warmup_inputs()
    assert "serving_default" in module.signatures()


def test_the_client_sends_texts_under_the_exports_name():
    from keras_seq.g2p.serving import TEXT_INPUT
    from keras_seq.serving.client import TEXT_SIGNATURE, TEXT_SIGNATURE_INPUT

    assert (TEXT_SIGNATURE, TEXT_SIGNATURE_INPUT) == ("text", TEXT_INPUT)
