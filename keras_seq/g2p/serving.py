"""`G2PServingModule`: a G2P export that answers dictionary words inside the graph, dictionary first.

It wraps the general `keras_seq.export.Seq2SeqServingModule` of a G2P model (whose signatures it
calls, unchanged) with a `tf.lookup.StaticHashTable` built from an asset file, ``dictionary.tsv``
(one line per word: the lower-cased word, then each pronunciation, tab-separated, in the
dictionary's order). Serving runs no Python: TensorFlow Serving's C++ loader initializes the
table from the SavedModel's ``assets/`` directory.

Signatures (a model exported without a dictionary keeps the plain module's, unchanged):

- ``serving_default``: ``words`` DT_STRING ``[B]`` and ``use_dictionary`` DT_BOOL ``[B]`` (optional:
  its default, one ``True``, applies to every row; one value or one per row) -> the outputs of the
  plain module (``pronunciation``, ``score``, ``nbest``, ``nbest_scores``, ``too_long``) and
  ``from_dictionary`` bool ``[B]``. A row whose word (lower-cased, as the model reads it) is in
  the dictionary and whose ``use_dictionary`` is true is not decoded: ``pronunciation`` is the
  dictionary's first pronunciation, ``nbest`` its pronunciations (cut to the beam width, then
  empty strings), every score 0.0 (a dictionary has no scores), ``too_long`` false.
- ``greedy``: the same inputs -> ``pronunciation``, ``score``, ``too_long``, ``from_dictionary``.
- ``tokens``: the plain module's (ids in: no words to look up).
- ``decode``, ``sample``, ``encode``, ``decode_step``, ``detokenize``: the plain module's, as they
  are: per-request decoding settings and step-wise decoding use the model only (no dictionary).
- ``text``: ``texts`` DT_STRING ``[B]`` (sentences) and ``use_dictionary`` as above (one per text)
  -> what `G2P.pronounce_text` answers, one column per word of the text, ``""`` after a row's
  last (`keras_seq.g2p.text_graph` splits the texts and writes numbers out in the graph):
  ``words`` ``[B, W]`` (the words read, "" for punctuation), ``tokens`` ``[B, W]`` (the text each
  reads: ``1984`` three times for "nineteen eighty four"), ``pronunciations`` ``[B, W]`` (the
  best pronunciation, phonemes joined by spaces; "" for punctuation and too long words),
  ``sources`` ``[B, W]`` (``dictionary``, ``model``, ``punctuation`` or ``too_long``),
  ``num_words`` int32 ``[B]`` and ``pronunciation`` ``[B]`` (the non-empty pronunciations joined by
  `PRONUNCIATION_SEPARATOR`, " | "). Each word not answered by the dictionary is decoded once
  per request by ``serving_default``'s beam search. Empty text gives no words; text that is not
  UTF-8 is read with U+FFFD for its bad bytes. The export needs `num2words` for it (its tables are
  filled at export; serving needs nothing): without it the module warns and has no ``text``.

Under server-side batching every input of a request must have the request's number of rows, so
there a client sends ``use_dictionary`` for every row (or leaves it out).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_seq.g2p.text_graph import NumberWords, spoken_text

__all__ = ["G2PServingModule", "DICTIONARY_ASSET", "TEXT_INPUT", "PRONUNCIATION_SEPARATOR", "write_dictionary_asset"]

DICTIONARY_ASSET = "dictionary.tsv"
#: The ``text`` signature's input, and what its ``pronunciation`` output puts between words.
TEXT_INPUT, PRONUNCIATION_SEPARATOR = "texts", " | "
#: The ``text`` signature's warmup texts.
WARMUP_TEXTS = ["In 1984, I read 3 books for $3.50.", "", "Hello world!"]


def write_dictionary_asset(dictionary, path):
    """Writes ``{word: [pronunciation, ...]}`` as the asset's lines; returns the longest word's bytes.

    Words or phonemes holding a tab or a line break cannot be written: ValueError names them.
    """
    longest = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for word, prons in dictionary.items():
            fields = [word, *(" ".join(p) for p in prons)]
            if not word or not prons or any(c in field for field in fields for c in "\t\r\n"):
                raise ValueError(f"dictionary entry {word!r} cannot be exported (empty, or a tab or line break)")
            f.write("\t".join(fields) + "\n")
            longest = max(longest, len(word.encode("utf-8")))
    return longest


class G2PServingModule(tf.Module):
    """Dictionary first inside the graph (see the module docstring).

    Args:
        inner: The G2P's `Seq2SeqServingModule` (``words`` -> ``pronunciation``).
        dictionary: ``{word: [pronunciation, ...]}``, words lower-cased (`G2P.dictionary`).
        text: Add the ``text`` signature (needs `num2words` here, at export; without it the
            module warns and has no ``text`` signature).
    """

    def __init__(self, inner, dictionary, text=True):
        super().__init__()
        if not dictionary:
            raise ValueError("an export with a dictionary needs at least one dictionary word")
        self.inner = inner
        self._files = tempfile.TemporaryDirectory(prefix="keras-seq-g2p-")  # removed with the module
        path = Path(self._files.name) / DICTIONARY_ASSET
        self.max_word_bytes = write_dictionary_asset(dictionary, path)
        self.dictionary_file = tf.saved_model.Asset(str(path))
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(self.dictionary_file, tf.string, 0, tf.string,
                                          tf.lookup.TextFileIndex.WHOLE_LINE, delimiter="\t"),
            default_value="")
        name = inner.input_name
        words = tf.TensorSpec([None], tf.string, name=name)
        use = tf.TensorSpec([None], tf.bool, name="use_dictionary")

        def beam(words, use_dictionary=tf.constant([True])):
            return self._beam(words, use_dictionary)

        def greedy(words, use_dictionary=tf.constant([True])):
            return self._greedy(words, use_dictionary)

        self.serving_default = tf.function(beam, input_signature=[words, use])
        self.greedy = tf.function(greedy, input_signature=[words, use])
        self.tokens = inner.tokens
        self.number_words = None
        if text:
            try:
                self.number_words = NumberWords.from_num2words()
            except ImportError as e:
                warnings.warn(f"the export has no `text` signature (it writes numbers out with tables from "
                              f"num2words): {e}", stacklevel=2)
        if self.number_words is not None:
            def read_text(texts, use_dictionary=tf.constant([True])):
                return self._text(texts, use_dictionary)

            self.text = tf.function(read_text, input_signature=[tf.TensorSpec([None], tf.string, name=TEXT_INPUT), use])

    @property
    def input_name(self):
        return self.inner.input_name

    @property
    def output_name(self):
        return self.inner.output_name

    def signatures(self):
        """``serving_default`` and ``greedy`` dictionary first; ``text`` (sentences, when
        `num2words` was there at export); the plain module's other signatures (``decode``,
        ``sample``, ``tokens``, ``encode``, ``decode_step``, ``detokenize``) as they are: they
        decode with the model only."""
        signatures = {**self.inner.signatures(), "serving_default": self.serving_default, "greedy": self.greedy}
        if self.number_words is not None:
            signatures["text"] = self.text
        return signatures

    @staticmethod
    def _per_row(use_dictionary, rows, what="words"):
        """`use_dictionary` [1] or [rows] as [rows]; any other size fails the request (INVALID_ARGUMENT)."""
        values = tf.size(use_dictionary)
        check = tf.debugging.Assert(tf.logical_or(tf.equal(values, 1), tf.equal(values, rows)),
                                    [f"use_dictionary must have one value, or one per row of {what}; values, rows:",
                                     values, rows])
        with tf.control_dependencies([check]):
            return tf.broadcast_to(use_dictionary, [rows])

    def _lookup(self, words, use_dictionary):
        """(found [B], pronunciations [B, None] with "" after a row's last): the dictionary's answers."""
        return self._find(words, self._per_row(use_dictionary, tf.shape(words)[0]))

    def _find(self, words, use):
        """`_lookup` with `use` given per row."""
        # Rows longer than the longest dictionary word are never lowered or looked up.
        keys = tf.where(tf.strings.length(words) > self.max_word_bytes, "", words)
        line = self.table.lookup(tf.strings.lower(keys, encoding="utf-8"))
        found = use & tf.not_equal(line, "")
        prons = tf.strings.split(line, "\t")[:, 1:].to_tensor(default_value="")
        return found, prons

    def _beam(self, words, use_dictionary):
        found, prons = self._lookup(words, use_dictionary)
        out = self.inner.serving_default(tf.where(found, "", words))  # dictionary rows: not decoded
        nbest = out["nbest"]
        width = tf.shape(nbest)[1]
        prons = tf.pad(prons, [[0, 0], [0, tf.maximum(0, width - tf.shape(prons)[1])]], constant_values="")
        nbest = tf.where(found[:, None], prons[:, :width], nbest)
        nbest_scores = tf.where(found[:, None], tf.zeros_like(out["nbest_scores"]), out["nbest_scores"])
        return {self.output_name: nbest[:, 0], "score": nbest_scores[:, 0], "nbest": nbest,
                "nbest_scores": nbest_scores, "too_long": out["too_long"] & ~found, "from_dictionary": found}

    def _greedy(self, words, use_dictionary):
        found, prons = self._lookup(words, use_dictionary)
        out = self.inner.greedy(tf.where(found, "", words))
        first = tf.pad(prons, [[0, 0], [0, 1]], constant_values="")[:, 0]
        return {self.output_name: tf.where(found, first, out[self.output_name]),
                "score": tf.where(found, tf.zeros_like(out["score"]), out["score"]),
                "too_long": out["too_long"] & ~found, "from_dictionary": found}

    def _text(self, texts, use_dictionary):
        """The ``text`` signature: the texts' words (`keras_seq.g2p.text_graph`), each pronounced as
        by ``serving_default`` (dictionary first, the model's best for the others)."""
        rows = tf.shape(texts, out_type=tf.int64)[0]
        use = self._per_row(use_dictionary, tf.cast(rows, tf.int32), "texts")
        words, tokens, text_rows = spoken_text(texts, self.number_words)
        found, prons = self._find(words, tf.gather(use, text_rows))
        first = tf.pad(prons, [[0, 0], [0, 1]], constant_values="")[:, 0]
        is_word = tf.not_equal(words, "")
        # Each other word decoded once; a leading "" keeps the batch non-empty.
        unique, index = tf.unique(tf.concat([[""], tf.where(found | ~is_word, "", words)], 0))
        decoded = self.inner.serving_default(unique)
        model = tf.gather(decoded[self.output_name], index[1:])
        too_long = tf.gather(decoded["too_long"], index[1:]) & ~found & is_word
        pronunciations = tf.where(found, first, tf.where(is_word & ~too_long, model, ""))
        sources = tf.where(~is_word, "punctuation",
                           tf.where(found, "dictionary", tf.where(too_long, "too_long", "model")))

        def per_text(values):
            return tf.RaggedTensor.from_value_rowids(values, text_rows, nrows=rows)

        spoken = per_text(pronunciations)
        joined = tf.strings.reduce_join(tf.ragged.boolean_mask(spoken, tf.not_equal(spoken, "")), axis=1,
                                        separator=PRONUNCIATION_SEPARATOR)
        return {"words": per_text(words).to_tensor(""), "tokens": per_text(tokens).to_tensor(""),
                "pronunciations": spoken.to_tensor(""), "sources": per_text(sources).to_tensor(""),
                "num_words": tf.cast(spoken.row_lengths(), tf.int32), self.output_name: joined}

    def warmup_inputs(self):
        """The plain module's warmup inputs, ``use_dictionary`` given per row (true, then false);
        ``text``: `WARMUP_TEXTS`."""
        inputs = self.inner.warmup_inputs()
        for name in ("serving_default", "greedy"):
            words = inputs[name][self.input_name]
            inputs[name] = {self.input_name: words, "use_dictionary": np.arange(len(words)) % 2 == 0}
        if self.number_words is not None:
            inputs["text"] = {TEXT_INPUT: np.array(WARMUP_TEXTS, object),
                              "use_dictionary": np.arange(len(WARMUP_TEXTS)) % 2 == 0}
        return inputs
