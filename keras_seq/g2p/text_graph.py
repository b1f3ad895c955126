"""`split_sentence` and `spoken_words` (`keras_seq.g2p.sentences`) as TensorFlow graph ops: the
words a served ``text`` signature pronounces, with no Python (and no `num2words`) at serving time.

`NumberWords.from_num2words()` runs `num2words` once, at export, and keeps its answers as plain
string tables (constants in the graph): the words of 0..999 as cardinals and as ordinals, the years
1100..2099, the scale words (thousand, million, ... up to `num2words`' largest) and their ordinals.
`spoken_text(texts, number_words)` then reads texts in the graph:

1. Splitting follows `split_sentence`'s regular expression with RE2 (`tf.strings.regex_replace`):
   Python's ``\\d``, ``\\s`` and "letter" (``[^\\W\\d_]``) are written out as RE2 character classes
   from the exporting Python's `unicodedata` (`character_classes`), so both read the same
   characters; every whitespace character becomes a space, a space is put around every token, and
   the text is split at spaces. RE2 has no lookahead: an ordinal suffix followed by a letter
   (``4thly``: the number ``4``, then the word ``thly``) is first cut off with a space.
2. Numbers are written out from the tables: a whole number's digits in groups of three (each group's
   words, its scale word, ``and`` before a last group under 100 as `num2words` says it), the last
   word of an ordinal in its ordinal form, a year from the year table, a decimal's digits after the
   point one by one, money and ``%`` as `spoken_words` reads them, and a number beyond `num2words`'
   range digit by digit. Digits of other scripts (``١٢``) are read as their values, as Python's
   ``int`` does.

`tests/g2p/test_g2p_text_signature.py` checks the words against `spoken_words` itself.
"""

from __future__ import annotations

import sys
import unicodedata
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from keras_seq.g2p.sentences import _CURRENCIES, _WORD_RE, PERCENT, _num2words

__all__ = ["NumberWords", "character_classes", "spoken_text"]

_ORDINAL_SUFFIX = "(?i:st|nd|rd|th)"


def _words(text):
    """The words `spoken_words` keeps of a `num2words` answer, space-joined."""
    return " ".join(_WORD_RE.findall(text))


@dataclass(frozen=True)
class NumberWords:
    """What `num2words` says, as tables (see the module docstring); built at export time.

    Attributes:
        cardinals, ordinals: The words of 0..999 (space-joined, hyphens and commas dropped).
        years: The words of the years 1100..2099.
        scales, scale_ordinals: The scale word of 1000**k and its ordinal form, k = 0.. ("" at 0).
        max_digits: The most digits of a whole number `num2words` writes out (more: digit by digit).
    """

    cardinals: tuple
    ordinals: tuple
    years: tuple
    scales: tuple
    scale_ordinals: tuple
    max_digits: int

    @classmethod
    def from_num2words(cls):
        """The tables, from `num2words` (English). Raises ImportError (saying how to install it)."""
        num2words = _num2words()
        scales, scale_ordinals, k = [""], [""], 1
        while True:
            try:
                scales.append(_words(num2words(1000**k, lang="en")).split()[-1])
            except OverflowError:
                break
            scale_ordinals.append(_words(num2words(1000**k, to="ordinal", lang="en")).split()[-1])
            k += 1
        return cls(cardinals=tuple(_words(num2words(n, lang="en")) for n in range(1000)),
                   ordinals=tuple(_words(num2words(n, to="ordinal", lang="en")) for n in range(1000)),
                   years=tuple(_words(num2words(y, to="year", lang="en")) for y in range(1100, 2100)),
                   scales=tuple(scales), scale_ordinals=tuple(scale_ordinals), max_digits=3 * len(scales))


def _ranges(test):
    """The code points for which `test(character)` holds, as (first, last) runs."""
    runs, start = [], None
    for cp in range(sys.maxunicode + 2):
        inside = cp <= sys.maxunicode and test(chr(cp))
        if inside and start is None:
            start = cp
        elif not inside and start is not None:
            runs.append((start, cp - 1))
            start = None
    return runs


def _re2_class(runs):
    return "[" + "".join(f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in runs) + "]"


def character_classes():
    """RE2 classes of Python's ``\\d`` (``Nd``), "letter" (``[^\\W\\d_]``: `str.isalnum` but not
    ``Nd``) and ``\\s`` (`str.isspace`), and the code points of the zeros of the ``Nd`` digit runs."""
    digit = _ranges(lambda c: unicodedata.category(c) == "Nd")
    zeros = [cp for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)) == "Nd"
             and unicodedata.decimal(chr(cp)) == 0]
    # Unicode keeps decimal digits in runs of ten, 0 to 9: the value of a digit is its distance to its zero.
    assert {cp for a, b in digit for cp in range(a, b + 1)} == {z + d for z in zeros for d in range(10)}
    letter = _ranges(lambda c: c.isalnum() and unicodedata.category(c) != "Nd")
    return {"digit": _re2_class(digit), "letter": _re2_class(letter), "space": _re2_class(_ranges(str.isspace)),
            "zeros": zeros}


class _Patterns:
    """`split_sentence`'s regular expression in RE2, built once per process."""

    def __init__(self):
        c = character_classes()
        D, L = c["digit"], c["letter"]
        amount = f"(?:{D}{{1,3}}(?:,{D}{{3}})+|{D}+)"
        self.space = c["space"]
        self.ordinal_then_letter = f"({D})({_ORDINAL_SUFFIX}{L})"
        self.money = f"[$£€]{amount}(?:\\.{D}+)?"
        self.ordinal = f"{D}+{_ORDINAL_SUFFIX}"
        self.number = f"{amount}(?:\\.{D}+)?%?"
        self.word = f"{L}+(?:['’]{L}+)*"
        self.token = "|".join([self.money, self.ordinal, self.number, self.word, "[^ ]"])
        self.starts_with_digit, self.starts_with_letter = f"{D}(?s:.*)", f"{L}(?s:.*)"
        self.zeros = np.asarray(c["zeros"], np.int32)


_PATTERNS = None


def _patterns():
    global _PATTERNS
    if _PATTERNS is None:
        _PATTERNS = _Patterns()
    return _PATTERNS


def split_texts(texts):
    """The tokens of each text (`split_sentence` in the graph): a `tf.RaggedTensor` [B, None]."""
    p = _patterns()
    texts = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace")
    texts = tf.strings.regex_replace(texts, p.space, " ")
    texts = tf.strings.regex_replace(texts, p.ordinal_then_letter, r"\1 \2")
    texts = tf.strings.regex_replace(texts, p.token, r" \0 ")
    tokens = tf.strings.split(texts, " ")
    return tf.ragged.boolean_mask(tokens, tf.not_equal(tokens, ""))


def _ascii_digits(tokens):
    """`tokens` with every decimal digit (any script) written as its ASCII digit."""
    zeros = tf.constant(_patterns().zeros)
    points = tf.strings.unicode_decode(tokens, "UTF-8")
    cp = points.flat_values
    run = tf.searchsorted(zeros, cp, side="right") - 1
    zero = tf.gather(zeros, tf.maximum(run, 0))
    digit = (run >= 0) & (cp - zero < 10)
    points = points.with_flat_values(tf.where(digit, 48 + cp - zero, cp))
    return tf.strings.unicode_encode(points, "UTF-8")


def _join_rows(values, row_lengths):
    return tf.strings.reduce_join(tf.RaggedTensor.from_row_lengths(values, row_lengths), axis=1, separator=" ")


def _digit_by_digit(digits, tables):
    """Each ASCII digit string's digits as cardinal words, space-joined."""
    chars = tf.strings.bytes_split(digits)
    values = tf.strings.to_number(chars.flat_values, tf.int32)
    return _join_rows(tf.gather(tables["cardinals"], values), chars.row_lengths())


def _whole_number(digits, ordinal, tables):
    """The words of whole numbers (ASCII digits, no leading zeros, at most `max_digits`; "" is
    zero), as cardinals or (where `ordinal`) ordinals: `num2words` composed from groups of three."""
    rows = tf.size(digits, out_type=tf.int64)
    pad = (3 - tf.strings.length(digits) % 3) % 3
    padded = tf.strings.substr(tf.fill(tf.shape(digits), "00"), tf.zeros_like(pad), pad) + digits
    chars = tf.strings.bytes_split(padded)
    groups = tf.strings.reduce_join(tf.reshape(chars.flat_values, [-1, 3]), axis=1)
    counts = chars.row_lengths() // 3
    value = tf.strings.to_number(groups, tf.int32)
    row = tf.repeat(tf.range(rows), counts)
    k = tf.cast(tf.repeat(counts, counts) - 1 - tf.ragged.range(counts).flat_values, tf.int32)  # 1000**k
    nonzero = value > 0
    last_k = tf.math.unsorted_segment_min(tf.where(nonzero, k, 1 << 30), row, rows)  # its last word is read
    last = nonzero & tf.equal(k, tf.gather(last_k, row))
    nonzero_groups = tf.math.unsorted_segment_sum(tf.cast(nonzero, tf.int32), row, rows)
    ordinal_row = tf.gather(ordinal, row)
    cardinal = tf.gather(tables["cardinals"], value)
    scale = tf.gather(tables["scales"], k)
    scaled = tf.where(k > 0, cardinal + " " + tf.where(ordinal_row & last, tf.gather(tables["scale_ordinals"], k),
                                                        scale), cardinal)
    piece = tf.where(ordinal_row & last & tf.equal(k, 0), tf.gather(tables["ordinals"], value), scaled)
    needs_and = tf.equal(k, 0) & (value < 100) & nonzero & (tf.gather(nonzero_groups, row) > 1)
    piece = tf.where(needs_and, "and " + piece, piece)
    piece = tf.where(nonzero, piece, "")
    zero = tf.where(ordinal, tables["ordinals"][0], tables["cardinals"][0])
    return tf.where(tf.equal(digits, ""), zero, _join_rows(piece, counts))


def _constants(number_words):
    n = number_words
    return {"cardinals": tf.constant(n.cardinals), "ordinals": tf.constant(n.ordinals),
            "years": tf.constant(n.years), "scales": tf.constant(n.scales),
            "scale_ordinals": tf.constant(n.scale_ordinals)}


def spoken_tokens(tokens, number_words):
    """What `spoken_words` reads each token (a flat string vector) as: its words, space-joined
    ("" for punctuation)."""
    p = _patterns()
    tables = _constants(number_words)
    money = tf.strings.regex_full_match(tokens, p.money)
    ordinal = tf.strings.regex_full_match(tokens, p.ordinal)
    number = tf.strings.regex_full_match(tokens, p.starts_with_digit) & ~ordinal
    word = tf.strings.regex_full_match(tokens, p.starts_with_letter)
    numeric = money | ordinal | number
    text = _ascii_digits(tf.where(numeric, tokens, ""))
    percent = tf.strings.regex_full_match(text, ".*%")
    body = tf.strings.regex_replace(tf.strings.regex_replace(text, "^[$£€]|%$", ""), "(?i)(st|nd|rd|th)$", "")
    whole_text = tf.strings.regex_replace(body, r"\..*", "")
    whole = tf.strings.regex_replace(tf.strings.regex_replace(whole_text, ",", ""), "^0+", "")
    point = tf.strings.regex_full_match(body, r".*\..*")
    fraction = tf.strings.regex_replace(body, r"^[^.]*\.?", "")
    overflow = tf.strings.length(whole) > number_words.max_digits
    whole = tf.where(overflow, "", whole)
    # Money: whole units, then the hundredths (the first two digits after the point), as spoken_words.
    hundredths = tf.strings.to_number(tf.strings.substr(fraction + "00", 0, 2), tf.int32)
    cents = tf.strings.regex_replace(tf.strings.as_string(hundredths), "^0+", "")
    both = _whole_number(tf.concat([whole, cents], 0), tf.concat([ordinal, tf.zeros_like(ordinal)], 0), tables)
    whole_words, cents_words = tf.split(both, 2)
    is_year = number & ~point & tf.equal(tf.strings.length(whole_text), 4) & ~tf.strings.regex_full_match(
        whole_text, ".*,.*")
    year = tf.strings.to_number(tf.where(is_year, whole_text, "0"), tf.int32)
    is_year &= (year >= 1100) & (year <= 2099)
    year_words = tf.gather(tables["years"], tf.clip_by_value(year - 1100, 0, 999))
    read_number = tf.where(is_year, year_words, whole_words)
    read_number = tf.where(point, read_number + " point " + _digit_by_digit(fraction, tables), read_number)
    read_number = tf.where(percent, read_number + " " + PERCENT, read_number)
    sign = tf.strings.substr(text, 0, 1, unit="UTF8_CHAR")
    currency = {s: tf.equal(sign, s) for s in _CURRENCIES}

    def unit(index, plural):
        names = [forms[index][1 if plural else 0] for forms in _CURRENCIES.values()]
        chosen = tf.fill(tf.shape(tokens), names[-1])
        for s, name in zip(list(_CURRENCIES)[:-1], names[:-1]):
            chosen = tf.where(currency[s], name, chosen)
        return chosen

    one = tf.equal(whole, "1")
    units = tf.where(one, unit(0, False), unit(0, True))
    cent_units = tf.where(hundredths == 1, unit(1, False), unit(1, True))
    say_whole = tf.not_equal(whole, "") | tf.equal(hundredths, 0)
    read_money = tf.where(say_whole, whole_words + " " + units, "")
    read_money = tf.where(hundredths > 0, read_money + " " + cents_words + " " + cent_units, read_money)
    spoken = tf.where(money, read_money, tf.where(numeric, read_number, ""))
    spoken = tf.where(overflow, _digit_by_digit(tf.strings.regex_replace(text, "[^0-9]", ""), tables), spoken)
    return tf.where(word, tokens, spoken)


def spoken_text(texts, number_words):
    """The words of each text, as `G2P.pronounce_text` reads them.

    Returns:
        ``(words, tokens, text_rows)``: flat string vectors, one entry per `SpokenWord` of all the
        texts in order: the word ("" for punctuation) and the token it reads; and the int64 row of
        `texts` each belongs to.
    """
    split = split_texts(texts)
    tokens = split.flat_values
    spoken = tf.strings.split(spoken_tokens(tokens, number_words), " ")
    spoken = tf.ragged.boolean_mask(spoken, tf.not_equal(spoken, ""))
    counts = spoken.row_lengths()
    entries = tf.maximum(counts, 1)  # punctuation: one entry with no word
    token = tf.repeat(tf.range(tf.size(tokens, out_type=tf.int64)), entries)
    position = tf.ragged.range(entries).flat_values
    values = tf.concat([spoken.flat_values, [""]], 0)
    index = tf.where(tf.gather(counts, token) > 0, tf.gather(spoken.row_starts(), token) + position,
                     tf.size(values, out_type=tf.int64) - 1)
    words = tf.gather(values, index)
    return words, tf.gather(tokens, token), tf.gather(split.value_rowids(), token)
