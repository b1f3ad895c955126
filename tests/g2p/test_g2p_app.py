"""The G2P application: training (`keras_seq.g2p.train`), decoding checks, save/load, resume, CLI.

The quick synthetic task (spelling letter strings backwards) stands in for CMUdict: the same
vocabularies, model, pipeline and command line, trained in seconds.
"""

import json
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_seq.cli.tasks import average_main, ensemble_main, evaluate_main, train_main
from keras_seq.g2p.data import (
    END_ID,
    PAD_ID,
    START_ID,
    make_teacher_forcing_arrays,
    read_cmudict,
    reverse_task,
    write_cmudict,
)
from keras_seq.g2p.model import G2P
from keras_seq.g2p.config import G2PConfig
from keras_seq.g2p.train import RunExistsError, make_dataset, read_metrics, train
from keras_seq.training.loop import _prepare_out_dir

# Small, and one traced training step (static shapes): the tests spend their time compiling.
TINY = dict(units=32, embedding_dim=16, verbose=0, dev_words=50, lr_schedule="constant",
            learning_rate=1e-2, static_shapes=True)


def _exact_match(g2p, lexicon, method="greedy"):
    hyps = g2p.predict([w for w, _ in lexicon], method=method)
    return np.mean([tuple(h.split()) in refs for h, (_, refs) in zip(hyps, lexicon)])


# ---------------------------------------------------------------------------------------------
# A small trained model shared by the decoding tests
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A reverse-task LSTM G2P with attention after a short training (not perfect on purpose:
    decoding checks are most telling when the model is unsure)."""
    out = tmp_path_factory.mktemp("g2p") / "run"
    lexicon = reverse_task(600, 3, 6, seed=1)
    g2p = train(lexicon, reverse_task(60, 3, 6, seed=2), out, epochs=4, batch_size=32,
                attention=True, **TINY)
    return g2p, out, lexicon


def _decoder_arrays(tokens):
    """Teacher-forcing inputs for generated `tokens` (B, L): [<s>, y...] and labels y (end incl.)."""
    tokens = np.asarray(tokens)
    start = np.full((len(tokens), 1), START_ID, np.int32)
    return np.concatenate([start, tokens[:, :-1]], axis=1), tokens


def test_train_writes_run_directory(trained):
    g2p, out, _ = trained
    for name in ("g2p.json", "model.keras", "characters.txt", "phonemes.txt", "metrics.csv", "run.json"):
        assert (out / name).exists(), name
    assert (out / "last" / "model.keras").exists()
    assert (out / "backup" / "latest.weights.h5").exists()
    rows = read_metrics(out / "metrics.csv")
    assert list(rows[0])[:6] == ["epoch", "loss", "val_loss", "dev_wer", "dev_per", "seconds"]
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert all(0 <= float(r["dev_wer"]) <= 1 and float(r["seconds"]) > 0 for r in rows)
    state = json.loads((out / "run.json").read_text())
    assert state["finished"] and state["epochs_done"] == 4


def test_quick_task_loss_falls_well_below_chance(trained):
    g2p, out, _ = trained
    rows = read_metrics(out / "metrics.csv")
    chance = np.log(len(g2p.phonemes))  # uniform guessing over the output vocabulary
    assert float(rows[-1]["loss"]) < 0.5 * chance
    assert float(rows[-1]["val_loss"]) < 0.5 * chance
    assert float(rows[-1]["dev_per"]) < float(rows[0]["dev_per"])


def test_greedy_scores_equal_teacher_forced_scores(trained):
    g2p, _, lexicon = trained
    ids = g2p.encode_words([w for w, _ in lexicon[:40]])
    out = g2p.model.generate(ids, method="greedy")
    tokens = keras.ops.convert_to_numpy(out["tokens"])
    assert (tokens == END_ID).any(axis=1).all()
    dec, labels = _decoder_arrays(tokens)
    forced = keras.ops.convert_to_numpy(g2p.model.sequence_log_probs(ids, dec, labels))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out["scores"]), forced, rtol=1e-4, atol=1e-4)


def test_beam_width_one_equals_greedy(trained):
    g2p, _, lexicon = trained
    ids = g2p.encode_words([w for w, _ in lexicon[:40]])
    greedy = g2p.decode_ids(ids, "greedy")
    beam = g2p.decode_ids(ids, "beam", beam_width=1)
    length = min(greedy["tokens"].shape[-1], beam["tokens"].shape[-1])
    np.testing.assert_array_equal(greedy["tokens"][..., :length], beam["tokens"][..., :length])
    np.testing.assert_allclose(greedy["scores"], beam["scores"], rtol=1e-5, atol=1e-5)


def test_beam_never_worse_than_greedy(trained):
    g2p, _, lexicon = trained
    ids = g2p.encode_words([w for w, _ in lexicon[:80]])
    greedy = g2p.decode_ids(ids, "greedy")["scores"][:, 0]
    for width in (2, 4):
        beam = g2p.decode_ids(ids, "beam", beam_width=width)["scores"][:, 0]
        assert np.all(beam >= greedy - 1e-4), width


def test_saved_model_reloads_and_decodes_identically(trained, tmp_path):
    g2p, _, lexicon = trained
    g2p.save(tmp_path / "copy")
    loaded = G2P.load(tmp_path / "copy")
    assert loaded.characters == g2p.characters and loaded.phonemes == g2p.phonemes
    words = [w for w, _ in lexicon[:30]] + ["naïve", "x"]
    for method in ("greedy", "beam"):
        a, b = g2p.predict_details(words, method=method), loaded.predict_details(words, method=method)
        a, b = [r.pronunciations for r in a], [r.pronunciations for r in b]
        assert [r[0][0] for r in a] == [r[0][0] for r in b]
        assert g2p.predict(words, method=method) == [" ".join(r[0][0]) for r in b]
        np.testing.assert_allclose([r[0][1] for r in a], [r[0][1] for r in b], rtol=1e-5, atol=1e-5)


def test_returned_model_is_the_best_dev_epoch(trained):
    g2p, out, _ = trained
    best = G2P.load(out)
    for w1, w2 in zip(g2p.model.get_weights(), best.model.get_weights()):
        np.testing.assert_array_equal(w1, w2)


# ---------------------------------------------------------------------------------------------
# Learning: the quick task, every cell, attention, scheduled sampling
# ---------------------------------------------------------------------------------------------


def _fit_arrays(g2p, lexicon):
    a = make_teacher_forcing_arrays(lexicon, g2p.characters, g2p.phonemes)
    return {"encoder_inputs": a["encoder_inputs"], "decoder_inputs": a["decoder_inputs"]}, a["labels"]


@pytest.mark.parametrize(
    "settings",
    [
        dict(cell="gru", attention=True, scheduled_sampling=0.25),
        dict(cell="elman", bidirectional_encoder=False),
        pytest.param(dict(cell="lstm", context_every_step=True), marks=pytest.mark.slow),
        pytest.param(dict(cell="lstm", attention=True, scheduled_sampling=0.25, encoder_layers=2, decoder_layers=2),
                     marks=pytest.mark.slow),
    ],
    ids=["gru-attention-scheduled-sampling", "elman", "lstm-context-every-step", "lstm-stacked-scheduled-sampling"],
)
def test_encoder_decoder_trains_with_each_cell(settings):
    keras.utils.set_random_seed(0)
    lexicon = reverse_task(256, 3, 5, seed=3)
    g2p = G2P.create(lexicon, units=32, embedding_dim=16, **settings)
    x, y = _fit_arrays(g2p, lexicon)
    g2p.model.compile(keras.optimizers.Adam(1e-2),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID))
    history = g2p.model.fit(x, y, batch_size=32, epochs=25, verbose=0).history["loss"]
    chance = np.log(len(g2p.phonemes))
    assert np.isfinite(history).all()
    assert history[-1] < 0.5 * chance and history[-1] < history[0]


@pytest.mark.slow
def test_quick_task_reaches_95_percent_exact_match(tmp_path):
    """The settings of `keras-seq train reverse` (about a minute on 2 busy cores)."""
    start = time.time()
    lexicon = reverse_task(3000, 3, 6, seed=5)
    held_out = [e for e in reverse_task(400, 3, 6, seed=6) if e[0] not in dict(lexicon)][:300]
    g2p = train(lexicon, held_out, tmp_path / "run", epochs=6, batch_size=64, units=64,
                embedding_dim=32, attention=True, learning_rate=5e-3, verbose=0, dev_words=300,
                static_shapes=True)
    assert _exact_match(g2p, held_out, "greedy") >= 0.95
    assert _exact_match(g2p, held_out, "beam") >= 0.95
    assert time.time() - start < 300


# ---------------------------------------------------------------------------------------------
# Resume and run-directory protection
# ---------------------------------------------------------------------------------------------


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt("simulated interruption")


def test_resume_after_interruption_and_to_more_epochs(tmp_path):
    lexicon, dev = reverse_task(300, 3, 5, seed=7), reverse_task(40, 3, 5, seed=8)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(lexicon, dev, out, epochs=3, batch_size=32, callbacks=[_Interrupt(2)], **TINY)
    assert [r["epoch"] for r in read_metrics(out / "metrics.csv")] == ["1", "2"]
    assert not json.loads((out / "run.json").read_text())["finished"]

    with pytest.raises(RunExistsError, match="resume"):  # not without --resume
        train(lexicon, dev, out, epochs=3, batch_size=32, **TINY)
    with pytest.raises(RunExistsError, match="different run"):  # not another model
        train(lexicon, dev, out, epochs=3, batch_size=32, resume=True, **{**TINY, "units": 48})

    class FirstEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epochs = getattr(self, "epochs", []) + [epoch]

    seen = FirstEpoch()
    train(lexicon, dev, out, epochs=3, batch_size=32, resume=True, callbacks=[seen], **TINY)
    assert seen.epochs == [2]  # only the missing epoch ran
    rows = read_metrics(out / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    elapsed = [float(r["elapsed"]) for r in rows]
    assert elapsed == sorted(elapsed)
    assert json.loads((out / "run.json").read_text())["finished"]

    with pytest.raises(RunExistsError, match="finished 3 epochs"):
        train(lexicon, dev, out, epochs=3, batch_size=32, resume=True, **TINY)
    train(lexicon, dev, out, epochs=4, batch_size=32, resume=True, **TINY)  # a finished run, continued
    assert [int(r["epoch"]) for r in read_metrics(out / "metrics.csv")] == [1, 2, 3, 4]

    config = G2PConfig(out=str(out))
    _prepare_out_dir(out, G2P, config, {"train": "x"}, resume=False, overwrite=True)  # what overwrite=True does first
    assert not (out / "metrics.csv").exists() and not (out / "backup").exists()
    assert _prepare_out_dir(out, G2P, config, {"train": "x"}, resume=False, overwrite=False) is None


def test_resume_of_a_run_saved_before_an_option_existed(tmp_path):
    """A run.json written before `context_every_step` existed resumes as a run without it."""
    out = tmp_path / "run"
    out.mkdir()
    old = {**G2PConfig().model_settings(), "units": 32, "attention": False, "train_source": "x"}
    del old["context_every_step"]
    (out / "run.json").write_text(json.dumps({"settings": old, "finished": False, "epochs_done": 1}))
    asked = G2PConfig(units=32, attention=False, epochs=3)
    assert _prepare_out_dir(out, G2P, asked, {"train": "x"}, resume=True, overwrite=False)["epochs_done"] == 1
    with pytest.raises(RunExistsError, match="context_every_step=False \\(asked True\\)"):
        _prepare_out_dir(out, G2P, asked.replace(context_every_step=True), {"train": "x"}, resume=True,
                         overwrite=False)


def test_dataset_batches_are_bucketed_and_masked():
    lexicon = reverse_task(200, 2, 12, seed=9)
    g2p = G2P.create(lexicon, units=8, embedding_dim=4)
    arrays = make_teacher_forcing_arrays(lexicon, g2p.characters, g2p.phonemes)
    total = 0
    for x, y in make_dataset(arrays, 16, shuffle=True):
        enc, dec, lab = (np.asarray(t) for t in (x["encoder_inputs"], x["decoder_inputs"], y))
        lengths = (enc != PAD_ID).sum(axis=1)
        assert lengths.max() == enc.shape[1]  # padded to the batch's longest word only
        assert lengths.max() - lengths.min() <= 3  # one length bucket
        assert (dec[:, 0] == START_ID).all() and dec.shape == lab.shape
        total += len(enc)
    assert total == len(arrays["labels"])


@pytest.mark.parametrize("drop_remainder", [False, True])
def test_dataset_states_its_number_of_batches(drop_remainder):
    """The bucketed dataset's cardinality is its real number of batches, whatever the shuffle,
    so that `fit` knows the first epoch's length (and does not warn that the input ran out)."""
    lexicon = reverse_task(300, 1, 16, seed=4)
    g2p = G2P.create(lexicon, units=8, embedding_dim=4)
    arrays = make_teacher_forcing_arrays(lexicon, g2p.characters, g2p.phonemes)
    for seed in (0, 1):
        ds = make_dataset(arrays, 16, shuffle=True, seed=seed, drop_remainder=drop_remainder)
        batches = [len(y) for _, y in ds]
        assert int(ds.cardinality()) == len(batches) > 6  # several batches in each of the 6 buckets
        assert (min(batches) == 16) is drop_remainder
        assert (sum(batches) == len(arrays["labels"])) is not drop_remainder


def test_fit_on_the_bucketed_dataset_knows_its_epoch_length(tmp_path, recwarn):
    lexicon, dev = reverse_task(100, 3, 5, seed=7), reverse_task(20, 3, 5, seed=8)
    train(lexicon, dev, tmp_path / "run", epochs=1, batch_size=32, **{**TINY, "static_shapes": False})
    assert not [w for w in recwarn if "ran out of data" in str(w.message)]


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


_ROUND_TRIP = """
import sys
from keras_seq.cli import main
out, data = sys.argv[1], sys.argv[2]
code = main(["train", "reverse", "--out", out, "--words", "300", "--epochs", "2", "--units", "32",
             "--embedding-dim", "16", "--dev-words", "50", "--static-shapes"])
print("train exit code", code, flush=True)
code = code or main(["evaluate", "--model", out, "--data", data, "--limit", "30", "--beam-width", "3"])
sys.exit(code)
"""


@pytest.mark.slow  # 21 s; the default suite trains and evaluates through the CLI in tests/g2p/test_g2p_product.py
def test_cli_train_then_evaluate_round_trip(tmp_path, capsys):
    """`keras-seq train` then `keras-seq evaluate` through the real dispatcher, in one subprocess
    (one TensorFlow import instead of two)."""
    out, data = tmp_path / "rev", tmp_path / "dev.dict"
    write_cmudict(reverse_task(40, 3, 7, seed=1), data)
    run = subprocess.run([sys.executable, "-c", _ROUND_TRIP, str(out), str(data)], capture_output=True,
                         text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Epoch 1/2" in run.stdout and "Epoch 2/2" in run.stdout and "train exit code 0" in run.stdout
    assert [int(r["epoch"]) for r in read_metrics(out / "metrics.csv")] == [1, 2]
    assert "WER: " in run.stdout and "PER: " in run.stdout and "words/s" in run.stdout
    assert "30 words" in run.stdout and "beam search, width 3" in run.stdout
    # The same entry points in this process: greedy evaluation, and a second run refused.
    assert evaluate_main(["--model", str(out), "--data", str(data), "--greedy"]) == 0
    printed = capsys.readouterr().out
    assert "greedy search" in printed and "WER: " in printed
    # --train: the words also in the training file scored apart, checked against the predictions.
    lexicon = read_cmudict(data)
    seen = tmp_path / "seen.dict"
    write_cmudict(lexicon[:10], seen)
    pred = tmp_path / "pred.txt"
    assert evaluate_main(["--model", str(out), "--data", str(data), "--greedy", "--train", str(seen),
                          "--output", str(pred)]) == 0
    printed = capsys.readouterr().out
    hyps = {line.split()[0].lower(): tuple(line.split()[1:]) for line in pred.read_text().splitlines()}
    for name, subset in [("not in --train", lexicon[10:]), ("also in --train", lexicon[:10])]:
        wrong = sum(hyps[w] not in [tuple(r) for r in refs] for w, refs in subset)
        assert f"{name}: {len(subset)} words, WER {100 * wrong / len(subset):.2f}%" in printed
    extra = dict(read_cmudict(seen))
    wrong = sum(hyps[w] not in [tuple(r) for r in [*refs, *extra.get(w, [])]] for w, refs in lexicon)
    assert f"all words, --train pronunciations also references: WER {100 * wrong / len(lexicon):.2f}%" in printed
    assert train_main(["reverse", "--out", str(out), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "Traceback" not in err


def test_cli_bad_input_exit_code_2(tmp_path, capsys):
    """A one-line message naming the problem (the file and line of a bad dictionary line)."""
    bad = tmp_path / "bad.dict"
    bad.write_text("HELLO  HH AH L OW\nWORLD\n")
    good = tmp_path / "good.dict"
    good.write_text("HELLO  HH AH L OW\n")
    cases = [
        (train_main, ["g2p", "--train", str(tmp_path / "missing"), "--out", str(tmp_path / "o")], "no such file"),
        (train_main, ["g2p", "--train", str(bad), "--out", str(tmp_path / "o")], f"{bad}, line 2"),
        (train_main, ["g2p", "--train", str(good), "--dev", str(bad), "--out", str(tmp_path / "o")], "line 2"),
        (train_main, ["g2p", "--train", str(good), "--out", str(tmp_path / "o"), "--epochs", "0"], "positive"),
        (train_main, ["g2p", "--train", str(good), "--out", str(tmp_path / "o"), "--cell", "tree"], "invalid choice"),
        (train_main, ["g2p", "--out", str(tmp_path / "o")], "--train"),
        (train_main, ["nosuchtask"], "invalid choice"),
        (evaluate_main, ["--model", str(tmp_path / "nomodel"), "--data", str(good)], "no such directory"),
        (evaluate_main, ["--model", str(tmp_path), "--data", str(tmp_path / "missing")], "no such file"),
        (evaluate_main, ["--model", str(tmp_path), "--data", str(bad)], "line 2"),
        (evaluate_main, ["--model", str(tmp_path), "--data", str(good), "--train", str(tmp_path / "none")], "--train: no such file"),
        (evaluate_main, ["--model", str(tmp_path), "--data", str(good)], "not a keras-seq G2P model"),
        (evaluate_main, ["--model", str(tmp_path), "--data", str(good), "--greedy", "--beam-width", "2"], "not allowed"),
        (evaluate_main, ["--model", str(tmp_path)], "--data"),
    ]
    with pytest.raises(SystemExit) as e:  # --help is not an error
        train_main(["g2p", "--help"])
    assert e.value.code == 0 and "--attention" in capsys.readouterr().out
    for main, argv, message in cases:
        try:
            code = main(argv)
        except SystemExit as e:  # argparse errors
            code = e.code
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert message in err, (argv, err)
        assert err.startswith("keras-seq "), err
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 3, err


# ---------------------------------------------------------------------------------------------
# Strategies and precisions (the hooks of the training-at-scale work)
# ---------------------------------------------------------------------------------------------


def test_bad_strategy_precision_and_batch_are_refused(tmp_path):
    lexicon = reverse_task(20, 3, 4)
    with pytest.raises(ValueError, match="unknown strategy"):
        train(lexicon, None, tmp_path / "a", strategy="nccl-ring", **TINY)
    with pytest.raises(ValueError, match="unknown precision"):
        train(lexicon, None, tmp_path / "b", precision="float8", **TINY)
    with pytest.raises(ValueError, match="positive integer"):
        train(lexicon, None, tmp_path / "c", epochs=0, **TINY)


_MIRRORED_SCRIPT = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, sys
import numpy as np
from keras_seq.g2p.data import reverse_task
from keras_seq.g2p.model import G2P
from keras_seq.g2p.train import train, read_metrics
lexicon = reverse_task(300, 3, 5, seed=1)
for strategy, precision in [("mirrored", "float32"), ("default", "mixed_bfloat16")]:
    out = f"{sys.argv[1]}/{strategy}-{precision}"
    g2p = train(lexicon, None, out, epochs=2, batch_size=32, units=32, embedding_dim=16, verbose=0,
                dev_words=20, strategy=strategy, precision=precision, static_shapes=True,
                learning_rate=1e-2)
    assert g2p.model.dtype_policy.name == precision, g2p.model.dtype_policy.name
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    losses = [float(r["loss"]) for r in read_metrics(f"{out}/metrics.csv")]
    assert losses[-1] < losses[0], losses
    words = ["abc", "hello"]
    a, b = [[r.pronunciations for r in m.predict_details(words)] for m in (G2P.load(out), g2p)]
    assert [r[0][0] for r in a] == [r[0][0] for r in b], (a, b)
    assert np.allclose([r[0][1] for r in a], [r[0][1] for r in b], atol=1e-3), (a, b)
    print(strategy, precision, "ok", losses)
"""


@pytest.mark.slow
def test_mirrored_strategy_and_mixed_precision_train(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT, str(tmp_path)], capture_output=True,
                         text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "mirrored float32 ok" in run.stdout and "default mixed_bfloat16 ok" in run.stdout


def test_cli_passes_context_every_step_and_keep_epochs_to_train():
    from keras_seq.cli.tasks import TASKS, _train_parser
    from keras_seq.training.config import from_arguments

    for flags, context, keep in [([], False, 0), (["--context-every-step", "--keep-epochs", "3"], True, 3)]:
        config = from_arguments(_train_parser().parse_args(["g2p", "--train", "t.dict", "--out", "o", *flags]),
                                TASKS["g2p"])
        assert (config.context_every_step, config.keep_epochs) == (context, keep)


def test_cli_ensemble_makes_a_model_directory_that_evaluates(tmp_path, capsys):
    lexicon = reverse_task(60, 3, 6, seed=1)
    data = tmp_path / "dev.dict"
    write_cmudict(lexicon, data)
    dirs = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        G2P.create(lexicon, units=16, embedding_dim=8, beam_width=3).save(tmp_path / f"m{seed}")
        dirs.append(str(tmp_path / f"m{seed}"))
    out = tmp_path / "ensemble"
    assert ensemble_main([*dirs, "--out", str(out)]) == 0
    assert f"{out}: an ensemble of 2 encoder-decoders" in capsys.readouterr().out
    words = [w for w, _ in lexicon[:8]]
    direct = G2P.ensemble([G2P.load(d) for d in dirs])
    assert G2P.load(out).predict_details(words, num_results=2) == direct.predict_details(words, num_results=2)
    assert G2P.load(out).beam_width == 3
    assert evaluate_main(["--model", str(out), "--data", str(data), "--limit", "10"]) == 0
    assert "WER: " in capsys.readouterr().out
    # An ensemble of an ensemble and a model has three members.
    assert len(G2P.ensemble([G2P.load(out), G2P.load(dirs[0])]).model.members) == 3

    G2P.create(lexicon[:2], units=16, embedding_dim=8).save(tmp_path / "small")  # fewer characters
    for argv, message in [
        ([dirs[0], "--out", str(tmp_path / "a")], "at least two models"),
        ([*dirs, "--out", str(out)], "is not empty"),
        ([dirs[0], str(tmp_path / "missing"), "--out", str(tmp_path / "b")], "no such directory"),
        ([dirs[0], str(tmp_path / "small"), "--out", str(tmp_path / "c")], "another characters vocabulary"),
    ]:
        assert ensemble_main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    assert not (tmp_path / "c").exists()


@pytest.mark.slow  # 40 s of training: -m slow keeps the default suite under 15 minutes
def test_keep_epochs_then_average_them(tmp_path, capsys):
    """`keep_epochs=2` keeps the last two epochs' models; `keras-seq average` writes a model whose
    weights are their NumPy mean, which decodes; models of another configuration are refused."""
    lexicon, dev = reverse_task(120, 3, 5, seed=7), reverse_task(20, 3, 5, seed=8)
    out = tmp_path / "run"
    train(lexicon, dev, out, epochs=3, batch_size=32, keep_epochs=2, **TINY)
    epochs = sorted(p.name for p in (out / "epochs").iterdir())
    assert epochs == ["epoch-2", "epoch-3"]
    members = [G2P.load(out / "epochs" / name) for name in epochs]
    averaged = tmp_path / "averaged"
    assert average_main([*(str(out / "epochs" / n) for n in epochs), "--out", str(averaged)]) == 0
    assert f"{averaged}: the mean of the weights of 2 models" in capsys.readouterr().out
    got = G2P.load(averaged).model.get_weights()
    for i, (a, b) in enumerate(zip(members[0].model.get_weights(), members[1].model.get_weights())):
        if np.issubdtype(a.dtype, np.floating):
            np.testing.assert_allclose(got[i], (a.astype(np.float64) + b) / 2, rtol=1e-6, atol=1e-7)
    assert not np.allclose(got[1], members[0].model.get_weights()[1])  # the epochs differ
    write_cmudict(dev, tmp_path / "dev.dict")
    assert evaluate_main(["--model", str(averaged), "--data", str(tmp_path / "dev.dict"), "--greedy"]) == 0
    assert "WER: " in capsys.readouterr().out

    G2P.create(lexicon, units=8, embedding_dim=4).save(tmp_path / "other")
    G2P.ensemble(members).save(tmp_path / "ensemble")
    for argv, message in [
        ([str(out / "epochs/epoch-2"), str(tmp_path / "other"), "--out", str(tmp_path / "a")], "another model configuration"),
        ([str(out / "epochs/epoch-2"), str(tmp_path / "ensemble"), "--out", str(tmp_path / "b")], "ensemble"),
    ]:
        assert average_main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    with pytest.raises(ValueError, match="keep_epochs"):
        train(lexicon, dev, tmp_path / "bad", epochs=1, keep_epochs=-1, **TINY)
    train(lexicon, dev, out, epochs=1, batch_size=32, overwrite=True, **TINY)  # a new run: no old epochs
    assert not (out / "epochs").exists()
