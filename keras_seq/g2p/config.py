"""`G2PConfig`: the training settings of G2P and their defaults (`keras-seq train g2p --help`);
`DistillConfig`: those of a distilled student, and its teacher (`keras-seq distill --help`)."""

from dataclasses import dataclass
from typing import Optional

from keras_seq.g2p.data import LEXICON_FORMATS
from keras_seq.training.config import TrainingConfig, setting

__all__ = ["DistillConfig", "G2PConfig"]


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
                           "(a CMUdict file without them, as the standard G2P split is written, gets those of the cmudict "
                           "package's pronunciations of its own words; other data without them give a model without "
                           "them)", model=True)


@dataclass
class DistillConfig(G2PConfig):
    """`G2PConfig` for sequence-level knowledge distillation (`keras_seq.g2p.distill`): the
    student's settings are G2P's; ``train`` gives the words the teacher pronounces (and the
    references, with ``mix_references``), ``dev`` the real references that select and score the
    student."""

    teacher: Optional[list] = setting(None, "a teacher model directory (keras-seq train g2p --out); give it "
                                      "several times for an ensemble of teachers (the mean of their log-probabilities)")
    teacher_beam_width: Optional[int] = setting(None, "beam width of the teacher's decoding (default: the teacher's "
                                                "own)", minimum=1)
    teacher_batch_size: int = setting(256, "words per batch of the teacher's decoding", minimum=1)
    mix_references: bool = setting(False, "train on the teacher's pronunciations and the references of --train "
                                   "together (default: the teacher's pronunciations only)")
