"""Sequence-level knowledge distillation for G2P (Kim & Rush, 2016, "Sequence-Level Knowledge
Distillation"): a student trained on its teacher's beam-search outputs instead of the references.

`distill(config)` (``keras-seq distill``, settings in `keras_seq.g2p.config.DistillConfig`):

1. The teacher: the G2P model directory ``config.teacher[0]``, or the `G2P.ensemble` of several
   (the mean of their log-probabilities).
2. The words of ``config.train`` (after the dev split when there is no ``config.dev``, and the
   ``max_train_examples`` sample) are decoded by the teacher alone (`G2P.predict_tokens`: beam
   search, never the dictionary), in batches of ``teacher_batch_size``, sorted by length, with a
   progress line per few batches. Its best pronunciation of each word is written to
   ``OUT/distilled.txt`` in the references' format (CMUdict or TSV; with the teacher's stress
   digits if it has them), and what the teacher was to ``OUT/distill.json``.
3. The student is trained by the one training loop (`keras_seq.training.loop.train`) on those
   pronunciations (with ``mix_references``: each word's teacher pronunciation, then its
   references), its dev scores and best-epoch selection against the real ``config.dev``
   references. ``settings.json`` holds the `DistillConfig` (the teacher directories included),
   ``run.json``'s ``data.train`` names the distilled file.

``resume=True`` continues the student from ``OUT`` without decoding again (``distilled.txt`` is
read back), provided the teacher, its beam width and the training words are those recorded;
an existing ``OUT`` without ``resume`` or ``overwrite`` is refused before any decoding.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from keras_seq.g2p.config import DistillConfig
from keras_seq.g2p.data import load_lexicon, write_lexicon
from keras_seq.g2p.model import G2P
from keras_seq.g2p.train import load_source
from keras_seq.text import split_text
from keras_seq.training import loop as _loop
from keras_seq.training.callbacks import BACKUP_DIR, RUN_FILE, write_json
from keras_seq.training.loop import RunExistsError

__all__ = ["DISTILLED_FILE", "DISTILL_FILE", "DistillConfig", "decode_words", "distill"]

DISTILLED_FILE, DISTILL_FILE = "distilled.txt", "distill.json"


def decode_words(teacher, words, beam_width=None, batch_size=256, verbose=1):
    """The teacher's best pronunciation of each word: a tuple of phonemes per word, in order.

    Beam search with `beam_width` (default: the teacher's), the model alone (`predict_tokens`:
    never its dictionary), `batch_size` words per batch, words sorted by length so that a batch is
    padded little; with `verbose`, a progress line every 16 batches. Every word must fit the
    teacher's ``max_input_length``.
    """
    words = list(words)
    order = sorted(range(len(words)), key=lambda i: len(words[i]))
    best = [None] * len(words)
    chunk = 16 * batch_size
    start = time.perf_counter()
    for begin in range(0, len(order), chunk):
        rows = order[begin: begin + chunk]
        decoded = teacher.predict_tokens([words[i] for i in rows], "beam", beam_width, 1, batch_size)
        for i, results in zip(rows, decoded):
            best[i] = tuple(results[0][0])
        if verbose:
            done, seconds = begin + len(rows), time.perf_counter() - start
            print(f"teacher: {done}/{len(words)} words decoded ({done / max(seconds, 1e-9):.0f} words/s)", flush=True)
    return best


def _teacher_settings(directory):
    """The teacher's saved settings (g2p.json) without its model config."""
    settings = json.loads((Path(directory) / G2P.SETTINGS_FILE).read_text())
    return {k: v for k, v in settings.items() if k != "model"}


def _check_teachers(config):
    """Raises for missing teachers, teachers that are not G2P models, or stress the teacher lacks."""
    if not config.teacher:
        raise ValueError("no teacher: give a teacher model directory (--teacher DIR)")
    for directory in config.teacher:
        if not Path(directory).is_dir():
            raise FileNotFoundError(f"--teacher: no such directory: {directory}")
        if not G2P.is_model_directory(directory):
            raise FileNotFoundError(f"--teacher: {directory} is not a G2P model directory (no {G2P.SETTINGS_FILE})")
        if config.stress and not _teacher_settings(directory).get("stress", False):
            raise ValueError(f"--stress: the teacher {directory} has no stress digits; train the student without "
                             "--stress, or distill a teacher trained with --stress")


def _check_out(out, config):
    """Refuses an `out` that holds a distillation or a run, unless resuming or overwriting (then
    removes the distillation's own files)."""
    ours = [out / DISTILLED_FILE, out / DISTILL_FILE]
    occupied = any(p.exists() for p in [*ours, out / RUN_FILE, out / G2P.SETTINGS_FILE, out / BACKUP_DIR])
    if config.overwrite:
        for path in ours:
            path.unlink(missing_ok=True)
    elif occupied and not config.resume:
        raise RunExistsError(f"{out} already holds a distillation or a training run; pass --resume to continue it "
                             "or --overwrite to start over")


def distill(config: DistillConfig, *, callbacks=None, verbose=1) -> G2P:
    """Decodes the training words with the teacher and trains the student on its outputs.

    Args:
        config: A `DistillConfig` (``teacher``, ``train`` and ``out`` are required; ``dev`` is
            the real dev lexicon, default a 5% hash split of ``train``).
        callbacks: More Keras callbacks for the student's training. verbose: progress and
            `model.fit` verbosity.

    Returns:
        The student `G2P` (the weights of its best dev epoch).

    Raises:
        FileNotFoundError (a missing teacher or file), ValueError (bad data or settings, a
        teacher without the stress asked for), RunExistsError (see the module docstring).
    """
    if config.out is None or config.train is None:
        raise ValueError("distillation needs config.train (the words and references) and config.out")
    _check_teachers(config)
    out = Path(config.out)
    _check_out(out, config)

    references, lexicon_format = load_source(config.train, config.lexicon_format, config.stress, with_format=True)
    config.lexicon_format = lexicon_format  # the student's dictionary follows it (G2P.settings_from_config)
    if config.dev is not None:
        dev = load_source(config.dev, lexicon_format, config.stress)
    else:
        references, dev = _loop.hash_split_examples(references)
    if config.max_train_examples is not None and config.max_train_examples < len(references):
        import numpy as np

        pick = np.random.default_rng(config.seed).choice(len(references), config.max_train_examples, replace=False)
        references = [references[i] for i in sorted(pick)]

    record = {"teachers": [str(Path(t).resolve()) for t in config.teacher],
              "teacher_beam_width": config.teacher_beam_width,
              "train": _loop.describe_source(config.train), "words": len(references)}
    distilled_path = out / DISTILLED_FILE
    if config.resume and distilled_path.exists() and (out / DISTILL_FILE).exists():
        before = json.loads((out / DISTILL_FILE).read_text())
        diffs = [f"{k}={before.get(k)!r} (asked {v!r})" for k, v in record.items() if before.get(k) != v]
        if diffs:
            raise RunExistsError(f"{out} holds a distillation of another teacher or data ({'; '.join(diffs)}); "
                                 "use --overwrite or another --out")
        if verbose:
            print(f"distillation: reusing the teacher's pronunciations in {distilled_path}")
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / DISTILL_FILE, {**record, **_decode_teacher(config, references, distilled_path,
                                                                   lexicon_format, verbose)})

    distilled, _ = load_lexicon(distilled_path, lexicon_format, remove_stress=not config.stress)
    student_lexicon, described = distilled, _loop.describe_source(str(distilled_path))
    if config.mix_references:
        teacher_words = dict(distilled)
        student_lexicon = [(w, teacher_words.get(w, []) + [p for p in refs if p not in teacher_words.get(w, [])])
                           for w, refs in references]
        described += " + " + _loop.describe_source(config.train)
    sources = {"train": described, "dev": _loop.describe_source(config.dev) if config.dev else "hash split of train"}
    return _loop.train(G2P, config, student_lexicon, dev, callbacks=callbacks, verbose=verbose, sources=sources)


def _decode_teacher(config, references, path, lexicon_format, verbose):
    """Decodes the words of `references` with the teacher, writes `path` (atomically); returns
    what distill.json records of the decoding."""
    members = [G2P.load(t) for t in config.teacher]
    teacher = members[0] if len(members) == 1 else G2P.ensemble(members)
    width = config.teacher_beam_width or teacher.beam_width
    words = [w for w, _ in references if len(split_text(w, "chars", True)) <= teacher.max_input_length]
    too_long = len(references) - len(words)
    if verbose:
        what = f"an ensemble of {len(members)} models" if len(members) > 1 else config.teacher[0]
        print(f"distillation: decoding {len(words)} words with the teacher ({what}), beam width {width}, "
              f"batch {config.teacher_batch_size}" + (f"; {too_long} words over its {teacher.max_input_length} "
                                                      "characters left out" if too_long else ""), flush=True)
    start = time.perf_counter()
    best = decode_words(teacher, words, width, config.teacher_batch_size, verbose)
    seconds = time.perf_counter() - start
    lexicon = [(w, [p]) for w, p in zip(words, best) if p]
    if not lexicon:
        raise ValueError(f"the teacher's pronunciation of every one of the {len(words)} words is empty: is it trained?")
    tmp = path.with_name(path.name + ".tmp")
    write_lexicon(lexicon, tmp, lexicon_format)
    os.replace(tmp, path)
    if verbose and teacher.stress and not config.stress:
        print("distillation: the teacher has stress digits; the student is trained without them (--stress keeps them)")
    return {"teacher_settings": _teacher_settings(config.teacher[0]), "teacher_members": len(members),
            "beam_width": width, "batch_size": config.teacher_batch_size,
            "teacher_stress": teacher.stress, "decoded_words": len(lexicon), "too_long_words": too_long,
            "empty_outputs": len(words) - len(lexicon), "decode_seconds": round(seconds, 2),
            "words_per_second": round(len(words) / max(seconds, 1e-9), 1)}

