"""The G2P model: a `TextSeq2Seq` from words (characters, lower-cased) to ARPAbet phonemes.

A model directory holds the files of `keras_seq.seq2seq.TextSeq2Seq` under G2P's own names, as it
always has (directories saved before G2P was built on `TextSeq2Seq` load unchanged):

    g2p.json          settings (model config, length limit, decoding defaults)
    model.keras       the EncoderDecoder or EncoderDecoderEnsemble
    characters.txt    input vocabulary (one token per line)
    phonemes.txt      output vocabulary

`G2P.serving_module()` builds the general `keras_seq.export.Seq2SeqServingModule` with G2P's
signature names: raw words in (``words`` DT_STRING [-1]), pronunciations out (``pronunciation``).
"""

from keras_seq.seq2seq.model import TextSeq2Seq

SETTINGS_FILE, MODEL_FILE = "g2p.json", "model.keras"
CHARACTERS_FILE, PHONEMES_FILE = "characters.txt", "phonemes.txt"
WARMUP_WORDS = ["hello", "world", "keras", "sequence", "pronunciation", "a", "zyzzyva", "naïve"]


class G2P(TextSeq2Seq):
    """Grapheme-to-phoneme conversion with a book-cell encoder-decoder.

    Words are split into characters and lower-cased; pronunciations are sequences of phonemes.
    `predict` returns phoneme tuples.

    Args:
        model: An `EncoderDecoder` over `characters` and `phonemes`, or an
            `EncoderDecoderEnsemble` of them (see `G2P.ensemble`).
        characters: Input `Vocabulary` (characters, with <pad> and <unk>).
        phonemes: Output `Vocabulary` (phonemes, with <pad>, <unk>, <s> and </s>).
        max_input_length: The most characters a word may have (default 32); a longer word is an
            error in Python (`SourceTooLongError`) and a ``too_long`` row when served.
        beam_width: Default beam width of `predict` and of the exported `serving_default`.
    """

    FORMAT = "keras-seq-g2p/1"
    SETTINGS_FILE, MODEL_FILE, SOURCE_FILE, TARGET_FILE = SETTINGS_FILE, MODEL_FILE, CHARACTERS_FILE, PHONEMES_FILE
    INPUT_NAME, OUTPUT_NAME = "words", "pronunciation"
    METRICS = ("wer", "per")
    VOCABULARY_NAMES = ("characters", "phonemes")
    FIXED_SETTINGS = {"source_split": "chars", "target_split": "words", "lowercase": True}

    def __init__(self, model, characters, phonemes, max_input_length=32, beam_width=4, **tokenization):
        for key, value in tokenization.items():  # what TextSeq2Seq passes on: G2P's own, or an error
            if key not in self.FIXED_SETTINGS or value != self.FIXED_SETTINGS[key]:
                raise TypeError(f"G2P's tokenization is fixed ({self.FIXED_SETTINGS}); got {key}={value!r}")
        super().__init__(model, characters, phonemes, max_input_length=max_input_length, beam_width=beam_width,
                         **self.FIXED_SETTINGS)

    @classmethod
    def _init_keys(cls):
        return ("max_input_length", "beam_width")

    @classmethod
    def create(cls, lexicon, max_input_length=32, beam_width=4, **model_kwargs):
        """A new, untrained G2P with vocabularies built from `lexicon` ((word, [prons]) pairs)."""
        return super().create(lexicon, max_input_length=max_input_length, beam_width=beam_width, **model_kwargs)

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

    def predict(self, words, method="beam", beam_width=None, num_results=1, batch_size=256, max_length=None):
        """Pronunciations of `words`: for each word a list of `num_results` (phonemes, score).

        `phonemes` is a tuple of phoneme strings, `score` the log-probability. `method` is "beam"
        or "greedy". An empty word gets ``[((), 0.0)]``; a word longer than `max_input_length`
        raises `SourceTooLongError`.
        """
        return super().predict(words, method, beam_width, num_results, batch_size, max_length)

    def warmup_sources(self):
        return [w for w in WARMUP_WORDS if len(w) <= self.max_input_length]

    def warmup_inputs(self):
        """A few representative inputs for TF Serving's warmup file, per signature."""
        return self.serving_module().warmup_inputs()


def load_for_export(model_dir, shards=2):
    """`(module, signatures, warmup_inputs)` for `keras_seq.export` from a G2P model directory."""
    loaded = G2P.load_for_export(model_dir, shards=shards)
    return loaded["module"], loaded["signatures"], loaded["warmup_requests"]
