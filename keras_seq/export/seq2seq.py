"""The general serving module: any `EncoderDecoder` as a TF Serving model, strings in and out.

`TokenServingModule(model)` serves token ids (what a `.keras` file of an encoder-decoder
exports); `Seq2SeqServingModule(model, tokenizer, detokenizer, ...)` adds tokenization and
detokenization in the graph, so that clients send and get plain strings. Both decode with the
model's own compiled loop (`EncoderDecoder.generate`); this module knows no application.

Signatures of `Seq2SeqServingModule` (names of the string input and output are settings, so that
an application keeps its contract, e.g. G2P's ``words`` -> ``pronunciation``):

- ``serving_default``: ``inputs`` DT_STRING ``[B]`` -> ``outputs`` string ``[B]`` (the best of a
  beam search), ``score`` float ``[B]`` (its log-probability), ``nbest`` string ``[B, K]``,
  ``nbest_scores`` float ``[B, K]``, ``too_long`` bool ``[B]``.
- ``greedy``: ``inputs`` -> ``outputs``, ``score``, ``too_long`` by greedy search.
- ``tokens``: ``input_ids`` int32 ``[B, T]`` (0 pads) -> ``output_ids`` int32 ``[B, K, L]``,
  ``lengths`` int32 ``[B, K]``, ``scores`` float ``[B, K]`` (beam search).

Nothing is cut or invented: a row with more than ``max_input_length`` tokens is not decoded and
gets ``too_long = True``, an empty output and score 0; so does every row longer than
``max_input_bytes`` bytes, found *before* the string is split, so that the cost of a request is
bounded by its number of rows, not by its bytes. An empty row (no tokens) gets an empty output
and score 0, not a guess.

A batch of at least ``2 * shards`` rows is decoded as ``shards`` contiguous parts, each by its
own loop: decoding is a chain of small dependent ops that keeps one core busy, and loops that
share no tensor run on separate cores. Every row's result is the same either way.
"""

from __future__ import annotations

import itertools

import numpy as np
import tensorflow as tf

__all__ = ["TokenServingModule", "Seq2SeqServingModule", "default_max_input_bytes"]


def default_max_input_bytes(max_input_length, split):
    """The byte limit of a row: 4 bytes per character (UTF-8's longest), 32 per word token."""
    return int(max_input_length) * (4 if split == "chars" else 32)


def _check_positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1. Received: {name}={value!r}")
    return value


class TokenServingModule(tf.Module):
    """Token ids in, decoded token ids out: ``serving_default`` (beam search) and ``greedy``.

    Args:
        model: An `EncoderDecoder` (or `EncoderDecoderEnsemble`): anything with
            ``generate(ids, method=..., beam_width=...)``.
        beam_width: Beam width of the beam-search signatures.
        shards: Decode a batch of at least ``2 * shards`` rows as ``shards`` parts side by side.
    """

    def __init__(self, model, beam_width=4, shards=2):
        super().__init__()
        self.model = model
        self.beam_width = _check_positive("beam_width", beam_width)
        self.shards = _check_positive("shards", shards)
        ids = tf.TensorSpec([None, None], tf.int32, name="input_ids")
        self.serving_default = tf.function(self._tokens, input_signature=[ids])
        self.greedy = tf.function(self._greedy_tokens, input_signature=[ids])

    def signatures(self):
        return {"serving_default": self.serving_default, "greedy": self.greedy}

    @staticmethod
    def _at_least_one_column(ids):
        """Pads `ids` to one column when it has none, so that an empty batch, or a batch of empty
        rows, still decodes. A batch with tokens keeps its width: every extra column would be one
        more step of the encoder."""
        return tf.pad(ids, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(ids)[1])]])

    def _decode(self, ids, method):
        settings = {"beam_width": self.beam_width} if method == "beam" else {}

        def decode(part):
            return self.model.generate(part, method=method, **settings)

        if self.shards == 1:
            return decode(ids)
        batch_size = tf.shape(ids)[0]

        def in_shards():
            bounds = [batch_size * k // self.shards for k in range(self.shards + 1)]
            outputs = [decode(ids[start:end]) for start, end in itertools.pairwise(bounds)]
            return tf.nest.map_structure(lambda *parts: tf.concat(parts, axis=0), *outputs)

        return tf.cond(batch_size >= 2 * self.shards, in_shards, lambda: decode(ids))

    def _tokens(self, input_ids):
        out = self._decode(self._at_least_one_column(input_ids), "beam")
        return {"output_ids": out["tokens"], "lengths": out["lengths"], "scores": out["scores"]}

    def _greedy_tokens(self, input_ids):
        out = self._decode(self._at_least_one_column(input_ids), "greedy")
        return {"output_ids": out["tokens"], "lengths": out["lengths"], "scores": out["scores"]}

    def warmup_inputs(self):
        ids = np.array([[2, 3, 4], [3, 0, 0]], np.int32)
        return {"serving_default": {"input_ids": ids}, "greedy": {"input_ids": ids}}


class Seq2SeqServingModule(TokenServingModule):
    """Strings in, strings out: tokenization, decoding and detokenization in one graph.

    Args:
        model: An `EncoderDecoder` (or ensemble) over the tokenizer's and detokenizer's ids.
        tokenizer: A `keras_seq.text.Tokenizer` (strings -> ids).
        detokenizer: A `keras_seq.text.Detokenizer` (ids -> strings).
        max_input_length: Rows with more tokens are flagged ``too_long``, not decoded.
        max_input_bytes: Rows with more bytes are flagged ``too_long`` before being split
            (default `default_max_input_bytes`).
        beam_width, shards: As in `TokenServingModule`.
        input_name, output_name: Names of the string input and the best output.
        warmup_sources: A few representative inputs for TF Serving's warmup file.
    """

    def __init__(self, model, tokenizer, detokenizer, *, max_input_length, max_input_bytes=None, beam_width=4,
                 shards=2, input_name="inputs", output_name="outputs", warmup_sources=()):
        super().__init__(model, beam_width, shards)
        self.tokenizer, self.detokenizer = tokenizer, detokenizer
        self.max_input_length = _check_positive("max_input_length", max_input_length)
        if max_input_bytes is None:
            max_input_bytes = default_max_input_bytes(max_input_length, tokenizer.split)
        self.max_input_bytes = _check_positive("max_input_bytes", max_input_bytes)
        self.input_name, self.output_name = input_name, output_name
        self.warmup_sources = [str(s) for s in warmup_sources]
        strings = tf.TensorSpec([None], tf.string, name=input_name)
        ids = tf.TensorSpec([None, None], tf.int32, name="input_ids")
        self.serving_default = tf.function(self._beam, input_signature=[strings])
        self.greedy = tf.function(self._greedy, input_signature=[strings])
        self.tokens = tf.function(self._tokens, input_signature=[ids])

    def signatures(self):
        return {"serving_default": self.serving_default, "greedy": self.greedy, "tokens": self.tokens}

    def _ids(self, strings):
        """(ids [B, T<=max], skipped [B], too_long [B]): rows too long or empty become pads."""
        over_bytes = tf.strings.length(strings) > self.max_input_bytes
        ids = self.tokenizer(tf.where(over_bytes, "", strings))  # never split an oversized row
        lengths = tf.reduce_sum(tf.cast(ids != 0, tf.int32), axis=1)
        too_long = over_bytes | (lengths > self.max_input_length)
        ids = tf.where(too_long[:, None], tf.zeros_like(ids), ids)[:, : self.max_input_length]
        return self._at_least_one_column(ids), too_long | (lengths == 0), too_long

    def _beam(self, strings):
        ids, skipped, too_long = self._ids(strings)
        out = self._decode(ids, "beam")
        tokens = out["tokens"]  # (B, K, L)
        shape = tf.shape(tokens)
        nbest = tf.reshape(self.detokenizer(tf.reshape(tokens, [-1, shape[2]])), shape[:2])
        nbest = tf.where(skipped[:, None], tf.constant("", tf.string), nbest)
        scores = tf.where(skipped[:, None], tf.zeros_like(out["scores"]), out["scores"])
        return {self.output_name: nbest[:, 0], "score": scores[:, 0], "nbest": nbest, "nbest_scores": scores,
                "too_long": too_long}

    def _greedy(self, strings):
        ids, skipped, too_long = self._ids(strings)
        out = self._decode(ids, "greedy")
        text = tf.where(skipped, tf.constant("", tf.string), self.detokenizer(out["tokens"]))
        return {self.output_name: text, "score": tf.where(skipped, tf.zeros_like(out["scores"]), out["scores"]),
                "too_long": too_long}

    def warmup_inputs(self):
        sources = self.warmup_sources or ["a"]
        half = max(1, len(sources) // 2)
        ids = self.tokenizer(tf.constant(sources[:2])).numpy()[:, : self.max_input_length]
        return {
            "serving_default": {self.input_name: np.array(sources[:half], object)},
            "greedy": {self.input_name: np.array(sources[half:] or sources, object)},
            "tokens": {"input_ids": ids if ids.shape[1] else np.zeros((len(ids), 1), np.int32)},
        }
