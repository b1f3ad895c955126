"""Quick synthetic tasks for smoke tests, examples and `keras-seq train reverse`.

Each returns ``[(source, [target tokens])]`` with one reference per source (upper-case letters as
target tokens), the lexicon format `keras_seq.g2p` reads too.
"""

from __future__ import annotations

import numpy as np

__all__ = ["reverse_task", "sort_task"]

Lexicon = list[tuple[str, list[tuple[str, ...]]]]


def _random_words(n: int, min_len: int, max_len: int, seed: int, alphabet: str) -> list[str]:
    """``n`` distinct random strings over ``alphabet`` with lengths in [min_len, max_len]."""
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    if len(set(alphabet)) != len(alphabet) or not alphabet:
        raise ValueError("alphabet must be a non-empty string of distinct characters")
    capacity = sum(len(alphabet) ** k for k in range(min_len, max_len + 1))
    if n > capacity:
        raise ValueError(f"only {capacity} distinct strings exist, {n} requested")
    rng = np.random.default_rng(seed)
    letters = np.array(list(alphabet))
    words: dict[str, None] = {}
    while len(words) < n:
        length = int(rng.integers(min_len, max_len + 1))
        words.setdefault("".join(rng.choice(letters, size=length)), None)
    return list(words)


def reverse_task(
    n: int,
    min_len: int = 3,
    max_len: int = 8,
    seed: int = 0,
    alphabet: str = "abcdefghijklmnopqrstuvwxyz",
) -> Lexicon:
    """A quick synthetic task: spell a random letter string backwards.

    Returns the same lexicon format as :func:`read_cmudict` (one reference per word, target
    tokens in upper case like phonemes), so the same vocabulary and model code trains on it.

    Args:
        n: Number of distinct words.
        min_len: Shortest word.
        max_len: Longest word.
        seed: Seed of the NumPy generator (same seed, same task).
        alphabet: The letters (lower case, distinct).

    Returns:
        ``[(word, [(LAST, ..., FIRST)]), ...]``, e.g. ``("abc", [("C", "B", "A")])``.
    """
    words = _random_words(n, min_len, max_len, seed, alphabet)
    return [(w, [tuple(c.upper() for c in reversed(w))]) for w in words]


def sort_task(
    n: int,
    min_len: int = 3,
    max_len: int = 8,
    seed: int = 0,
    alphabet: str = "abcdefghijklmnopqrstuvwxyz",
) -> Lexicon:
    """A quick synthetic task: output the letters of a random string in sorted order.

    Same format as :func:`reverse_task`.

    Args:
        n: Number of distinct words.
        min_len: Shortest word.
        max_len: Longest word.
        seed: Seed of the NumPy generator.
        alphabet: The letters (lower case, distinct).

    Returns:
        ``[(word, [sorted letters, upper case]), ...]``, e.g. ``("cab", [("A", "B", "C")])``.
    """
    words = _random_words(n, min_len, max_len, seed, alphabet)
    return [(w, [tuple(c.upper() for c in sorted(w))]) for w in words]
