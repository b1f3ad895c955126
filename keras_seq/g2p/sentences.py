"""From a sentence to the words a G2P pronounces: splitting, and numbers written out (`G2P.pronounce_text`).

`split_sentence(text)` cuts English text into tokens, in order: words (letters, with inner
apostrophes: ``don't``; hyphenated words are their parts), numbers (``3``, ``1,000``, ``3.14``,
``50%``), ordinals (``2nd``, ``21st``), amounts of money (``$3.50``, ``£2``, ``€10``) and
punctuation (every other character that is not a space, one token each).

`spoken_words(token)` writes a number token out in words with the `num2words` package (the optional
extra ``keras-seq[numbers]``; LGPL, so the ``[g2p]`` extra does not install it). The rules:

- a four-digit number from 1100 to 2099 without a comma is a year (``1984`` -> "nineteen
  eighty-four"); any other whole number is a cardinal (``3`` -> "three", ``1,000`` -> "one
  thousand"); a decimal is its whole part, "point" and its digits as written, one by one (``3.14``
  -> "three point one four", ``2.50`` -> "two point five zero"); ``%`` adds "percent";
- an ordinal is read as one (``2nd`` -> "second");
- money is the whole units and then the cents, each a cardinal with its unit (``$3.50`` -> "three
  dollars fifty cents", ``$1`` -> "one dollar", ``£0.05`` -> "five pence").

The words are then split at spaces, hyphens and commas (``eighty-four`` -> "eighty", "four"). A
number beyond `num2words`' range is read digit by digit.

`keras_seq.g2p.text_graph` follows the same rules with graph ops, for the export's ``text``
signature: a change here needs the same change there (tests/g2p/test_g2p_text_signature.py
compares the two).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import NamedTuple

__all__ = ["split_sentence", "spoken_words", "Token"]

_TOKEN_RE = re.compile(
    r"""(?P<money>[$£€](?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)
      | (?P<ordinal>\d+(?:st|nd|rd|th)(?![^\W\d_]))
      | (?P<number>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?%?)
      | (?P<word>[^\W\d_]+(?:['’][^\W\d_]+)*)
      | (?P<punctuation>[^\w\s]|_)""",
    re.VERBOSE | re.IGNORECASE,
)
PERCENT = "percent"
_WORD_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
# (singular, plural) of the whole units and of the hundredths of each currency sign.
_CURRENCIES = {"$": (("dollar", "dollars"), ("cent", "cents")),
               "£": (("pound", "pounds"), ("penny", "pence")),
               "€": (("euro", "euros"), ("cent", "cents"))}


class Token(NamedTuple):
    """A token of `split_sentence`: its text and kind ("word", "number", "ordinal", "money" or
    "punctuation")."""

    text: str
    kind: str


def split_sentence(text):
    """The `Token`s of `text`, in order (see the module docstring); spaces are dropped.

    Raises:
        TypeError: If `text` is not a string.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    return [Token(m.group(), m.lastgroup) for m in _TOKEN_RE.finditer(text)]


def _num2words():
    try:
        from num2words import num2words
    except ImportError:
        raise ImportError("writing numbers out in words needs the `num2words` package: "
                          "pip install keras-seq[numbers] (or pip install num2words)") from None
    return num2words


def spoken_words(token):
    """The words a `Token` is read as: a word itself, a number, ordinal or amount written out in
    words (see the module docstring), none for punctuation.

    Raises:
        ImportError: For a number when `num2words` is not installed (says how to install it).
    """
    text, kind = token
    if kind == "word":
        return [text]
    if kind == "punctuation":
        return []
    try:
        spoken = _written_out(text, kind, _num2words())
    except (OverflowError, ValueError):  # beyond num2words' range: digit by digit
        spoken = " ".join(_written_out(d, "number", _num2words()) if d.isdigit() else "" for d in text)
    return _WORD_RE.findall(spoken)


def _written_out(text, kind, num2words):
    """A number, ordinal or amount token written out, as one string."""
    if kind == "ordinal":
        spoken = num2words(int(text[:-2]), to="ordinal", lang="en")
    elif kind == "money":
        (unit, units), (cent, cents) = _CURRENCIES[text[0]]
        amount = Decimal(text[1:].replace(",", ""))
        whole, hundredths = int(amount), int((amount - int(amount)) * 100)
        parts = []
        if whole or not hundredths:
            parts.append(f"{num2words(whole, lang='en')} {unit if whole == 1 else units}")
        if hundredths:
            parts.append(f"{num2words(hundredths, lang='en')} {cent if hundredths == 1 else cents}")
        spoken = " ".join(parts)
    else:
        percent = text.endswith("%")
        digits = text.rstrip("%")
        if "." in digits:  # as written (num2words would read it through a float: 2.50 -> "two point five")
            whole, fraction = digits.replace(",", "").split(".")
            spoken = " ".join([num2words(int(whole), lang="en"), "point",
                               *(num2words(int(d), lang="en") for d in fraction)])
        elif "," not in digits and len(digits) == 4 and 1100 <= int(digits) <= 2099:
            spoken = num2words(int(digits), to="year", lang="en")
        else:
            spoken = num2words(int(digits.replace(",", "")), lang="en")
        spoken += f" {PERCENT}" if percent else ""
    return spoken
