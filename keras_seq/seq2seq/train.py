"""`train(config)`: a `TextSeq2Seq` trained on TSV pairs with the one training loop."""

from keras_seq.seq2seq.config import Seq2SeqConfig
from keras_seq.seq2seq.model import TextSeq2Seq, examples_from_pairs
from keras_seq.text import read_pairs
from keras_seq.training import loop

__all__ = ["train"]


def train(config: Seq2SeqConfig, *, callbacks=None, verbose=1) -> TextSeq2Seq:
    """Reads ``config.train`` (and ``config.dev``) and trains; returns the model of the best dev epoch.

    Raises:
        FileNotFoundError, ValueError (a bad TSV line names its file and line; bad settings),
        `keras_seq.training.RunExistsError`.
    """
    if config.train is None:
        raise ValueError("config.train (a TSV file of 'source<TAB>target' lines) is required")
    train_examples = examples_from_pairs(read_pairs(config.train), config.target_split)
    dev_examples = examples_from_pairs(read_pairs(config.dev), config.target_split) if config.dev else None
    return loop.train(TextSeq2Seq, config, train_examples, dev_examples, callbacks=callbacks, verbose=verbose)
