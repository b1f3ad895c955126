"""Splitting text into tokens in Python: the rule the in-graph `Tokenizer` follows (no TensorFlow).

- ``"chars"``: Unicode characters (code points); joined back with no separator.
- ``"words"``: tokens separated by runs of ASCII whitespace (space, tab, line breaks, form
  feed, vertical tab), as `tf.strings.split` splits; joined back with one space.
"""

from __future__ import annotations

import re
from typing import Sequence

__all__ = ["SPLITS", "check_split", "split_text", "join_tokens"]

SPLITS = ("chars", "words")
_ASCII_WHITESPACE = re.compile(r"[ \t\n\v\f\r]+")


def check_split(split):
    """`split` if it is one of `SPLITS`; raises ValueError otherwise."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    return split


def split_text(text: str, split: str = "chars", lowercase: bool = False) -> list[str]:
    """The tokens of `text`: its characters (``split="chars"``) or its whitespace-separated
    tokens (``split="words"``), lower-cased first with ``lowercase=True``."""
    check_split(split)
    if lowercase:
        text = text.lower()
    if split == "chars":
        return list(text)
    return [token for token in _ASCII_WHITESPACE.split(text) if token]


def join_tokens(tokens: Sequence[str], split: str = "chars") -> str:
    """The inverse of `split_text` on output tokens: no separator for chars, a space for words."""
    return ("" if check_split(split) == "chars" else " ").join(tokens)
