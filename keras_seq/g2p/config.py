"""`G2PConfig`: the training settings of G2P and their defaults (`keras-seq train g2p --help`)."""

from dataclasses import dataclass
from typing import Optional

from keras_seq.g2p.data import LEXICON_FORMATS
from keras_seq.training.config import TrainingConfig, setting

__all__ = ["G2PConfig"]


@dataclass
class G2PConfig(TrainingConfig):
    """`TrainingConfig` for G2P: the data are lexicons in CMUdict or TSV format (or "cmudict")."""

    train: Optional[str] = setting(None, "lexicon file (CMUdict format, or TSV 'word<TAB>phone phone ...' in any "
                                   "phone set), or 'cmudict' (the [g2p] extra's dictionary)")
    dev: Optional[str] = setting(None, "dev lexicon file (default: a 5%% hash split of --train)")
    lexicon_format: Optional[str] = setting(
        None, "format of the lexicon files, cmudict or tsv (None: each told apart by its content)",
        choices=LEXICON_FORMATS)
    stress: bool = setting(False, "keep CMUdict's stress digits (AH0, OW1): the model then predicts stress "
                           "(data without stress digits gives a model without them)", model=True)
