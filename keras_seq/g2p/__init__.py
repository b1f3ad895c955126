"""Grapheme-to-phoneme conversion (G2P) on the CMU Pronouncing Dictionary.

- `keras_seq.g2p.data`: CMUdict reader, deterministic split, vocabularies, in-graph
  tokenization layers, teacher-forcing arrays, quick synthetic tasks.
- `keras_seq.g2p.metrics`: WER, PER and Levenshtein distance (pure Python).
- `keras_seq.g2p.model`: the `G2P` model: `predict` (dictionary first), `predict_details`,
  `pronounce_text` (sentences, numbers written out by `keras_seq.g2p.sentences`).
- `keras_seq.g2p.serving`: the export that answers dictionary words inside the graph, and its
  ``text`` signature (sentences; `keras_seq.g2p.text_graph` reads them with graph ops).
- `keras_seq.g2p.distill`: sequence-level knowledge distillation of a teacher into a student.
- `keras_seq.g2p.pretrained`: `load_pretrained()`, the model shipped in the package, and `pack`.
"""

from keras_seq.g2p.data import (
    END,
    END_ID,
    OOV,
    OOV_ID,
    PAD,
    PAD_ID,
    START,
    START_ID,
    Vocabulary,
    build_char_vocabulary,
    build_phoneme_vocabulary,
    cmudict_package_path,
    count_pronunciations,
    detect_lexicon_format,
    load_lexicon,
    read_lexicon,
    encode_word,
    hash_split,
    load_cmudict,
    make_teacher_forcing_arrays,
    normalize_word,
    read_cmudict,
    reverse_task,
    sort_task,
    write_cmudict,
)
from keras_seq.g2p.metrics import (
    G2PScores,
    g2p_scores,
    levenshtein,
    phoneme_error_rate,
    word_error_rate,
)

__all__ = [
    "END",
    "END_ID",
    "OOV",
    "OOV_ID",
    "PAD",
    "PAD_ID",
    "START",
    "START_ID",
    "CharTokenizer",
    "PhonemeDetokenizer",
    "Vocabulary",
    "build_char_vocabulary",
    "build_phoneme_vocabulary",
    "cmudict_package_path",
    "count_pronunciations",
    "detect_lexicon_format",
    "load_lexicon",
    "read_lexicon",
    "encode_word",
    "hash_split",
    "load_cmudict",
    "make_teacher_forcing_arrays",
    "normalize_word",
    "read_cmudict",
    "reverse_task",
    "sort_task",
    "write_cmudict",
    "G2PScores",
    "g2p_scores",
    "levenshtein",
    "phoneme_error_rate",
    "word_error_rate",
    "G2P",
    "Prediction",
    "SpokenWord",
    "load_pretrained",
]

from keras_seq.export.registry import register_model_directory as _register  # noqa: E402
from keras_seq.g2p.model import G2P, Prediction, SpokenWord  # noqa: E402
from keras_seq.g2p.pretrained import load_pretrained  # noqa: E402

_register(G2P.SETTINGS_FILE, G2P.load_for_export)


def __getattr__(name):
    if name in ("CharTokenizer", "PhonemeDetokenizer"):  # TensorFlow layers: imported on first use
        from keras_seq.g2p import tokenizers

        return getattr(tokenizers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
