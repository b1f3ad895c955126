"""One training configuration: every setting of a training run and its default, written once.

`TrainingConfig` is a dataclass. The same object

- generates the command line (`add_arguments`: one ``--flag`` per field, its help and default
  shown in ``--help``; `from_arguments` reads them back),
- is what `keras_seq.training.train` runs, what the demo and the tests pass,
- is written to the run directory as ``settings.json`` (`to_dict`) and read back and compared on
  ``--resume`` (`model_differences`).

An application subclasses it to add its own settings or change defaults (`keras_seq.g2p.G2PConfig`,
`keras_seq.seq2seq.Seq2SeqConfig`); a field's ``metadata`` holds its help text, its choices, and
whether it defines the model (a resumed run must match those).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from keras_seq.distribute import STRATEGIES

__all__ = ["TrainingConfig", "STRATEGIES", "PRECISIONS", "LR_SCHEDULES", "add_arguments", "from_arguments"]

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
OPTIMIZERS = ("adam", "adam-dense")
LR_SCHEDULES = ("decay", "plateau", "constant")
CELLS = ("lstm", "gru", "elman")


def setting(default, help, *, choices=None, model=False, cli=True, aliases=(), off_aliases=(), minimum=None):
    """A dataclass field with its help text: ``model=True`` for settings that define the model;
    ``aliases``: more command-line flags for it (``off_aliases``: flags that turn a boolean off);
    ``minimum``: the smallest integer allowed."""
    return field(default=default, metadata={"help": help, "choices": choices, "model": model, "cli": cli,
                                            "aliases": tuple(aliases), "off_aliases": tuple(off_aliases),
                                            "minimum": minimum})


@dataclass
class TrainingConfig:
    """The settings of a training run (see each field's help, or ``keras-seq train TASK --help``)."""

    # -- data and run directory
    train: Optional[str] = setting(None, "training data file")
    dev: Optional[str] = setting(None, "dev data file (default: a 5%% hash split of --train)")
    out: Optional[str] = setting(None, "run directory (model, backup, metrics.csv, settings.json)")
    max_train_examples: Optional[int] = setting(None, "train on a fixed seeded sample of this many sources",
                                                minimum=1, aliases=("--max-train-words",))
    dev_examples: Optional[int] = setting(1000, "dev sources decoded for the dev scores each epoch (0: none)",
                                          minimum=0, aliases=("--dev-words",))
    # -- model
    cell: str = setting("lstm", "the book cell of every recurrent layer", choices=CELLS, model=True)
    units: int = setting(256, "units of every recurrent layer", model=True, minimum=1)
    embedding_dim: int = setting(64, "size of the token embeddings", model=True, minimum=1)
    encoder_layers: int = setting(1, "stacked encoder layers", model=True, minimum=1)
    decoder_layers: int = setting(1, "stacked decoder layers", model=True, minimum=1)
    bidirectional: bool = setting(True, "bidirectional encoder (Fig. 10.11)", model=True,
                                  off_aliases=("--unidirectional",))
    attention: bool = setting(False, "additive attention over the encoder's outputs", model=True)
    context_every_step: bool = setting(False, "also feed the encoder's context to every decoder step (Fig. 10.12)",
                                       model=True)
    candidate_activation: Optional[str] = setting(
        None, "LSTM/GRU candidate nonlinearity (default: the book's sigmoid; e.g. tanh)", model=True)
    max_input_length: int = setting(32, "the most source tokens the model reads (longer sources are errors, "
                                    "and are left out of training with a message)", model=True, minimum=1)
    dropout: float = setting(0.0, "dropout rate of the recurrent layers' inputs")
    scheduled_sampling: float = setting(0.0, "probability of feeding the model's own prediction in training")
    beam_width: int = setting(4, "the saved model's default beam width", minimum=1)
    # -- optimization
    epochs: int = setting(20, "total number of epochs (a resumed run counts those done)", minimum=1)
    batch_size: int = setting(128, "global batch size (pairs per step)", minimum=1)
    learning_rate: float = setting(1e-3, "Adam's initial learning rate")
    lr_schedule: str = setting("decay", "decay: hold for 40%% of the epochs, then decay to 5%% (at most halving "
                               "each epoch); plateau: halve when the dev loss stops improving", choices=LR_SCHEDULES)
    optimizer: str = setting("adam", "adam: Keras's Adam as it runs on TensorFlow, where an embedding table is "
                             "stepped from one gradient slice per occurrence of an id, so an id seen k times in a "
                             "batch moves up to sqrt(k) times Adam's step (reproduced on JAX: "
                             "keras_seq.models.SliceAdam); adam-dense: Adam's step from the summed gradient "
                             "(keras_seq.models.Adam); each the same training on TensorFlow and JAX",
                             choices=OPTIMIZERS)
    clipnorm: Optional[float] = setting(5.0, "clip each weight's gradient to this norm (Keras's clipnorm; 0: off)")
    seed: int = setting(0, "seeds Python, NumPy, the backend and the data order")
    # -- run
    checkpoint_steps: Optional[int] = setting(None, "also back up every N steps (default: every epoch)", minimum=1)
    keep_epochs: int = setting(0, "also keep the last N epochs' models in OUT/epochs/ (for keras-seq average)",
                               minimum=0)
    static_shapes: bool = setting(False, "full batches of fixed shapes only, what TPUs need (implied by --strategy "
                                  "tpu): on JAX one fixed shape per length bucket (each compiled once), on "
                                  "TensorFlow one shape for all batches")
    strategy: str = setting("default", "distribution: data-parallel (the local GPUs or CPU devices; JAX: "
                            "keras.distribution.DataParallel, TensorFlow: MirroredStrategy; 'mirrored' is its "
                            "TensorFlow name), multiworker (TensorFlow, TF_CONFIG), tpu (TensorFlow: TPUStrategy; "
                            "JAX: DataParallel over the TPU VM's chips; implies --static-shapes)", choices=STRATEGIES)
    tpu: Optional[str] = setting(None, "--strategy tpu on TensorFlow: the TPUClusterResolver's tpu (name or "
                                 "grpc:// address)")
    precision: str = setting("float32", "compute precision", choices=PRECISIONS)
    resume: bool = setting(False, "continue the run in --out from its backup", cli=True)
    overwrite: bool = setting(False, "replace a run already in --out")

    def __post_init__(self):
        if self.strategy == "tpu":  # a TPU compiles one program per batch shape: static shapes only
            self.static_shapes = True
        self.validate()

    def validate(self):
        """Raises ValueError for a setting out of its range or choices (names it)."""
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            if value is None:
                continue
            if meta.get("choices") and value not in meta["choices"]:
                raise ValueError(f"unknown {f.name} {value!r}: use one of {', '.join(meta['choices'])}")
            if meta.get("minimum") is not None and (isinstance(value, bool) or not isinstance(value, int)
                                                    or value < meta["minimum"]):
                what = "a positive integer" if meta["minimum"] == 1 else f"an integer >= {meta['minimum']}"
                raise ValueError(f"{f.name} must be {what}, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.scheduled_sampling <= 1.0:
            raise ValueError(f"scheduled_sampling must be in [0, 1], got {self.scheduled_sampling}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        return dataclasses.asdict(self)

    def model_settings(self):
        """The settings that define the model: a resumed run must have the same."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get("model")}

    @classmethod
    def from_dict(cls, data):
        """A config from `to_dict`'s output; settings it does not know are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown settings for {cls.__name__}: {', '.join(unknown)}")
        return cls(**data)

    def write(self, path):
        tmp = Path(str(path) + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(path)


def _flags(f):
    return ["--" + f.name.replace("_", "-"), *f.metadata.get("aliases", ())]


def _type_of(f):
    annotation = str(f.type)
    if "int" in annotation:
        return int
    if "float" in annotation:
        return float
    return str


def add_arguments(parser, config_cls, required=("out",), only=None):
    """One command-line flag per field of `config_cls` (or per field named in `only`), with its
    help and default; a field of type ``list`` is one flag given once per value (``--teacher A
    --teacher B``)."""
    for f in dataclasses.fields(config_cls):
        meta = f.metadata
        if not meta.get("cli", True) or (only is not None and f.name not in only):
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = meta.get("help", "")
        if "list" in str(f.type):  # a list setting: its flag given once per value
            parser.add_argument(*_flags(f), dest=f.name, action="append", required=f.name in required,
                                type=str, default=None, metavar=f.name.upper(), help=help_text)
        elif f.name in required:
            parser.add_argument(*_flags(f), dest=f.name, required=True, help=help_text)
        elif isinstance(default, bool) or "bool" in str(f.type):
            parser.add_argument(*_flags(f), dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                                help=help_text + " (default: %(default)s)")
            for alias in meta.get("off_aliases", ()):
                parser.add_argument(alias, dest=f.name, action="store_false", help=f"the same as --no-{_flags(f)[0][2:]}")
        else:
            parser.add_argument(*_flags(f), dest=f.name, type=_type_of(f), default=default,
                                choices=meta.get("choices"), help=help_text + " (default: %(default)s)")
    return parser


def from_arguments(args, config_cls):
    """The `config_cls` of parsed arguments (fields not on the command line keep their default)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls) if hasattr(args, f.name)}
    return config_cls(**values)
