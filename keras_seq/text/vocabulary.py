"""Vocabularies: a token <-> id mapping with reserved tokens, stored as a text file.

Reserved ids: every vocabulary starts with ``<pad>`` (id 0) and ``<unk>`` (id 1, the
out-of-vocabulary id); an output vocabulary continues with ``<s>`` (id 2, start) and ``</s>``
(id 3, end). The other tokens follow in sorted order (`build_vocabulary`).
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "PAD", "OOV", "START", "END", "PAD_ID", "OOV_ID", "START_ID", "END_ID", "INPUT_RESERVED",
    "OUTPUT_RESERVED", "Vocabulary", "build_vocabulary",
]

PAD = "<pad>"
OOV = "<unk>"
START = "<s>"
END = "</s>"
PAD_ID, OOV_ID, START_ID, END_ID = 0, 1, 2, 3
INPUT_RESERVED = (PAD, OOV)
OUTPUT_RESERVED = (PAD, OOV, START, END)


class Vocabulary:
    """A token <-> id mapping with reserved tokens, stored as a text file (one token a line).

    The id of a token is its line number (0-based). The first tokens are reserved:
    ``<pad>`` = 0 and ``<unk>`` = 1 (out-of-vocabulary) always; an output vocabulary also has
    ``<s>`` = 2 (start) and ``</s>`` = 3 (end).

    Args:
        tokens: All tokens in id order, starting with the reserved ones
            (:data:`INPUT_RESERVED` or :data:`OUTPUT_RESERVED`).

    Raises:
        ValueError: If the reserved tokens are missing or misplaced, a token is duplicated,
            empty, or contains a line break.
    """

    def __init__(self, tokens: Sequence[str]):
        tokens = list(tokens)
        if tuple(tokens[:2]) != INPUT_RESERVED:
            raise ValueError(f"a vocabulary must start with {INPUT_RESERVED}, got {tokens[:4]}")
        has_start_end = START in tokens or END in tokens
        if has_start_end and tuple(tokens[:4]) != OUTPUT_RESERVED:
            raise ValueError(f"an output vocabulary must start with {OUTPUT_RESERVED}")
        for token in tokens:
            if not token or "\n" in token or "\r" in token:
                raise ValueError(f"invalid vocabulary token {token!r}")
        if len(set(tokens)) != len(tokens):
            dup = [t for t, c in Counter(tokens).items() if c > 1]
            raise ValueError(f"duplicate vocabulary tokens: {dup}")
        self._tokens = tokens
        self._ids = {token: i for i, token in enumerate(tokens)}

    # -- properties ------------------------------------------------------------------------

    @property
    def tokens(self) -> list[str]:
        """All tokens in id order (a copy)."""
        return list(self._tokens)

    @property
    def pad_id(self) -> int:
        """Id of ``<pad>`` (0)."""
        return PAD_ID

    @property
    def oov_id(self) -> int:
        """Id of ``<unk>``, the out-of-vocabulary id (1)."""
        return OOV_ID

    @property
    def has_start_end(self) -> bool:
        """Whether this is an output vocabulary with ``<s>`` and ``</s>``."""
        return START in self._ids

    @property
    def start_id(self) -> int | None:
        """Id of ``<s>`` (2) in an output vocabulary, else None."""
        return self._ids.get(START)

    @property
    def end_id(self) -> int | None:
        """Id of ``</s>`` (3) in an output vocabulary, else None."""
        return self._ids.get(END)

    @property
    def num_reserved(self) -> int:
        """Number of reserved tokens at the start (2 or 4)."""
        return len(OUTPUT_RESERVED) if self.has_start_end else len(INPUT_RESERVED)

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._tokens == other._tokens

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens: {self._tokens[:8]}{'...' if len(self) > 8 else ''})"

    # -- mapping ---------------------------------------------------------------------------

    def token_to_id(self, token: str) -> int:
        """Id of a token, :attr:`oov_id` if unknown.

        Args:
            token: A token.

        Returns:
            Its id.
        """
        return self._ids.get(token, OOV_ID)

    def id_to_token(self, index: int) -> str:
        """Token of an id (``<unk>`` for an id out of range).

        Args:
            index: An id.

        Returns:
            Its token.
        """
        index = int(index)
        return self._tokens[index] if 0 <= index < len(self._tokens) else OOV

    def encode(
        self, tokens: Iterable[str], *, add_start: bool = False, add_end: bool = False
    ) -> list[int]:
        """Map tokens to ids (unknown tokens to :attr:`oov_id`).

        Args:
            tokens: A sequence of tokens (characters, words, phonemes...).
            add_start: Prepend the ``<s>`` id (output vocabularies only).
            add_end: Append the ``</s>`` id (output vocabularies only).

        Returns:
            The list of ids.
        """
        if (add_start or add_end) and not self.has_start_end:
            raise ValueError("this vocabulary has no <s> / </s> tokens")
        ids = [self._ids.get(t, OOV_ID) for t in tokens]
        if add_start:
            ids.insert(0, START_ID)
        if add_end:
            ids.append(END_ID)
        return ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Map ids back to tokens, the inverse of :meth:`encode` on a model's output.

        Stops at the first ``</s>``; drops ``<pad>`` and ``<s>``; ids out of range become
        ``<unk>``.

        Args:
            ids: A sequence of ids (a list or a 1-D array).

        Returns:
            The list of tokens.
        """
        out = []
        end = self.end_id
        for index in np.asarray(ids).reshape(-1).tolist():
            if end is not None and index == end:
                break
            if index == PAD_ID or (self.has_start_end and index == START_ID):
                continue
            out.append(self.id_to_token(index))
        return out

    # -- files -----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as UTF-8 text, one token per line, in id order.

        Args:
            path: The file to write.
        """
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for token in self._tokens:
                f.write(token + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        """Read a vocabulary written by :meth:`save`.

        Args:
            path: The file to read.

        Returns:
            The vocabulary.
        """
        with open(path, "r", encoding="utf-8", newline="\n") as f:
            tokens = [line[:-1] if line.endswith("\n") else line for line in f]
        if tokens and tokens[-1] == "":
            tokens.pop()
        return cls(tokens)


def build_vocabulary(
    sequences: Iterable[Sequence[str]], *, output: bool = False, min_count: int = 1
) -> Vocabulary:
    """A vocabulary of the tokens of `sequences`: the reserved tokens, then the others sorted.

    Args:
        sequences: Token sequences (a string counts as a sequence of characters).
        output: Build an output vocabulary (with ``<s>`` and ``</s>``).
        min_count: Tokens seen fewer times are left out (they map to ``<unk>``).

    Raises:
        ValueError: If the data contains a reserved token.
    """
    counts: Counter = Counter()
    for sequence in sequences:
        counts.update(sequence)
    reserved = OUTPUT_RESERVED if output else INPUT_RESERVED
    for token in reserved:
        if token in counts:
            raise ValueError(f"the data contains the reserved token {token!r}")
    kept = sorted(t for t, c in counts.items() if c >= min_count)
    return Vocabulary(list(reserved) + kept)
