"""Any string-to-string task: an encoder-decoder trained on a file of ``source<TAB>target`` pairs.

- `TextSeq2Seq` (`keras_seq.seq2seq.model`): the model with its vocabularies and tokenization;
  `create`, `predict`, `save`/`load`, `ensemble`, `average`, `serving_module`.
- `Seq2SeqConfig` (`keras_seq.seq2seq.config`): every training setting and its default; the
  `keras-seq train seq2seq` flags are generated from it.
- `train(config)`: reads the pairs and trains with `keras_seq.training`.
"""

from keras_seq.seq2seq.model import TextSeq2Seq, examples_from_pairs

__all__ = ["TextSeq2Seq", "examples_from_pairs"]

from keras_seq.export.registry import register_model_directory as _register

_register(TextSeq2Seq.SETTINGS_FILE, TextSeq2Seq.load_for_export)
