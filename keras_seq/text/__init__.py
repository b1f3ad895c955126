"""Task-neutral text building blocks for sequence-to-sequence models.

- `Vocabulary` (`keras_seq.text.vocabulary`): tokens <-> ids with reserved ``<pad>``, ``<unk>``
  (and, for outputs, ``<s>``, ``</s>``), saved as a plain text file (one token a line).
- `split_text` and the in-graph `Tokenizer` / `Detokenizer` layers (`keras_seq.text.tokenizers`):
  characters or whitespace-separated tokens, in Python and in a TensorFlow graph, with the same
  result.
- `read_pairs` (`keras_seq.text.pairs`): UTF-8 TSV files of ``source<TAB>target`` pairs; bad
  lines are reported with file and line.
- `make_teacher_forcing_arrays` (`keras_seq.text.arrays`): padded encoder inputs, decoder inputs
  and labels.

This floor knows nothing of any application (no CMUdict, no phonemes).

Everything but the two layers is pure Python and NumPy; `Tokenizer` and `Detokenizer` (TensorFlow)
are imported on first use.
"""

from keras_seq.text.arrays import SourceTooLongError, encode_sources, make_teacher_forcing_arrays
from keras_seq.text.pairs import read_pairs, write_pairs
from keras_seq.text.metrics import SequenceScores, levenshtein, sequence_scores
from keras_seq.text.split import SPLITS, join_tokens, split_text
from keras_seq.text.vocabulary import (
    END,
    END_ID,
    INPUT_RESERVED,
    OOV,
    OOV_ID,
    OUTPUT_RESERVED,
    PAD,
    PAD_ID,
    START,
    START_ID,
    Vocabulary,
    build_vocabulary,
)

__all__ = [
    "END", "END_ID", "INPUT_RESERVED", "OOV", "OOV_ID", "OUTPUT_RESERVED", "PAD", "PAD_ID", "SPLITS",
    "START", "START_ID", "Detokenizer", "SourceTooLongError", "Tokenizer", "Vocabulary", "build_vocabulary",
    "SequenceScores", "encode_sources", "levenshtein", "sequence_scores", "join_tokens", "make_teacher_forcing_arrays", "read_pairs", "split_text", "write_pairs",
]


def __getattr__(name):
    if name in ("Tokenizer", "Detokenizer"):  # TensorFlow layers: imported when first used
        from keras_seq.text import tokenizers

        return getattr(tokenizers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
