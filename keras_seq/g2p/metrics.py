"""G2P evaluation metrics: word error rate (WER) and phoneme error rate (PER).

Pure Python (no TensorFlow), fast enough for the ~6k words of a CMUdict dev or test set.

Definitions, as the G2P literature scores a lexicon with several reference pronunciations per
word (Sequitur G2P, Phonetisaurus, Montreal Forced Aligner, the CMUdict benchmark papers):

- **WER** (word error rate): the fraction of words whose hypothesis is *not exactly equal* to
  any one of the word's reference pronunciations::

      WER = #{w : hyp(w) not in refs(w)} / #words

- **PER** (phoneme error rate): for each word, the reference closest to the hypothesis in
  Levenshtein distance (unit-cost substitutions, insertions and deletions over phoneme
  symbols) is chosen, ties broken by the reference order (the first closest one); the
  distances are summed over words and divided by the summed lengths of those chosen
  references::

      r*(w) = argmin_{r in refs(w)} lev(hyp(w), r)
      PER   = sum_w lev(hyp(w), r*(w)) / sum_w len(r*(w))

  This is a micro-average over phonemes (long words weigh more), not a mean of per-word rates.
  PER can exceed 1 when hypotheses are much longer than references.

A hypothesis or reference is a sequence of phoneme symbols, or a string of space-separated
symbols (``"HH AH L OW"``). Phoneme symbols are compared exactly (strip stress beforehand if
the references have none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence, Union

from keras_seq.text.metrics import closest_reference, levenshtein, sequence_scores

__all__ = [
    "levenshtein",
    "closest_reference",
    "G2PScores",
    "g2p_scores",
    "scores_by_training_overlap",
    "word_error_rate",
    "phoneme_error_rate",
]

Phonemes = Union[str, Sequence[str]]


@dataclass(frozen=True)
class G2PScores:
    """Scores of a set of hypotheses against references (see the module docstring).

    Attributes:
        num_words: Number of words scored.
        word_errors: Words whose hypothesis matches none of their references.
        phoneme_edits: Summed edit distances to the closest references.
        reference_phonemes: Summed lengths of those closest references.
    """

    num_words: int
    word_errors: int
    phoneme_edits: int
    reference_phonemes: int

    @property
    def wer(self) -> float:
        """Word error rate, ``word_errors / num_words`` (0.0 for no words)."""
        return self.word_errors / self.num_words if self.num_words else 0.0

    @property
    def per(self) -> float:
        """Phoneme error rate, ``phoneme_edits / reference_phonemes`` (0.0 for no phonemes)."""
        return self.phoneme_edits / self.reference_phonemes if self.reference_phonemes else 0.0


def _pairs(hypotheses, references):
    """Align hypotheses with references: by key for mappings, by position for sequences."""
    if isinstance(references, Mapping):
        if not isinstance(hypotheses, Mapping):
            raise TypeError("with references given as a mapping, hypotheses must be one too")
        return [(hypotheses.get(word, ()), refs) for word, refs in references.items()]
    if isinstance(hypotheses, Mapping):
        raise TypeError("with hypotheses given as a mapping, references must be one too")
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses for {len(references)} reference lists"
        )
    return list(zip(hypotheses, references))


def g2p_scores(
    hypotheses: Sequence[Phonemes] | Mapping[str, Phonemes],
    references: Sequence[Sequence[Phonemes]] | Mapping[str, Sequence[Phonemes]],
) -> G2PScores:
    """Score hypotheses against (possibly several) reference pronunciations per word.

    Args:
        hypotheses: One predicted pronunciation per word: a sequence aligned with
            ``references``, or a mapping ``word -> pronunciation``.
        references: The reference pronunciations of each word: a sequence of non-empty lists
            aligned with ``hypotheses``, or a mapping ``word -> [pronunciation, ...]`` (e.g.
            ``dict(lexicon)``). With mappings, every word of ``references`` is scored and a
            word missing from ``hypotheses`` counts as an empty hypothesis (a word error and
            ``len(reference)`` deletions); extra hypotheses are ignored.

    Returns:
        A :class:`G2PScores` (``.wer``, ``.per`` and the raw counts).

    Raises:
        ValueError: If the sequences differ in length or a word has no reference.
    """
    pairs = _pairs(hypotheses, references)
    scores = sequence_scores([hyp for hyp, _ in pairs], [refs for _, refs in pairs])
    return G2PScores(scores.num_sequences, scores.sequence_errors, scores.token_edits, scores.reference_tokens)


def scores_by_training_overlap(
    hypotheses: Sequence[Phonemes],
    lexicon: Sequence[tuple[str, Sequence[Phonemes]]],
    train_lexicon: Mapping[str, Sequence[Phonemes]],
) -> dict[str, G2PScores]:
    """Scores of a dev or test lexicon against the training data's words.

    A split made per pronunciation line (as CMUdict's train/dev split is) leaves some words in
    both parts, each part holding other pronunciations of them. Scored on its part alone, such a
    word measures whether the model forgets its training pronunciation; the other words measure
    generalization, as the published test sets (whose words are not in train) do. And by the
    dictionary's own rule, a word is right when it matches any of its pronunciations, wherever the
    split put them.

    Args:
        hypotheses: One pronunciation per entry of `lexicon`, in order.
        lexicon: ``(word, [pronunciation, ...])`` pairs (e.g. `read_cmudict` of the dev file).
        train_lexicon: ``word -> [pronunciation, ...]`` of the training file.

    Returns:
        ``{"not in train": ..., "also in train": ..., "train references too": ...}``: the first
        two score the words of `lexicon` apart by whether `train_lexicon` has them (a part with
        no words has ``num_words == 0``), the third scores every word against its pronunciations
        in both.
    """
    hypotheses = list(hypotheses)
    if len(hypotheses) != len(lexicon):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(lexicon)} words")
    parts = {}
    for name, seen in [("not in train", False), ("also in train", True)]:
        rows = [i for i, (word, _) in enumerate(lexicon) if (word in train_lexicon) == seen]
        parts[name] = g2p_scores([hypotheses[i] for i in rows], [lexicon[i][1] for i in rows])
    parts["train references too"] = g2p_scores(
        hypotheses, [[*refs, *train_lexicon.get(word, [])] for word, refs in lexicon]
    )
    return parts


def word_error_rate(
    hypotheses: Sequence[Phonemes] | Mapping[str, Phonemes],
    references: Sequence[Sequence[Phonemes]] | Mapping[str, Sequence[Phonemes]],
) -> float:
    """WER: the fraction of words whose hypothesis equals none of their references.

    Args:
        hypotheses: As in :func:`g2p_scores`.
        references: As in :func:`g2p_scores`.

    Returns:
        The word error rate in [0, 1].
    """
    return g2p_scores(hypotheses, references).wer


def phoneme_error_rate(
    hypotheses: Sequence[Phonemes] | Mapping[str, Phonemes],
    references: Sequence[Sequence[Phonemes]] | Mapping[str, Sequence[Phonemes]],
) -> float:
    """PER: summed edit distances to the closest references over their summed lengths.

    Args:
        hypotheses: As in :func:`g2p_scores`.
        references: As in :func:`g2p_scores`.

    Returns:
        The phoneme error rate (>= 0).
    """
    return g2p_scores(hypotheses, references).per
