"""`TextSeq2Seq`: an `EncoderDecoder` with its source and target vocabularies, saved as one directory.

A model directory holds:

    seq2seq.json              settings (tokenization, length limit, decoding defaults, model config)
    model.keras               the EncoderDecoder or EncoderDecoderEnsemble (Keras format, loaded
                              with safe_mode=True)
    source_vocabulary.txt     input vocabulary (one token a line)
    target_vocabulary.txt     output vocabulary

`TextSeq2Seq.serving_module()` builds `keras_seq.export.Seq2SeqServingModule`: strings in, strings
out, tokenization and decoding inside the graph. Applications (`keras_seq.g2p.G2P`) subclass it
and change the file names, the signature names and how outputs are returned.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import numpy as np

from keras_seq.models.ensemble import EncoderDecoderEnsemble
from keras_seq.models.seq2seq import EncoderDecoder
from keras_seq.text import (
    END_ID,
    PAD_ID,
    START_ID,
    Vocabulary,
    build_vocabulary,
    encode_sources,
    join_tokens,
    sequence_scores,
    split_text,
)

__all__ = ["TextSeq2Seq", "examples_from_pairs"]


def examples_from_pairs(pairs, target_split="chars"):
    """``[(source, [target string, ...])]`` (`keras_seq.text.read_pairs`) as
    ``[(source, [target tokens, ...])]``, the targets split with `target_split`."""
    return [(source, [tuple(split_text(t, target_split)) for t in targets]) for source, targets in pairs]


def bucketed(ids):
    """Source ids padded (with `PAD_ID`) to one of a few shapes: the rows to a power of two (to
    a multiple of 256 beyond 256), the columns to a multiple of 4.

    A decoder compiled by XLA for each input shape (`_jax_decoder`) so compiles a bounded set of
    programs however many calls come, instead of one per batch size and source length. The padding
    changes nothing in the real rows (the encoder masks it; the extra rows are decoded and dropped)
    but costs some speed once everything is compiled: a G2P student decoding the 5,447 dev words
    on 2 CPU cores, JAX backend, in one process: 12.8-14.5 thousand words/s so against 14.7-16.5
    unpadded, and 1,554 against 1,097 on the first call, which compiles (bench/RESULTS.md).
    """
    rows, width = ids.shape
    padded_rows = 1 << max(rows - 1, 0).bit_length() if rows <= 256 else -(-rows // 256) * 256
    padded = np.full((padded_rows, -(-width // 4) * 4), PAD_ID, dtype=ids.dtype)
    padded[:rows, :width] = ids
    return padded


def _jax_decoder(model, kwargs):
    """``ids -> generate(ids, **kwargs)`` compiled with `jax.jit`, the ids padded to a few shapes
    (`bucketed`; one program per shape) and the outputs cut back to the ids' rows.

    The model's variables are arguments of the compiled function (a `keras.StatelessScope`
    maps each variable to them), not constants captured at trace time: the function decodes
    with the weights the model has *when it is called* (after every epoch of training) without
    tracing again. Mesh-replicated variables (`keras.distribution.DataParallel`) pass as they are.
    """
    import jax

    variables = list(model.variables)

    def decode(values, ids):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return model.generate(ids, **kwargs)

    jitted = jax.jit(decode)

    def call(ids):
        out = jitted([v.value for v in variables], bucketed(np.asarray(ids)))
        return {key: value[: len(ids)] for key, value in out.items()}

    return call


class TextSeq2Seq:
    """A string-to-string model: book-cell encoder-decoder plus tokenization on both sides.

    Args:
        model: An `EncoderDecoder` over the two vocabularies' ids, or an
            `EncoderDecoderEnsemble` of them (see `ensemble`).
        source_vocabulary: Input `Vocabulary` (with ``<pad>`` and ``<unk>``).
        target_vocabulary: Output `Vocabulary` (also ``<s>`` and ``</s>``).
        source_split, target_split: ``"chars"`` or ``"words"`` (see `keras_seq.text.split_text`).
        lowercase: Lower-case sources before splitting them.
        max_input_length: The most source tokens the model reads; a longer source is an error
            (`SourceTooLongError`) in Python and a ``too_long`` row when served, never cut.
        beam_width: Default beam width of `predict` and of the exported ``serving_default``.
    """

    #: Written in the settings file; `load` checks it.
    FORMAT = "keras-seq-seq2seq/1"
    SETTINGS_FILE, MODEL_FILE = "seq2seq.json", "model.keras"
    SOURCE_FILE, TARGET_FILE = "source_vocabulary.txt", "target_vocabulary.txt"
    #: Names of the served string input and best output.
    INPUT_NAME, OUTPUT_NAME = "inputs", "outputs"
    #: Names of the two scores `score` returns (sequence error rate, token error rate).
    METRICS = ("ser", "ter")
    FIXED_SETTINGS = {}  # settings a subclass does not let callers choose

    def __init__(self, model, source_vocabulary, target_vocabulary, *, source_split="chars", target_split="chars",
                 lowercase=False, max_input_length=64, beam_width=4):
        self.model = model
        self.source_vocabulary, self.target_vocabulary = source_vocabulary, target_vocabulary
        self.source_split, self.target_split, self.lowercase = source_split, target_split, bool(lowercase)
        self.max_input_length, self.beam_width = int(max_input_length), int(beam_width)

    # -- creating and combining ----------------------------------------------------------------
    @classmethod
    def tokenization(cls, source_split="chars", target_split="chars", lowercase=False):
        return {"source_split": source_split, "target_split": target_split, "lowercase": lowercase,
                **cls.FIXED_SETTINGS}

    @classmethod
    def create(cls, examples, *, max_input_length=64, beam_width=4, source_split="chars", target_split="chars",
               lowercase=False, **model_kwargs):
        """A new, untrained model with vocabularies built from `examples`.

        Args:
            examples: ``[(source, [target tokens, ...]), ...]`` (see `examples_from_pairs`).
            source_split, target_split, lowercase, max_input_length, beam_width: As in the class.
            **model_kwargs: `EncoderDecoder` arguments (``units``, ``cell``, ``attention``...);
                ``max_output_length`` defaults to the longest target + 4.
        """
        text = cls.tokenization(source_split, target_split, lowercase)
        sources = build_vocabulary(split_text(s, text["source_split"], text["lowercase"]) for s, _ in examples)
        targets = build_vocabulary((t for _, ts in examples for t in ts), output=True)
        longest = max((len(t) for _, ts in examples for t in ts), default=1)
        model_kwargs.setdefault("max_output_length", longest + 4)
        model = EncoderDecoder(len(sources), len(targets), start_token=START_ID, end_token=END_ID, pad_token=PAD_ID,
                               **model_kwargs)
        model.build()
        return cls(model, sources, targets, max_input_length=max_input_length, beam_width=beam_width, **text)

    @classmethod
    def settings_from_config(cls, config):
        """The application's own settings of `create` taken from a training config (none here)."""
        return {}

    def _settings(self):
        return {"source_split": self.source_split, "target_split": self.target_split, "lowercase": self.lowercase,
                "max_input_length": self.max_input_length, "beam_width": self.beam_width}

    #: How messages name the two vocabularies.
    VOCABULARY_NAMES = ("source", "target")

    def _same_as(self, other, index=1):
        """Raises ValueError unless `other` (model `index`) has this model's vocabularies and tokenization."""
        named = dict(zip(("source_vocabulary", "target_vocabulary"), (f"{n} vocabulary" for n in self.VOCABULARY_NAMES)))
        for name in ("source_vocabulary", "target_vocabulary", "source_split", "target_split", "lowercase"):
            if getattr(other, name) != getattr(self, name):
                what = named.get(name, name.replace("_", " "))
                raise ValueError(f"model {index} has another {what} than model 0: combined models must share their "
                                 "vocabularies and tokenization.")

    def _with_model(self, model, **settings):
        return type(self)(model, self.source_vocabulary, self.target_vocabulary,
                          **{**{k: v for k, v in self._settings().items() if k in self._init_keys()}, **settings})

    @classmethod
    def _init_keys(cls):
        return ("source_split", "target_split", "lowercase", "max_input_length", "beam_width")

    @classmethod
    def ensemble(cls, members, beam_width=None):
        """One model that decodes with several trained ones (`EncoderDecoderEnsemble`).

        The members must share vocabularies and tokenization; the ensemble keeps the first
        member's length limit and (unless `beam_width` is given) its beam width. Members that are
        ensembles themselves contribute their own members.
        """
        members = list(members)
        if len(members) < 2:
            raise ValueError(f"An ensemble needs at least two models, got {len(members)}.")
        for i, member in enumerate(members[1:], start=1):
            members[0]._same_as(member, i)
        models = [m for member in members for m in
                  (member.model.members if isinstance(member.model, EncoderDecoderEnsemble) else [member.model])]
        return members[0]._with_model(EncoderDecoderEnsemble(models), beam_width=beam_width or members[0].beam_width)

    @classmethod
    def average(cls, members):
        """One model whose weights are the element-wise mean of several of the same model's weights.

        Averaging the weights of a run's last epochs (checkpoint averaging) usually scores a little
        better than any one of them. The members must have the same model configuration and
        vocabularies (epochs of one run do); integer state (a seed) is the first member's.
        """
        members = list(members)
        if len(members) < 2:
            raise ValueError(f"Averaging needs at least two models, got {len(members)}.")
        if any(isinstance(m.model, EncoderDecoderEnsemble) for m in members):
            raise ValueError("An ensemble's weights cannot be averaged; average the models it was made from.")
        first = members[0]
        for i, member in enumerate(members[1:], start=1):
            first._same_as(member, i)
            if member.model.get_config() != first.model.get_config():
                raise ValueError(f"Model {i} has another model configuration than model 0: "
                                 "only weights of the same model can be averaged.")
        model = EncoderDecoder.from_config(first.model.get_config())
        model.build()
        member_variables = [m.model.variables for m in members]  # a property, rebuilt per call
        for i, variable in enumerate(model.variables):
            values = [variables[i] for variables in member_variables]
            if any(tuple(v.shape) != tuple(variable.shape) for v in values):  # a model built differently
                raise ValueError(f"The models' variable {variable.path} differs in shape: {[tuple(v.shape) for v in values]}.")
            if keras.backend.is_float_dtype(variable.dtype):
                variable.assign(np.mean([keras.ops.convert_to_numpy(v).astype(np.float64) for v in values], axis=0))
            else:
                variable.assign(values[0])
        return first._with_model(model)

    # -- Python-side use -----------------------------------------------------------------------
    def encode(self, sources):
        """int32 ``(B, T)`` source ids, T the longest source; raises `SourceTooLongError`."""
        return encode_sources(sources, self.source_vocabulary, split=self.source_split, lowercase=self.lowercase,
                              max_length=self.max_input_length)

    def output(self, tokens):
        """What `predict` returns for one decoded token sequence: the joined string."""
        return join_tokens(tokens, self.target_split)

    def predict(self, sources, method="beam", beam_width=None, num_results=1, batch_size=256, max_length=None):
        """The outputs of `sources`: for each, a list of `num_results` ``(output, score)``.

        ``output`` is `output(tokens)` (the joined string here), ``score`` its log-probability.
        `method` is "beam" or "greedy". An empty source gets ``[(output(()), 0.0)]``, not a guess.
        `max_length` limits the outputs' length (default: the model's ``max_output_length``).

        Raises:
            SourceTooLongError: If a source has more than `max_input_length` tokens.
        """
        return [[(self.output(tokens), score) for tokens, score in results]
                for results in self.predict_tokens(sources, method, beam_width, num_results, batch_size, max_length)]

    def predict_tokens(self, sources, method="beam", beam_width=None, num_results=1, batch_size=256, max_length=None):
        """As `predict`, with each output as its tuple of tokens.

        The sources are decoded `batch_size` at a time in order of length, so that a batch pads
        little and its loop stops early; the results come back in the sources' order.
        """
        sources = list(sources)
        ids = self.encode(sources)  # all at once: a too-long source fails before any decoding
        lengths = (ids != PAD_ID).sum(axis=1)
        order = np.argsort(lengths, kind="stable")
        results = [None] * len(sources)
        for start in range(0, len(sources), batch_size):
            rows = order[start: start + batch_size]
            batch = ids[rows, : max(1, int(lengths[rows].max(initial=1)))]
            out = self.decode_ids(batch, method, beam_width, num_results, max_length)
            tokens, scores = out["tokens"], out["scores"]
            for i, row in enumerate(rows):
                if not lengths[row]:
                    results[row] = [((), 0.0)]
                    continue
                results[row] = [(tuple(self.target_vocabulary.decode(tokens[i, k])), float(scores[i, k]))
                                for k in range(tokens.shape[1])]
        return results

    def decode_ids(self, encoder_inputs, method="beam", beam_width=None, num_results=1, max_length=None):
        """NumPy `tokens` (B, K, L) and `scores` (B, K) for source ids, through the compiled loop."""
        if max_length is not None and not 1 <= max_length <= self.model.max_output_length:
            raise ValueError(f"`max_length` must be between 1 and {self.model.max_output_length} (the model's "
                             f"max_output_length). Received: max_length={max_length!r}")
        fn = self._compiled(method, beam_width or self.beam_width, num_results, max_length)
        out = fn(np.asarray(encoder_inputs, np.int32))
        tokens, scores = np.asarray(out["tokens"]), np.asarray(out["scores"])
        if tokens.ndim == 2:
            tokens, scores = tokens[:, None], scores[:, None]
        return {"tokens": tokens, "scores": scores}

    def _compiled(self, method, beam_width, num_results, max_length=None):
        cache = self.__dict__.setdefault("_compiled_fns", {})
        key = (method, beam_width, num_results, max_length)
        if key not in cache:
            kwargs = {"method": method, "max_length": max_length}
            if method == "beam":
                kwargs.update(beam_width=beam_width, num_results=num_results)
            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                fn = tf.function(lambda ids: self.model.generate(ids, **kwargs),
                                 input_signature=[tf.TensorSpec([None, None], tf.int32)], reduce_retracing=True)
                cache[key] = lambda ids: {k: v.numpy() for k, v in fn(tf.constant(ids)).items()}
            elif keras.backend.backend() == "jax":
                cache[key] = _jax_decoder(self.model, kwargs)
            else:  # the model's own backend decodes (no TensorFlow graph around the model)
                cache[key] = lambda ids: self.model.generate(ids, **kwargs)
        return cache[key]

    def score(self, hypotheses, references):
        """``{name: value}`` of `METRICS` for token sequences against lists of references."""
        scores = sequence_scores(hypotheses, references)
        return dict(zip(self.METRICS, (scores.error_rate, scores.token_error_rate)))

    # -- saving --------------------------------------------------------------------------------
    def save(self, directory):
        """Writes the model directory (files replaced one by one, each written then renamed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        settings = {"format": self.FORMAT, **self._settings(), "model": self.model.get_config()}
        for key in self.FIXED_SETTINGS:
            settings.pop(key, None)
        tmp = directory / (self.MODEL_FILE + ".tmp.keras")
        self.model.save(tmp)
        os.replace(tmp, directory / self.MODEL_FILE)
        for name, vocabulary in [(self.SOURCE_FILE, self.source_vocabulary), (self.TARGET_FILE, self.target_vocabulary)]:
            vocabulary.save(directory / (name + ".tmp"))
            os.replace(directory / (name + ".tmp"), directory / name)
        (directory / (self.SETTINGS_FILE + ".tmp")).write_text(json.dumps(settings, indent=2))
        os.replace(directory / (self.SETTINGS_FILE + ".tmp"), directory / self.SETTINGS_FILE)

    @classmethod
    def is_model_directory(cls, directory):
        return (Path(directory) / cls.SETTINGS_FILE).is_file()

    @classmethod
    def load(cls, directory):
        """Loads a model directory written by `save` (the Keras file with safe_mode=True)."""
        directory = Path(directory)
        files = (cls.SETTINGS_FILE, cls.MODEL_FILE, cls.SOURCE_FILE, cls.TARGET_FILE)
        missing = [f for f in files if not (directory / f).exists()]
        if missing:
            raise FileNotFoundError(f"{directory} is not a keras-seq {cls.__name__} model directory: missing {missing}.")
        settings = json.loads((directory / cls.SETTINGS_FILE).read_text())
        model = keras.saving.load_model(directory / cls.MODEL_FILE, safe_mode=True)
        return cls(model, Vocabulary.load(directory / cls.SOURCE_FILE), Vocabulary.load(directory / cls.TARGET_FILE),
                   **{k: settings[k] for k in cls._init_keys() if k in settings})

    # -- serving -------------------------------------------------------------------------------
    def warmup_sources(self):
        """A few inputs for TF Serving's warmup file: sources made of the vocabulary's tokens."""
        tokens = self.source_vocabulary.tokens[self.source_vocabulary.num_reserved:][:12] or ["a"]
        joined = [join_tokens(tokens[i: i + 4], self.source_split) for i in range(0, len(tokens), 4)]
        return [s for s in joined if len(split_text(s, self.source_split)) <= self.max_input_length] or ["a"]

    def serving_module(self, beam_width=None, shards=2):
        """A `keras_seq.export.Seq2SeqServingModule` (see there for its signatures)."""
        from keras_seq.export.seq2seq import Seq2SeqServingModule
        from keras_seq.text.tokenizers import Detokenizer, Tokenizer

        return Seq2SeqServingModule(
            self.model, Tokenizer(self.source_vocabulary, split=self.source_split, lowercase=self.lowercase),
            Detokenizer(self.target_vocabulary, separator=join_tokens(["", ""], self.target_split)),
            max_input_length=self.max_input_length, beam_width=beam_width or self.beam_width, shards=shards,
            input_name=self.INPUT_NAME, output_name=self.OUTPUT_NAME, warmup_sources=self.warmup_sources(),
        )

    @classmethod
    def load_for_export(cls, directory, shards=2):
        """What `keras_seq.export` writes for a model directory: module, signatures, warmup."""
        module = cls.load(directory).serving_module(shards=shards)
        return {"module": module, "signatures": module.signatures(), "warmup_requests": module.warmup_inputs()}

