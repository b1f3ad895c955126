"""The G2P model: an `EncoderDecoder` (or an ensemble of them) with its vocabularies, saved as one
directory.

A model directory holds:

    g2p.json          settings (model config, length limits, decoding defaults)
    model.keras       the EncoderDecoder or EncoderDecoderEnsemble (Keras format, loaded with
                      safe_mode=True)
    characters.txt    input vocabulary (one token per line)
    phonemes.txt      output vocabulary

`G2P.serving_module()` builds the tf.Module that `keras_seq.export` writes for TF Serving: raw words
in (DT_STRING [-1]), pronunciations out, tokenization and decoding inside the graph.
"""

import itertools
import json
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_seq.g2p.data import (
    END_ID,
    PAD_ID,
    START_ID,
    CharTokenizer,
    PhonemeDetokenizer,
    Vocabulary,
    build_char_vocabulary,
    build_phoneme_vocabulary,
    encode_word,
)
from keras_seq.models.ensemble import EncoderDecoderEnsemble
from keras_seq.models.seq2seq import EncoderDecoder

SETTINGS_FILE, MODEL_FILE = "g2p.json", "model.keras"
CHARACTERS_FILE, PHONEMES_FILE = "characters.txt", "phonemes.txt"
WARMUP_WORDS = ["hello", "world", "keras", "sequence", "pronunciation", "a", "zyzzyva", "naïve"]


def _check_same_vocabularies(members):
    """Raises ValueError unless every G2P of `members` has the first one's vocabularies."""
    for i, member in enumerate(members[1:], start=1):
        for name in ("characters", "phonemes"):
            if getattr(member, name) != getattr(members[0], name):
                raise ValueError(f"G2P model {i} has another {name} vocabulary than model 0: "
                                 "combined models must share their vocabularies.")


class G2P:
    """Grapheme-to-phoneme conversion with a book-cell encoder-decoder.

    Args:
        model: An `EncoderDecoder` over `characters` and `phonemes`, or an
            `EncoderDecoderEnsemble` of them (see `G2P.ensemble`).
        characters: Input `Vocabulary` (characters, with <pad> and <unk>).
        phonemes: Output `Vocabulary` (phonemes, with <pad>, <unk>, <s> and </s>).
        max_input_length: Words are cut to this many characters. Default 32.
        beam_width: Default beam width of `predict` and of the exported `serving_default`.
    """

    def __init__(self, model, characters, phonemes, max_input_length=32, beam_width=4):
        self.model, self.characters, self.phonemes = model, characters, phonemes
        self.max_input_length, self.beam_width = int(max_input_length), int(beam_width)

    @classmethod
    def create(cls, lexicon, max_input_length=32, beam_width=4, **model_kwargs):
        """A new, untrained G2P with vocabularies built from `lexicon` ((word, [prons]) pairs)."""
        characters, phonemes = build_char_vocabulary(lexicon), build_phoneme_vocabulary(lexicon)
        longest = max(len(p) for _, prons in lexicon for p in prons)
        model_kwargs.setdefault("max_output_length", longest + 4)
        model = EncoderDecoder(
            len(characters), len(phonemes), start_token=START_ID, end_token=END_ID,
            pad_token=PAD_ID, **model_kwargs,
        )
        model.build()
        return cls(model, characters, phonemes, max_input_length, beam_width)

    @classmethod
    def ensemble(cls, members, beam_width=None):
        """One G2P that decodes with several trained ones (`EncoderDecoderEnsemble`).

        The members must have the same vocabularies; the ensemble keeps the first member's
        length limit and (unless `beam_width` is given) its beam width. Members that are
        ensembles themselves contribute their own members.
        """
        members = list(members)
        if len(members) < 2:
            raise ValueError(f"An ensemble needs at least two G2P models, got {len(members)}.")
        _check_same_vocabularies(members)
        first = members[0]
        models = [m for g2p in members for m in
                  (g2p.model.members if isinstance(g2p.model, EncoderDecoderEnsemble) else [g2p.model])]
        return cls(EncoderDecoderEnsemble(models), first.characters, first.phonemes,
                   first.max_input_length, beam_width or first.beam_width)

    @classmethod
    def average(cls, members):
        """One G2P whose weights are the element-wise mean of several of the same model's weights.

        Averaging the weights of a run's last epochs (checkpoint averaging) usually scores a
        little better than any one of them. The members must have the same model configuration
        and vocabularies (epochs of one run do); integer state (a seed) is the first member's.
        """
        members = list(members)
        if len(members) < 2:
            raise ValueError(f"Averaging needs at least two G2P models, got {len(members)}.")
        if any(isinstance(m.model, EncoderDecoderEnsemble) for m in members):
            raise ValueError("An ensemble's weights cannot be averaged; average the models it was made from.")
        _check_same_vocabularies(members)
        first = members[0]
        for i, member in enumerate(members[1:], start=1):
            if member.model.get_config() != first.model.get_config():
                raise ValueError(f"G2P model {i} has another model configuration than model 0: "
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
        return cls(model, first.characters, first.phonemes, first.max_input_length, first.beam_width)

    # -- Python-side use ---------------------------------------------------------------------------
    def encode_words(self, words):
        """int32 (B, T) character ids, T the longest word (at most `max_input_length`)."""
        ids = [encode_word(w, self.characters)[: self.max_input_length] for w in words]
        out = np.zeros((len(ids), max(1, max((len(i) for i in ids), default=1))), np.int32)
        for row, word_ids in enumerate(ids):
            out[row, : len(word_ids)] = word_ids
        return out

    def predict(self, words, method="beam", beam_width=None, num_results=1, batch_size=256):
        """Pronunciations of `words`: for each word a list of `num_results` (phonemes, score).

        `phonemes` is a tuple of phoneme strings, `score` the log-probability (after the length
        penalty, none by default). `method` is "beam" or "greedy".
        """
        results = []
        for start in range(0, len(words), batch_size):
            batch = self.encode_words(words[start : start + batch_size])
            out = self.decode_ids(batch, method, beam_width, num_results)
            tokens, scores = out["tokens"], out["scores"]
            for row in range(len(batch)):
                results.append(
                    [(tuple(self.phonemes.decode(tokens[row, k])), float(scores[row, k])) for k in range(tokens.shape[1])]
                )
        return results

    def decode_ids(self, encoder_inputs, method="beam", beam_width=None, num_results=1):
        """NumPy `tokens` (B, K, L) and `scores` (B, K) for character ids, through the compiled loop."""
        fn = self._compiled(method, beam_width or self.beam_width, num_results)
        out = fn(tf.constant(encoder_inputs, tf.int32))
        tokens, scores = out["tokens"].numpy(), out["scores"].numpy()
        if tokens.ndim == 2:
            tokens, scores = tokens[:, None], scores[:, None]
        return {"tokens": tokens, "scores": scores}

    def _compiled(self, method, beam_width, num_results):
        cache = self.__dict__.setdefault("_compiled_fns", {})
        key = (method, beam_width, num_results)
        if key not in cache:
            kwargs = {"method": method}
            if method == "beam":
                kwargs.update(beam_width=beam_width, num_results=num_results)
            cache[key] = tf.function(
                lambda ids: self.model.generate(ids, **kwargs),
                input_signature=[tf.TensorSpec([None, None], tf.int32)],
                reduce_retracing=True,
            )
        return cache[key]

    # -- saving ------------------------------------------------------------------------------------
    def save(self, directory):
        """Writes the model directory (files replaced one by one, each written then renamed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        settings = {
            "format": "keras-seq-g2p/1",
            "max_input_length": self.max_input_length,
            "beam_width": self.beam_width,
            "model": self.model.get_config(),
        }
        tmp = directory / (MODEL_FILE + ".tmp.keras")
        self.model.save(tmp)
        os.replace(tmp, directory / MODEL_FILE)
        for name, vocabulary in [(CHARACTERS_FILE, self.characters), (PHONEMES_FILE, self.phonemes)]:
            vocabulary.save(directory / (name + ".tmp"))
            os.replace(directory / (name + ".tmp"), directory / name)
        (directory / (SETTINGS_FILE + ".tmp")).write_text(json.dumps(settings, indent=2))
        os.replace(directory / (SETTINGS_FILE + ".tmp"), directory / SETTINGS_FILE)

    @classmethod
    def load(cls, directory):
        """Loads a model directory written by `save` (the Keras file with safe_mode=True)."""
        directory = Path(directory)
        missing = [f for f in (SETTINGS_FILE, MODEL_FILE, CHARACTERS_FILE, PHONEMES_FILE) if not (directory / f).exists()]
        if missing:
            raise FileNotFoundError(f"{directory} is not a keras-seq G2P model directory: missing {missing}.")
        settings = json.loads((directory / SETTINGS_FILE).read_text())
        model = keras.saving.load_model(directory / MODEL_FILE, safe_mode=True)
        return cls(
            model, Vocabulary.load(directory / CHARACTERS_FILE), Vocabulary.load(directory / PHONEMES_FILE),
            settings["max_input_length"], settings["beam_width"],
        )

    # -- serving -----------------------------------------------------------------------------------
    def serving_module(self, beam_width=None, shards=2):
        """A tf.Module with TF Serving signatures (standard TF ops only):

        - `serving_default`: `words` DT_STRING [-1] -> `pronunciation` string [B] (the best of a
          beam search of width `beam_width`), `score` float [B], `nbest` string [B, K] and
          `nbest_scores` float [B, K].
        - `greedy`: `words` -> `pronunciation`, `score` by greedy search.
        - `tokens`: `input_ids` int32 [B, T] -> `output_ids` int32 [B, K, L], `lengths` int32
          [B, K], `scores` float [B, K] (beam search), for clients that tokenize themselves.

        A batch of at least `2 * shards` words is decoded as `shards` independent parts, side by side
        (see `G2PServingModule`); `shards=1` decodes every batch in one loop.
        """
        return G2PServingModule(self, beam_width or self.beam_width, shards)

    def warmup_inputs(self):
        """A few representative inputs for TF Serving's warmup file, per signature."""
        return {
            "serving_default": {"words": np.array(WARMUP_WORDS[:4], object)},
            "greedy": {"words": np.array(WARMUP_WORDS[4:], object)},
            "tokens": {"input_ids": self.encode_words(WARMUP_WORDS[:2])},
        }


class G2PServingModule(tf.Module):
    """The exported G2P: tokenization, beam/greedy decoding and detokenization in one graph.

    Decoding a batch is a chain of small dependent ops (one step of a recurrent loop after another),
    which keeps one core busy however many the server has. So a batch of at least `2 * shards` words
    is cut into `shards` contiguous parts, each decoded by its own loop; the loops share no tensor, so
    TensorFlow's executor runs them on separate cores, and the parts are concatenated back in order.
    Every word's result is the same either way (a word's search never looks at the other rows).
    Smaller batches take the single loop, where a second one would only add its overhead.
    """

    def __init__(self, g2p, beam_width, shards=2):
        super().__init__()
        if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
            raise ValueError(f"`shards` must be an integer >= 1. Received: shards={shards!r}")
        self.shards = shards
        self.model = g2p.model
        self.tokenizer = CharTokenizer(g2p.characters)
        self.detokenizer = PhonemeDetokenizer(g2p.phonemes)
        self.max_input_length, self.beam_width = g2p.max_input_length, beam_width
        words = tf.TensorSpec([None], tf.string, name="words")
        ids = tf.TensorSpec([None, None], tf.int32, name="input_ids")
        self.serving_default = tf.function(self._beam, input_signature=[words])
        self.greedy = tf.function(self._greedy, input_signature=[words])
        self.tokens = tf.function(self._tokens, input_signature=[ids])

    def signatures(self):
        return {"serving_default": self.serving_default, "greedy": self.greedy, "tokens": self.tokens}

    def _ids(self, words):
        return self._at_least_one_column(self.tokenizer(words)[:, : self.max_input_length])

    @staticmethod
    def _at_least_one_column(ids):
        """Pads `ids` to one column when it has none, so that an empty batch, or a batch of empty
        words, still decodes (to empty pronunciations); as `G2P.encode_words` pads. A batch with
        letters keeps its width: every extra column would be one more step of the encoder."""
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

    def _beam(self, words):
        out = self._decode(self._ids(words), "beam")
        tokens = out["tokens"]  # (B, K, L)
        shape = tf.shape(tokens)
        nbest = tf.reshape(self.detokenizer(tf.reshape(tokens, [-1, shape[2]])), shape[:2])
        return {"pronunciation": nbest[:, 0], "score": out["scores"][:, 0], "nbest": nbest, "nbest_scores": out["scores"]}

    def _greedy(self, words):
        out = self._decode(self._ids(words), "greedy")
        return {"pronunciation": self.detokenizer(out["tokens"]), "score": out["scores"]}

    def _tokens(self, input_ids):
        out = self._decode(self._at_least_one_column(input_ids), "beam")
        return {"output_ids": out["tokens"], "lengths": out["lengths"], "scores": out["scores"]}


def load_for_export(model_dir, shards=2):
    """`(module, signatures, warmup_inputs)` for `keras_seq.export` from a G2P model directory."""
    g2p = G2P.load(model_dir)
    module = g2p.serving_module(shards=shards)
    return module, module.signatures(), g2p.warmup_inputs()
