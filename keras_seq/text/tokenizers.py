"""Splitting text into tokens, in Python and in the graph, with the same result.

Two ways to split (`SPLITS`):

- ``"chars"``: Unicode characters (code points), the way `tf.strings.unicode_split` splits
  UTF-8; joined back with no separator.
- ``"words"``: tokens separated by runs of ASCII whitespace (space, tab, line breaks, form
  feed, vertical tab), the way `tf.strings.split` splits; joined back with one space.

`split_text` is the Python side; `Tokenizer` (strings -> padded ids) and `Detokenizer` (ids ->
strings) are Keras layers made of standard TensorFlow ops only (no ``py_function``), so they run
inside a ``tf.function``, a SavedModel and TF Serving. String ops are not XLA ops: keep them
outside a ``jit_compile`` function.
"""

from __future__ import annotations

import os
from typing import Sequence

import keras
import tensorflow as tf

from keras_seq.text.split import SPLITS, check_split, join_tokens, split_text
from keras_seq.text.vocabulary import END_ID, OOV, OOV_ID, PAD, PAD_ID, START, START_ID, Vocabulary

__all__ = ["SPLITS", "split_text", "join_tokens", "Tokenizer", "Detokenizer"]

def _tokens_arg(vocabulary: Vocabulary | Sequence[str] | str | os.PathLike) -> list[str]:
    """Accept a Vocabulary, a token list or a vocabulary file; return the token list."""
    if isinstance(vocabulary, Vocabulary):
        return vocabulary.tokens
    if isinstance(vocabulary, (str, os.PathLike)):
        return Vocabulary.load(vocabulary).tokens
    return Vocabulary(vocabulary).tokens


@keras.saving.register_keras_serializable(package="keras_seq.text")
class Tokenizer(keras.layers.Layer):
    """Maps a batch of strings to padded token ids, in the graph.

    A batch of strings, DT_STRING of shape ``[B]`` (or ``[B, 1]``), is lower-cased with
    ``lowercase=True`` (``tf.strings.lower``, UTF-8), split (`SPLITS`) and looked up with a
    ``keras.layers.StringLookup``; the result is int32 ``[B, T]`` padded with 0 (``<pad>``).
    Tokens missing from the vocabulary map to 1 (``<unk>``), never to an error; invalid UTF-8
    bytes are replaced by U+FFFD (hence ``<unk>``). Equals ``vocabulary.encode(split_text(s,
    split, lowercase))`` for every string (case folding is ICU's in the graph and ``str.lower``
    in Python; they agree on ASCII and on ordinary letters of other scripts).

    Args:
        vocabulary: The input `Vocabulary`, its token list, or its file.
        split: ``"chars"`` or ``"words"``.
        lowercase: Lower-case the strings first.
        max_length: If given, the output is truncated or padded to exactly ``max_length``
            steps (a static shape); otherwise ``T`` is the longest string of the batch.
        **kwargs: Keras layer arguments (``name``...).
    """

    def __init__(self, vocabulary, split="chars", lowercase=False, max_length=None, **kwargs):
        super().__init__(**kwargs)
        self.tokens = _tokens_arg(vocabulary)
        self.split = check_split(split)
        self.lowercase = bool(lowercase)
        self.max_length = None if max_length is None else int(max_length)
        self.lookup = keras.layers.StringLookup(
            vocabulary=self.tokens[2:], mask_token=PAD, oov_token=OOV, num_oov_indices=1,
            output_mode="int", name="token_lookup",
        )

    def build(self, input_shape=None):
        """No weights: the lookup table is built from the vocabulary at construction."""
        self.built = True

    def call(self, strings):
        strings = tf.reshape(tf.convert_to_tensor(strings, dtype=tf.string), [-1])
        if self.lowercase:
            strings = tf.strings.lower(strings, encoding="utf-8")
        if self.split == "chars":
            pieces = tf.strings.unicode_split(strings, "UTF-8", errors="replace")
        else:
            # tf.strings.split(sep=None) splits on runs of ASCII whitespace, as split_text does.
            pieces = tf.strings.split(strings)
        ids = pieces.with_flat_values(tf.cast(self.lookup(pieces.flat_values), tf.int32))
        if self.max_length is None:
            return ids.to_tensor(default_value=PAD_ID)
        return ids.to_tensor(default_value=PAD_ID, shape=[None, self.max_length])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.max_length)

    def compute_output_spec(self, strings):
        return keras.KerasTensor((strings.shape[0], self.max_length), dtype="int32")

    def get_config(self):
        config = super().get_config()
        config.update({"vocabulary": list(self.tokens), "split": self.split, "lowercase": self.lowercase,
                       "max_length": self.max_length})
        return config


@keras.saving.register_keras_serializable(package="keras_seq.text")
class Detokenizer(keras.layers.Layer):
    """Maps output ids ``[B, T]`` back to strings ``[B]``, in the graph.

    Reading each row left to right, the output stops at the first ``</s>``; ``<pad>`` and
    ``<s>`` are dropped; ids out of range become ``<unk>``; the tokens are joined with
    `separator` (``""`` for characters, ``" "`` for words: see `join_tokens`). Standard
    TensorFlow ops only. Equals ``separator.join(vocabulary.decode(row))`` for every row.

    Args:
        vocabulary: The output `Vocabulary` (with ``<s>`` and ``</s>``), its token list or file.
        separator: The string between two tokens.
        **kwargs: Keras layer arguments.
    """

    def __init__(self, vocabulary, separator=" ", **kwargs):
        super().__init__(**kwargs)
        self.tokens = _tokens_arg(vocabulary)
        self.separator = str(separator)
        if START not in self.tokens:
            raise ValueError(f"{type(self).__name__} needs an output vocabulary with <s> and </s>")

    def build(self, input_shape=None):
        """No weights."""
        self.built = True

    def call(self, ids):
        ids = tf.cast(tf.convert_to_tensor(ids), tf.int32)
        table = tf.constant(self.tokens, dtype=tf.string)
        safe = tf.where((ids >= 0) & (ids < len(self.tokens)), ids, OOV_ID)
        tokens = tf.gather(table, safe)
        before_end = tf.equal(tf.cumsum(tf.cast(tf.equal(ids, END_ID), tf.int32), axis=-1), 0)
        keep = before_end & tf.not_equal(ids, PAD_ID) & tf.not_equal(ids, START_ID)
        return tf.strings.reduce_join(tf.ragged.boolean_mask(tokens, keep), axis=-1, separator=self.separator)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],)

    def compute_output_spec(self, ids):
        return keras.KerasTensor((ids.shape[0],), dtype="string")

    def get_config(self):
        config = super().get_config()
        config.update({"vocabulary": list(self.tokens), "separator": self.separator})
        return config
