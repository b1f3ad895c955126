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
- ``decode``: ``inputs`` and the per-request settings ``beam_width`` int32 ``[B]`` (1 to the
  export's ``max_beam_width``), ``num_results`` int32 ``[B]`` (1 to the row's beam width),
  ``max_length`` int32 ``[B]`` (1 to the model's ``max_output_length``) and ``length_penalty``
  float ``[B]`` (>= 0) -> the outputs of ``serving_default``; ``nbest`` has ``max_beam_width``
  columns, those past a row's ``num_results`` empty with score 0.
- ``sample``: ``inputs``, ``temperature`` float ``[B]`` (<= 0: greedy), ``top_k`` int32 ``[B]``
  (0: no restriction), ``seed`` int32 ``[B]`` (< 0: a fresh random seed) and ``max_length`` ->
  ``outputs``, ``score`` (the sample's log-probability under the model), ``too_long``.
- ``tokens``: ``input_ids`` int32 ``[B, T]`` and ``input_lengths`` int32 ``[B]`` -> ``output_ids``
  int32 ``[B, K, L]``, ``lengths`` int32 ``[B, K]``, ``scores`` float ``[B, K]`` (beam search).
- ``encode``: ``inputs`` -> the decoder's initial state as named tensors (``rnn_<layer>_<i>``,
  with attention ``memory``, ``memory_mask`` and ``keys``, with a step context ``context``; an
  ensemble's names carry the member's index), ``start_tokens`` and ``end_tokens`` int32 ``[B]``,
  ``too_long``.
- ``decode_step``: the state tensors of ``encode`` and ``previous_tokens`` int32 ``[B]`` ->
  ``log_probs`` float ``[B, V]`` (the next token's log-probabilities) and the new ``rnn_*``
  tensors (the others do not change). A client runs its own greedy, beam or constrained search
  with these two (for beam search it reorders the rows of the state itself).
- ``detokenize``: ``output_ids`` int32 ``[B, L]`` -> ``outputs`` string ``[B]``.

`TokenServingModule` has ``serving_default`` and ``greedy`` over ``input_ids`` and
``input_lengths`` (as ``tokens`` above), ``decode`` and ``sample`` over them, ``encode`` (ids in)
and ``decode_step``.

Per-request settings are one value per row, so that requests that choose different settings
still merge in one server-side batch; each row gets the result it gets alone. The decoding loop is
one compiled loop over the export's maxima with per-row masks (`keras_seq.decoding`), not one
graph per setting. Every setting is optional in TF Serving's sense: the SignatureDef lists a
default (the export's setting, one value), which TF Serving feeds when a request leaves the
input out, and one value applies to every row. Under server-side batching every input of a
request must have its number of rows, so there a client sends each setting for every row
(`keras_seq.serving.Client.predict` does); so does ``input_lengths`` (default -1: the row's
length is its number of non-pad ids, as before it was an input). Out-of-range settings fail
with INVALID_ARGUMENT and a message naming the setting and its range. ``serving_default``,
``greedy`` and the string inputs keep the inputs they always had, so their clients and
batching are unchanged.

``input_lengths`` makes ``tokens`` safe under any padding: ids past a row's length are ignored,
whatever their value, so a batcher that pads rows of different widths (TF Serving's
``pad_variable_length_inputs`` pads with each request's first id) changes no result.

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

__all__ = ["TokenServingModule", "Seq2SeqServingModule", "default_max_input_bytes", "state_names"]


def default_max_input_bytes(max_input_length, split):
    """The byte limit of a row: 4 bytes per character (UTF-8's longest), 32 per word token."""
    return int(max_input_length) * (4 if split == "chars" else 32)


def _check_positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1. Received: {name}={value!r}")
    return value


def _vector(value, dtype):
    """A one-value default of a per-row input (see the module docstring)."""
    return tf.constant([value], dtype)


def _per_row(value, batch_size, name):
    """A per-row setting ``[B]`` from an input of one value or one value per row."""
    n = tf.shape(value)[0]
    check = tf.debugging.Assert(
        tf.logical_or(tf.equal(n, 1), tf.equal(n, batch_size)),
        [f"`{name}` must have one value, or one per row of the request; rows:", batch_size, "values:", n])
    with tf.control_dependencies([check]):
        return tf.broadcast_to(tf.identity(value), [batch_size])


def _check_range(value, name, low, high, what, given=None):
    """`value`, after an INVALID_ARGUMENT naming the setting and its range unless ``low <= value
    <= high`` in every row (`given`: the values to show, default `value`)."""
    ok = tf.reduce_all(tf.logical_and(value >= low, value <= high))
    check = tf.debugging.Assert(ok, [f"`{name}` must be {what}; received:", value if given is None else given],
                                summarize=16)
    with tf.control_dependencies([check]):
        return tf.identity(value)


def state_names(state, prefix=""):
    """``{name: tensor}`` of a nested decoder state: ``rnn_0_1`` is the second state of decoder
    layer 0, ``memory`` the attention's memory, ``members_1_memory`` the second ensemble member's."""
    if isinstance(state, dict):
        return {n: t for key, value in state.items() for n, t in state_names(value, f"{prefix}{key}_").items()}
    if isinstance(state, (list, tuple)):
        return {n: t for i, value in enumerate(state) for n, t in state_names(value, f"{prefix}{i}_").items()}
    return {prefix[:-1]: state}


def _state_from_names(template, named, prefix=""):
    """The nested state of `template`'s structure with the tensors of `named` (see `state_names`)."""
    if isinstance(template, dict):
        return {key: _state_from_names(value, named, f"{prefix}{key}_") for key, value in template.items()}
    if isinstance(template, (list, tuple)):
        return [_state_from_names(value, named, f"{prefix}{i}_") for i, value in enumerate(template)]
    return named[prefix[:-1]]


#: The per-request settings of ``decode`` and ``sample``, one value per row.
DECODE_SETTINGS = (tf.TensorSpec([None], tf.int32, name="beam_width"), tf.TensorSpec([None], tf.int32, name="num_results"),
                   tf.TensorSpec([None], tf.int32, name="max_length"),
                   tf.TensorSpec([None], tf.float32, name="length_penalty"))
SAMPLE_SETTINGS = (tf.TensorSpec([None], tf.float32, name="temperature"), tf.TensorSpec([None], tf.int32, name="top_k"),
                   tf.TensorSpec([None], tf.int32, name="seed"), tf.TensorSpec([None], tf.int32, name="max_length"))


class TokenServingModule(tf.Module):
    """Token ids in, decoded token ids out; per-request settings and step-wise decoding.

    Signatures: ``serving_default`` (beam search), ``greedy``, ``decode`` (beam search with
    per-row settings), ``sample``, ``encode`` and ``decode_step``, each over ``input_ids`` int32
    ``[B, T]`` with ``input_lengths`` int32 ``[B]`` (see the module docstring).

    Args:
        model: An `EncoderDecoder` (or `EncoderDecoderEnsemble`): anything with
            ``generate(ids, method=..., beam_width=...)``, ``initial_decoder_state`` and
            ``decoder_step``.
        beam_width: Beam width of ``serving_default`` and the default of ``decode``.
        shards: Decode a batch of at least ``2 * shards`` rows as ``shards`` parts side by side.
        max_beam_width: The largest beam width a request of ``decode`` may ask for (default
            `beam_width`); ``decode`` always runs this many beams, masked per row.
    """

    def __init__(self, model, beam_width=4, shards=2, max_beam_width=None):
        super().__init__()
        self.model = model
        self.beam_width = _check_positive("beam_width", beam_width)
        self.max_beam_width = _check_positive("max_beam_width", beam_width if max_beam_width is None else max_beam_width)
        if self.beam_width > self.max_beam_width:
            raise ValueError(f"`beam_width` ({beam_width}) must be <= `max_beam_width` ({max_beam_width}).")
        self.max_length = int(model.max_output_length)
        self.shards = _check_positive("shards", shards)
        self._state_template, self._state_specs = self._trace_state()
        ids = tf.TensorSpec([None, None], tf.int32, name="input_ids")
        lengths = tf.TensorSpec([None], tf.int32, name="input_lengths")

        def beam(input_ids, input_lengths=_vector(-1, tf.int32)):
            return self._tokens(input_ids, input_lengths)

        def greedy(input_ids, input_lengths=_vector(-1, tf.int32)):
            return self._greedy_tokens(input_ids, input_lengths)

        def encode(input_ids, input_lengths=_vector(-1, tf.int32)):
            return self._encode(self._ids_with_lengths(input_ids, input_lengths))

        d = self._setting_defaults()

        def decode(input_ids, input_lengths=_vector(-1, tf.int32), beam_width=d["beam_width"],
                   num_results=d["num_results"], max_length=d["max_length"], length_penalty=d["length_penalty"]):
            ids = self._ids_with_lengths(input_ids, input_lengths)
            return self._token_outputs(self._decode_with_settings(ids, beam_width, num_results, max_length,
                                                                  length_penalty))

        def sample(input_ids, input_lengths=_vector(-1, tf.int32), temperature=d["temperature"], top_k=d["top_k"],
                   seed=d["seed"], max_length=d["max_length"]):
            ids = self._ids_with_lengths(input_ids, input_lengths)
            return self._token_outputs(self._sample_with_settings(ids, temperature, top_k, seed, max_length))

        self.serving_default = tf.function(beam, input_signature=[ids, lengths])
        self.greedy = tf.function(greedy, input_signature=[ids, lengths])
        self.decode = tf.function(decode, input_signature=[ids, lengths, *DECODE_SETTINGS])
        self.sample = tf.function(sample, input_signature=[ids, lengths, *SAMPLE_SETTINGS])
        self.encode = tf.function(encode, input_signature=[ids, lengths])
        self.decode_step = self._decode_step_signature()

    def signatures(self):
        return {"serving_default": self.serving_default, "greedy": self.greedy, "decode": self.decode,
                "sample": self.sample, "encode": self.encode, "decode_step": self.decode_step}

    # -- inputs --------------------------------------------------------------------------------
    @staticmethod
    def _at_least_one_column(ids):
        """Pads `ids` to one column when it has none, so that an empty batch, or a batch of empty
        rows, still decodes. A batch with tokens keeps its width: every extra column would be one
        more step of the encoder."""
        return tf.pad(ids, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(ids)[1])]])

    def _ids_with_lengths(self, input_ids, input_lengths):
        """The ids as the model reads them: each row's first ``input_lengths`` ids, then pads, as
        wide as the longest row (a batcher's padding, of any value and width, is cut away). A
        length of -1 counts the row's non-pad ids."""
        batch_size, width = tf.shape(input_ids)[0], tf.shape(input_ids)[1]
        lengths = _per_row(input_lengths, batch_size, "input_lengths")
        lengths = _check_range(lengths, "input_lengths", -1, width,
                               "between 0 and the width of `input_ids` (or -1: its non-pad ids)")
        pad = self.model.pad_token
        counted = tf.reduce_sum(tf.cast(tf.not_equal(input_ids, pad), tf.int32), axis=1)
        lengths = tf.where(lengths < 0, counted, lengths)
        ids = tf.where(tf.range(width)[None, :] < lengths[:, None], input_ids, tf.fill(tf.shape(input_ids), pad))
        return self._at_least_one_column(ids[:, : tf.reduce_max(tf.concat([lengths, [0]], axis=0))])

    # -- decoding ------------------------------------------------------------------------------
    def _decode(self, ids, method, settings=None, rows=None):
        """`model.generate` over `ids`, in shards; `settings` are static, `rows` per-row tensors."""
        settings = dict(settings or ({"beam_width": self.beam_width} if method == "beam" else {}))
        rows = rows or {}

        def decode(part, part_rows):
            return self.model.generate(part, method=method, **settings, **part_rows)

        if self.shards == 1:
            return decode(ids, rows)
        batch_size = tf.shape(ids)[0]

        def in_shards():
            bounds = [batch_size * k // self.shards for k in range(self.shards + 1)]
            outputs = [decode(ids[start:end], {k: v[start:end] for k, v in rows.items()})
                       for start, end in itertools.pairwise(bounds)]
            return tf.nest.map_structure(lambda *parts: tf.concat(parts, axis=0), *outputs)

        return tf.cond(batch_size >= 2 * self.shards, in_shards, lambda: decode(ids, rows))

    def _decode_with_settings(self, ids, beam_width, num_results, max_length, length_penalty):
        """Beam search with per-row settings over the export's maxima; columns past a row's
        `num_results` hold pads, length 0 and score 0."""
        batch_size = tf.shape(ids)[0]
        width = _check_range(_per_row(beam_width, batch_size, "beam_width"), "beam_width", 1, self.max_beam_width,
                             f"between 1 and {self.max_beam_width} (the largest of this export)")
        given = _per_row(num_results, batch_size, "num_results")
        results = tf.where(given == 0, width, given)
        results = _check_range(results, "num_results", 1, width, "between 1 and the beam_width of its row (0: all)",
                               given)
        lengths = _check_range(_per_row(max_length, batch_size, "max_length"), "max_length", 1, self.max_length,
                               f"between 1 and {self.max_length} (the largest of this export)")
        alpha = _per_row(length_penalty, batch_size, "length_penalty")
        alpha = _check_range(alpha, "length_penalty", 0.0, float("inf"), "a number >= 0")
        out = self._decode(ids, "beam", {"beam_width": self.max_beam_width, "max_length": self.max_length},
                           {"beam_widths": width, "max_lengths": lengths, "length_penalty": alpha})
        keep = tf.range(self.max_beam_width)[None, :] < results[:, None]  # (B, K)
        return {"tokens": tf.where(keep[:, :, None], out["tokens"], self.model.pad_token),
                "lengths": tf.where(keep, out["lengths"], 0), "scores": tf.where(keep, out["scores"], 0.0)}

    def _sample_with_settings(self, ids, temperature, top_k, seed, max_length):
        batch_size = tf.shape(ids)[0]
        temperature = _check_range(_per_row(temperature, batch_size, "temperature"), "temperature", float("-inf"),
                                   float("inf"), "a number (<= 0: greedy)")
        vocabulary_size = self.model.output_vocabulary_size
        top_k = _check_range(_per_row(top_k, batch_size, "top_k"), "top_k", 0, vocabulary_size,
                             f"between 0 (no restriction) and {vocabulary_size} (the size of the output vocabulary)")
        seed = _per_row(seed, batch_size, "seed")
        fresh = tf.random.uniform([batch_size], 0, 2**31 - 1, dtype=tf.int32)
        seed = tf.where(seed < 0, fresh, seed)
        lengths = _check_range(_per_row(max_length, batch_size, "max_length"), "max_length", 1, self.max_length,
                               f"between 1 and {self.max_length} (the largest of this export)")
        return self._decode(ids, "sample", {"max_length": self.max_length},
                            {"temperature": temperature, "top_k": top_k, "seed": seed, "max_lengths": lengths})

    def _setting_defaults(self):
        """Every per-request setting's default: one value, the export's setting (a SignatureDef
        default: tf.saved_model.save records a signature function's tensor defaults)."""
        return {"beam_width": _vector(self.beam_width, tf.int32), "num_results": _vector(0, tf.int32),
                "max_length": _vector(self.max_length, tf.int32), "length_penalty": _vector(0.0, tf.float32),
                "temperature": _vector(1.0, tf.float32), "top_k": _vector(0, tf.int32), "seed": _vector(-1, tf.int32)}

    @staticmethod
    def _token_outputs(out):
        return {"output_ids": out["tokens"], "lengths": out["lengths"], "scores": out["scores"]}

    def _tokens(self, input_ids, input_lengths):
        return self._token_outputs(self._decode(self._ids_with_lengths(input_ids, input_lengths), "beam"))

    def _greedy_tokens(self, input_ids, input_lengths):
        return self._token_outputs(self._decode(self._ids_with_lengths(input_ids, input_lengths), "greedy"))

    # -- step-wise decoding --------------------------------------------------------------------
    def _trace_state(self):
        """The decoder state's structure and a TensorSpec per named tensor (batch and source
        length unknown), from the model's state of two tiny batches."""
        one = self.model.initial_decoder_state(tf.ones([1, 1], tf.int32))
        two = state_names(self.model.initial_decoder_state(tf.ones([1, 2], tf.int32)))
        specs = {}
        for name, tensor in state_names(one).items():
            shape = [None] + [None if a != b else a for a, b in zip(tensor.shape[1:], two[name].shape[1:])]
            specs[name] = tf.TensorSpec(shape, tensor.dtype, name=name)
        return one, specs

    def _encode(self, ids):
        state = state_names(self.model.initial_decoder_state(ids))
        batch_size = tf.shape(ids)[0]
        return {**state, "start_tokens": tf.fill([batch_size], self.model.start_token),
                "end_tokens": tf.fill([batch_size], self.model.end_token)}

    def _decode_step_signature(self):
        def decode_step(previous_tokens, **named):
            state = _state_from_names(self._state_template, named)
            logits, new_state = self.model.decoder_step(previous_tokens, state)
            log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
            return {"log_probs": log_probs, **state_names({"rnn": new_state["rnn"]})}

        return tf.function(decode_step).get_concrete_function(
            previous_tokens=tf.TensorSpec([None], tf.int32, name="previous_tokens"), **self._state_specs)

    def _warmup_settings(self, rows):
        """Every setting of ``decode`` and ``sample`` for `rows` rows (warmup requests are
        checked against the signature's inputs, defaults aside)."""
        def full(value, dtype):
            return np.full(rows, value, dtype)

        return {"decode": {"beam_width": full(self.beam_width, np.int32), "num_results": full(0, np.int32),
                           "max_length": full(self.max_length, np.int32), "length_penalty": full(0.0, np.float32)},
                "sample": {"temperature": full(1.0, np.float32), "top_k": full(0, np.int32), "seed": full(0, np.int32),
                           "max_length": full(self.max_length, np.int32)}}

    def warmup_inputs(self):
        ids = {"input_ids": np.array([[2, 3, 4], [3, 0, 0]], np.int32), "input_lengths": np.array([3, 1], np.int32)}
        settings = self._warmup_settings(2)
        return {"serving_default": ids, "greedy": ids, "decode": {**ids, **settings["decode"]},
                "sample": {**ids, **settings["sample"]}}


class Seq2SeqServingModule(TokenServingModule):
    """Strings in, strings out: tokenization, decoding and detokenization in one graph.

    Args:
        model: An `EncoderDecoder` (or ensemble) over the tokenizer's and detokenizer's ids.
        tokenizer: A `keras_seq.text.Tokenizer` (strings -> ids).
        detokenizer: A `keras_seq.text.Detokenizer` (ids -> strings).
        max_input_length: Rows with more tokens are flagged ``too_long``, not decoded.
        max_input_bytes: Rows with more bytes are flagged ``too_long`` before being split
            (default `default_max_input_bytes`).
        beam_width, shards, max_beam_width: As in `TokenServingModule`.
        input_name, output_name: Names of the string input and the best output.
        warmup_sources: A few representative inputs for TF Serving's warmup file.
    """

    def __init__(self, model, tokenizer, detokenizer, *, max_input_length, max_input_bytes=None, beam_width=4,
                 shards=2, max_beam_width=None, input_name="inputs", output_name="outputs", warmup_sources=()):
        super().__init__(model, beam_width, shards, max_beam_width)
        self.tokenizer, self.detokenizer = tokenizer, detokenizer
        self.max_input_length = _check_positive("max_input_length", max_input_length)
        if max_input_bytes is None:
            max_input_bytes = default_max_input_bytes(max_input_length, tokenizer.split)
        self.max_input_bytes = _check_positive("max_input_bytes", max_input_bytes)
        self.input_name, self.output_name = input_name, output_name
        self.warmup_sources = [str(s) for s in warmup_sources]
        strings = tf.TensorSpec([None], tf.string, name=input_name)
        ids = tf.TensorSpec([None, None], tf.int32, name="input_ids")
        lengths = tf.TensorSpec([None], tf.int32, name="input_lengths")
        output_ids = tf.TensorSpec([None, None], tf.int32, name="output_ids")
        d = self._setting_defaults()

        def decode(strings, beam_width=d["beam_width"], num_results=d["num_results"], max_length=d["max_length"],
                   length_penalty=d["length_penalty"]):
            ids, skipped, too_long = self._ids(strings)
            out = self._decode_with_settings(ids, beam_width, num_results, max_length, length_penalty)
            return self._nbest_outputs(out, skipped, too_long)

        def sample(strings, temperature=d["temperature"], top_k=d["top_k"], seed=d["seed"], max_length=d["max_length"]):
            ids, skipped, too_long = self._ids(strings)
            return self._best_outputs(self._sample_with_settings(ids, temperature, top_k, seed, max_length), skipped,
                                      too_long)

        def tokens(input_ids, input_lengths=_vector(-1, tf.int32)):
            return self._tokens(input_ids, input_lengths)

        self.serving_default = tf.function(self._beam, input_signature=[strings])
        self.greedy = tf.function(self._greedy, input_signature=[strings])
        self.decode = tf.function(decode, input_signature=[strings, *DECODE_SETTINGS])
        self.sample = tf.function(sample, input_signature=[strings, *SAMPLE_SETTINGS])
        self.tokens = tf.function(tokens, input_signature=[ids, lengths])
        self.encode = tf.function(self._encode_strings, input_signature=[strings])
        self.detokenize = tf.function(self._detokenize, input_signature=[output_ids])

    def signatures(self):
        return {"serving_default": self.serving_default, "greedy": self.greedy, "decode": self.decode,
                "sample": self.sample, "tokens": self.tokens, "encode": self.encode, "decode_step": self.decode_step,
                "detokenize": self.detokenize}

    def _ids(self, strings):
        """(ids [B, T<=max], skipped [B], too_long [B]): rows too long or empty become pads."""
        over_bytes = tf.strings.length(strings) > self.max_input_bytes
        ids = self.tokenizer(tf.where(over_bytes, "", strings))  # never split an oversized row
        lengths = tf.reduce_sum(tf.cast(ids != 0, tf.int32), axis=1)
        too_long = over_bytes | (lengths > self.max_input_length)
        ids = tf.where(too_long[:, None], tf.zeros_like(ids), ids)[:, : self.max_input_length]
        return self._at_least_one_column(ids), too_long | (lengths == 0), too_long

    def _nbest_outputs(self, out, skipped, too_long):
        tokens = out["tokens"]  # (B, K, L)
        shape = tf.shape(tokens)
        nbest = tf.reshape(self.detokenizer(tf.reshape(tokens, [-1, shape[2]])), shape[:2])
        nbest = tf.where(skipped[:, None], tf.constant("", tf.string), nbest)
        scores = tf.where(skipped[:, None], tf.zeros_like(out["scores"]), out["scores"])
        return {self.output_name: nbest[:, 0], "score": scores[:, 0], "nbest": nbest, "nbest_scores": scores,
                "too_long": too_long}

    def _best_outputs(self, out, skipped, too_long):
        text = tf.where(skipped, tf.constant("", tf.string), self.detokenizer(out["tokens"]))
        return {self.output_name: text, "score": tf.where(skipped, tf.zeros_like(out["scores"]), out["scores"]),
                "too_long": too_long}

    def _beam(self, strings):
        ids, skipped, too_long = self._ids(strings)
        return self._nbest_outputs(self._decode(ids, "beam"), skipped, too_long)

    def _greedy(self, strings):
        ids, skipped, too_long = self._ids(strings)
        return self._best_outputs(self._decode(ids, "greedy"), skipped, too_long)

    def _encode_strings(self, strings):
        ids, _, too_long = self._ids(strings)
        return {**self._encode(ids), "too_long": too_long}

    def _detokenize(self, output_ids):
        return {self.output_name: self.detokenizer(output_ids)}

    def warmup_inputs(self):
        sources = self.warmup_sources or ["a"]
        half = max(1, len(sources) // 2)
        ids = self.tokenizer(tf.constant(sources[:2])).numpy()[:, : self.max_input_length]
        ids = ids if ids.shape[1] else np.zeros((len(ids), 1), np.int32)
        rows = np.array(sources[:2], object)
        settings = self._warmup_settings(len(rows))
        return {
            "serving_default": {self.input_name: np.array(sources[:half], object)},
            "greedy": {self.input_name: np.array(sources[half:] or sources, object)},
            "decode": {self.input_name: rows, **settings["decode"]},
            "sample": {self.input_name: rows, **settings["sample"]},
            "tokens": {"input_ids": ids, "input_lengths": (ids != 0).sum(axis=1).astype(np.int32)},
        }
