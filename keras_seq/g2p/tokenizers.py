"""G2P's in-graph tokenizers: `keras_seq.text.Tokenizer` / `Detokenizer` with G2P's conventions."""

import keras

from keras_seq.text.tokenizers import Detokenizer, Tokenizer

__all__ = ["CharTokenizer", "PhonemeDetokenizer"]


@keras.saving.register_keras_serializable(package="keras_seq.g2p")
class CharTokenizer(Tokenizer):
    """Raw words (DT_STRING ``[B]``) to padded character ids ``[B, T]``: lower-cased (UTF-8), split
    into characters, unknown characters to ``<unk>``; equals `encode_word` for every word."""

    def __init__(self, vocabulary, max_length=None, **kwargs):
        kwargs.pop("split", None), kwargs.pop("lowercase", None)
        super().__init__(vocabulary, split="chars", lowercase=True, max_length=max_length, **kwargs)


@keras.saving.register_keras_serializable(package="keras_seq.g2p")
class PhonemeDetokenizer(Detokenizer):
    """Output ids ``[B, T]`` to space-joined phoneme strings ``[B]`` (stops at ``</s>``)."""

    def __init__(self, vocabulary, **kwargs):
        kwargs.pop("separator", None)
        super().__init__(vocabulary, separator=" ", **kwargs)
