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

Under server-side batching every input of a request must have the request's number of rows, so
there a client sends ``use_dictionary`` for every row (or leaves it out).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

__all__ = ["G2PServingModule", "DICTIONARY_ASSET", "write_dictionary_asset"]

DICTIONARY_ASSET = "dictionary.tsv"


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
    """

    def __init__(self, inner, dictionary):
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

    @property
    def input_name(self):
        return self.inner.input_name

    @property
    def output_name(self):
        return self.inner.output_name

    def signatures(self):
        """``serving_default`` and ``greedy`` dictionary first; the plain module's other signatures
        (``decode``, ``sample``, ``tokens``, ``encode``, ``decode_step``, ``detokenize``) as they
        are: they decode with the model only."""
        return {**self.inner.signatures(), "serving_default": self.serving_default, "greedy": self.greedy}

    def _lookup(self, words, use_dictionary):
        """(found [B], pronunciations [B, None] with "" after a row's last): the dictionary's answers."""
        rows = tf.shape(words)[0]
        values = tf.size(use_dictionary)
        check = tf.debugging.Assert(tf.logical_or(tf.equal(values, 1), tf.equal(values, rows)),
                                    ["use_dictionary must have one value, or one per row of words; values, rows:",
                                     values, rows])
        with tf.control_dependencies([check]):
            use = tf.broadcast_to(use_dictionary, [rows])
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

    def warmup_inputs(self):
        """The plain module's warmup inputs, ``use_dictionary`` given per row (true, then false)."""
        inputs = self.inner.warmup_inputs()
        for name in ("serving_default", "greedy"):
            words = inputs[name][self.input_name]
            inputs[name] = {self.input_name: words, "use_dictionary": np.arange(len(words)) % 2 == 0}
        return inputs
