"""`Seq2SeqConfig`: the training settings of a general string-to-string task."""

from dataclasses import dataclass
from typing import Optional

from keras_seq.text import SPLITS
from keras_seq.training.config import TrainingConfig, setting

__all__ = ["Seq2SeqConfig"]


@dataclass
class Seq2SeqConfig(TrainingConfig):
    """`TrainingConfig` with the tokenization of each side, and defaults that train a good model
    on a few thousand short pairs in minutes on two CPU cores (attention on, a small model)."""

    train: Optional[str] = setting(None, "UTF-8 TSV file of 'source<TAB>target' lines")
    dev: Optional[str] = setting(None, "dev TSV file (default: a 5%% hash split of --train)")
    source_split: str = setting("chars", "split sources into characters or whitespace-separated words",
                                choices=SPLITS, model=True)
    target_split: str = setting("chars", "split targets into characters or whitespace-separated words",
                                choices=SPLITS, model=True)
    lowercase: bool = setting(False, "lower-case sources (in training and when served)", model=True)
    units: int = setting(128, "units of every recurrent layer", model=True, minimum=1)
    embedding_dim: int = setting(32, "size of the token embeddings", model=True, minimum=1)
    attention: bool = setting(True, "additive attention over the encoder's outputs", model=True)
    cell: str = setting("gru", "the book cell of every recurrent layer", choices=("lstm", "gru", "elman"), model=True)
    candidate_activation: Optional[str] = setting(
        "tanh", "LSTM/GRU candidate nonlinearity (the book's is sigmoid; tanh learns faster)", model=True)
    max_input_length: int = setting(64, "the most source tokens the model reads (longer sources are errors, "
                                    "and are left out of training with a message)", model=True, minimum=1)
    epochs: int = setting(20, "total number of epochs (a resumed run counts those done)", minimum=1)
    batch_size: int = setting(64, "global batch size (pairs per step)", minimum=1)
    learning_rate: float = setting(3e-3, "Adam's initial learning rate")
    dev_examples: Optional[int] = setting(500, "dev sources decoded for the dev scores each epoch (0: none)",
                                          minimum=0)
