"""Sequence-level knowledge distillation (`keras-seq distill`, `keras_seq.g2p.distill`).

The student's data are checked against the teacher's own `predict_details` (the model alone), and
an ensemble's against `G2P.ensemble`. Cheap: the default tests' teachers are untrained (their
outputs are theirs all the same), and what reaches the training loop is caught where the student's
training is not the point; a trained teacher's distillation is the slow test.
"""

import json

import keras
import numpy as np
import pytest

from keras_seq import cli
from keras_seq.cli.tasks import distill_main
from keras_seq.g2p import distill as distill_module
from keras_seq.g2p.config import DistillConfig
from keras_seq.g2p.data import read_cmudict, reverse_task, write_cmudict
from keras_seq.g2p.model import G2P
from keras_seq.g2p.train import train

TINY = dict(units=16, embedding_dim=8, verbose=0, dev_words=20, lr_schedule="constant", learning_rate=1e-2,
            static_shapes=True)
STUDENT = ["--units", "8", "--embedding-dim", "4", "--batch-size", "32", "--dev-words", "0", "--static-shapes",
           "--lr-schedule", "constant"]


def _lexicons(tmp, words=100):
    write_cmudict(reverse_task(words, 3, 6, seed=3), tmp / "train.dict")
    write_cmudict(reverse_task(30, 3, 6, seed=4), tmp / "dev.dict")


def _random_teacher(lexicon, seed, **settings):
    """An untrained G2P whose weights are drawn large enough that it pronounces words (some as
    nothing), each its own way."""
    g2p = G2P.create(lexicon, units=16, embedding_dim=8, **settings)
    rng = np.random.default_rng(seed)
    for variable in g2p.model.weights:
        if keras.backend.is_float_dtype(variable.dtype):
            variable.assign(rng.normal(0.0, 1.0, variable.shape).astype("float32"))
    return g2p


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """An untrained teacher model directory ``teacher`` next to the lexicon files."""
    tmp = tmp_path_factory.mktemp("distill")
    _lexicons(tmp)
    _random_teacher(read_cmudict(tmp / "train.dict"), 0, attention=True).save(tmp / "teacher")
    return tmp


@pytest.fixture(scope="module")
def trained_teacher(tmp_path_factory):
    """A reverse-task teacher after a few seconds of training (unsure: its outputs are its own)."""
    tmp = tmp_path_factory.mktemp("distill-trained")
    _lexicons(tmp, 300)
    keras.utils.set_random_seed(0)
    train(str(tmp / "train.dict"), str(tmp / "dev.dict"), tmp / "teacher", epochs=6, batch_size=32, attention=True,
          **TINY)
    return tmp


def _best(g2p, words, beam_width=None):
    """The model's own best pronunciation of each word (beam search, no dictionary)."""
    return [d.pronunciations[0][0] for d in g2p.predict_details(words, beam_width=beam_width, use_dictionary=False)]


def test_distill_trains_the_student_on_the_teachers_outputs(teacher, capsys, monkeypatch):
    _distill_end_to_end(teacher, capsys, monkeypatch)


@pytest.mark.slow
def test_distill_of_a_trained_teacher(trained_teacher, capsys, monkeypatch):
    _distill_end_to_end(trained_teacher, capsys, monkeypatch)


def _distill_end_to_end(teacher, capsys, monkeypatch):
    """`keras-seq distill` of `teacher`: the distilled file, the student's run, --resume."""
    out = teacher / "student"

    def argv(epochs, beam_width=3):
        return ["--teacher", str(teacher / "teacher"), "--train", str(teacher / "train.dict"), "--dev",
                str(teacher / "dev.dict"), "--out", str(out), "--epochs", str(epochs), "--teacher-beam-width",
                str(beam_width), "--teacher-batch-size", "32", *STUDENT]

    assert distill_main(argv(1)) == 0
    printed = capsys.readouterr().out
    words = [w for w, _ in read_cmudict(teacher / "train.dict")]
    assert f"teacher: {len(words)}/{len(words)} words decoded" in printed and "words/s" in printed

    distilled = dict(read_cmudict(out / "distilled.txt"))
    want = _best(G2P.load(teacher / "teacher"), words, beam_width=3)
    decoded = [w for w, p in zip(words, want) if p]  # a word the teacher pronounces as nothing is left out
    assert list(distilled) == decoded and all(len(p) == 1 for p in distilled.values())
    assert [distilled[w][0] for w in decoded] == [p for p in want if p]
    references = dict(read_cmudict(teacher / "train.dict"))
    assert any(distilled[w][0] not in references[w] for w in decoded)  # a teacher's outputs, not the references

    run = json.loads((out / "run.json").read_text())
    assert run["finished"] and run["train_examples"] == len(decoded)
    assert run["data"]["train"] == str((out / "distilled.txt").resolve())
    assert run["data"]["dev"] == str((teacher / "dev.dict").resolve())
    settings = json.loads((out / "settings.json").read_text())
    assert settings["teacher"] == [str(teacher / "teacher")] and settings["teacher_beam_width"] == 3
    record = json.loads((out / "distill.json").read_text())
    assert record["teachers"] == [str((teacher / "teacher").resolve())] and record["decoded_words"] == len(decoded)
    assert record["beam_width"] == 3 and record["empty_outputs"] == len(words) - len(decoded)
    assert settings["units"] == 8 and G2P.load(out).model.count_params() > 0  # the student, saved

    # --resume continues the student from the distilled file, without decoding again (the loop's
    # own resume is tested with `keras-seq train`): what reaches the training loop is caught.
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    seen = {}
    monkeypatch.setattr(distill_module, "decode_words", no_decoding)
    monkeypatch.setattr(distill_module._loop, "train", lambda cls, config, examples, dev, **kw: seen.update(
        config=config, train=examples, sources=kw["sources"]))
    assert distill_main(argv(2) + ["--resume"]) == 0
    assert "reusing the teacher's pronunciations" in capsys.readouterr().out
    assert seen["config"].resume and seen["config"].epochs == 2
    assert seen["train"] == [(w, [p]) for w, p in zip(words, want) if p]
    assert seen["sources"]["train"] == run["data"]["train"]  # the loop's resume check compares it
    # ... and refuses to resume the distillation of another teacher (or beam width, or words).
    assert distill_main(argv(3, beam_width=2) + ["--resume"]) == 2
    assert "another teacher or data" in capsys.readouterr().err


def test_mixed_references_and_an_ensemble_of_teachers(teacher, tmp_path, monkeypatch):
    """What the student trains on, caught at the training loop (no training)."""
    lexicon = read_cmudict(teacher / "train.dict")
    _random_teacher(lexicon, 1, attention=True).save(tmp_path / "second")  # the same vocabularies
    seen = {}

    def caught(application_cls, config, train_examples, dev_examples, **kwargs):
        seen.update(config=config, train=train_examples, dev=dev_examples, sources=kwargs["sources"])

    monkeypatch.setattr(distill_module._loop, "train", caught)
    teachers = [str(teacher / "teacher"), str(tmp_path / "second")]
    config = DistillConfig(teacher=teachers, train=str(teacher / "train.dict"), dev=str(teacher / "dev.dict"),
                           out=str(tmp_path / "out"), mix_references=True, teacher_batch_size=50)
    distill_module.distill(config, verbose=0)
    ensemble = G2P.ensemble([G2P.load(t) for t in teachers])
    words = [w for w, _ in lexicon]
    best = _best(ensemble, words)
    assert read_cmudict(tmp_path / "out" / "distilled.txt") == [(w, [b]) for w, b in zip(words, best) if b]
    # Each word: the teacher's pronunciation first, then its references (not repeated).
    assert seen["train"] == [(w, [b] * bool(b) + [r for r in refs if r != b]) for (w, refs), b in zip(lexicon, best)]
    assert seen["dev"] == read_cmudict(teacher / "dev.dict")
    assert seen["sources"]["train"].endswith(" + " + str((teacher / "train.dict").resolve()))
    assert json.loads((tmp_path / "out" / "distill.json").read_text())["teacher_members"] == 2


def test_distill_bad_input_is_one_line_and_exit_2(teacher, tmp_path, capsys):
    base = ["--train", str(teacher / "train.dict"), "--dev", str(teacher / "dev.dict")]
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "run.json").write_text("{}")
    cases = [
        (["--teacher", str(tmp_path / "none"), *base, "--out", str(tmp_path / "o")], "--teacher: no such directory"),
        (["--teacher", str(tmp_path), *base, "--out", str(tmp_path / "o")], "not a G2P model directory"),
        (["--teacher", str(teacher / "teacher"), *base, "--out", str(tmp_path / "o"), "--stress"],
         "has no stress digits"),
        (["--teacher", str(teacher / "teacher"), *base, "--out", str(tmp_path / "busy")], "--resume"),
        (["--teacher", str(teacher / "teacher"), "--train", str(tmp_path / "missing"), "--out", str(tmp_path / "o")],
         "--train: no such file"),
        ([*base, "--out", str(tmp_path / "o")], "--teacher"),
    ]
    for argv, message in cases:
        try:
            code = distill_main(argv)
        except SystemExit as e:  # argparse's errors
            code = e.code
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert message in err and err.startswith("keras-seq distill") and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()  # nothing decoded or written
    assert json.loads((tmp_path / "busy" / "run.json").read_text()) == {}  # nothing overwritten


def test_distill_help_through_the_dispatcher(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["distill", "--help"])
    assert e.value.code == 0
    printed = capsys.readouterr().out
    for flag in ("--teacher", "--teacher-beam-width", "--mix-references", "--units", "--stress", "--resume"):
        assert flag in printed
