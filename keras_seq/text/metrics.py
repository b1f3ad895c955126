"""Scores of output sequences against (possibly several) reference sequences, pure Python.

- **Sequence error rate**: the fraction of sources whose output equals none of their
  references exactly (``exact_match`` is one minus it). For G2P this is the word error rate.
- **Token error rate**: for each source, the reference closest to the output in Levenshtein
  distance (ties: the first one); the distances summed over sources, divided by the summed
  lengths of those references (a micro-average; it can exceed 1). For G2P this is the phoneme
  error rate; over characters it is the character error rate.

A sequence is a sequence of tokens, or a string of space-separated tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

__all__ = ["levenshtein", "closest_reference", "SequenceScores", "sequence_scores"]

Tokens = Union[str, Sequence[str]]


def _tokens(pron: Tokens) -> tuple:
    """A sequence as a tuple of tokens (a string is split on whitespace)."""
    if isinstance(pron, str):
        return tuple(pron.split())
    return tuple(pron)


def levenshtein(a: Sequence, b: Sequence) -> int:
    """Levenshtein (edit) distance between two sequences.

    The minimum number of single-element substitutions, insertions and deletions, each of
    cost 1, turning ``a`` into ``b``. Elements are compared with ``==`` (pass lists of phoneme
    symbols, or strings to compare characters).

    Args:
        a: The first sequence (e.g. a hypothesis).
        b: The second sequence (e.g. a reference).

    Returns:
        The edit distance, an int between ``abs(len(a) - len(b))`` and ``max(len(a), len(b))``.
    """
    if len(a) < len(b):
        a, b = b, a  # keep the row over the shorter sequence
    if not b:
        return len(a)
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(
                min(
                    previous[j] + 1,  # deletion
                    current[j - 1] + 1,  # insertion
                    previous[j - 1] + (x != y),  # substitution or match
                )
            )
        previous = current
    return previous[-1]


def closest_reference(hypothesis: Tokens, references: Sequence[Tokens]) -> tuple[int, int]:
    """The edit distance to the closest reference, and that reference's length.

    Args:
        hypothesis: The output sequence.
        references: One or more reference sequences (non-empty).

    Returns:
        ``(distance, reference_length)`` of the reference minimizing the distance; ties go to
        the first such reference in ``references``.

    Raises:
        ValueError: If ``references`` is empty.
    """
    hyp = _tokens(hypothesis)
    best: tuple[int, int] | None = None
    for ref in references:
        ref = _tokens(ref)
        distance = levenshtein(hyp, ref)
        if best is None or distance < best[0]:
            best = (distance, len(ref))
            if distance == 0:
                break
    if best is None:
        raise ValueError("a source needs at least one reference")
    return best


@dataclass(frozen=True)
class SequenceScores:
    """Counts behind the sequence and token error rates of a set of outputs."""

    num_sequences: int
    sequence_errors: int
    token_edits: int
    reference_tokens: int

    @property
    def error_rate(self) -> float:
        """Fraction of outputs equal to none of their references (0.0 for none)."""
        return self.sequence_errors / self.num_sequences if self.num_sequences else 0.0

    @property
    def exact_match(self) -> float:
        """Fraction of outputs equal to one of their references (1 - `error_rate`)."""
        return 1.0 - self.error_rate if self.num_sequences else 0.0

    @property
    def token_error_rate(self) -> float:
        """Summed edit distances to the closest references over their summed lengths."""
        return self.token_edits / self.reference_tokens if self.reference_tokens else 0.0


def sequence_scores(hypotheses: Sequence[Tokens], references: Sequence[Sequence[Tokens]]) -> SequenceScores:
    """Scores `hypotheses` (one per source) against each source's non-empty list of references."""
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} reference lists")
    errors = edits = length = 0
    for hyp, refs in zip(hypotheses, references):
        distance, ref_length = closest_reference(hyp, [refs] if isinstance(refs, str) else refs)
        errors += distance != 0
        edits += distance
        length += ref_length
    return SequenceScores(len(hypotheses), errors, edits, length)
