"""`keras-seq plot gates|curves|attention`: PNGs that depend on their input, on tiny G2P models."""

import sys

import keras
import numpy as np
import pytest

from keras_seq import plot
from keras_seq.cli import main as cli
from keras_seq.g2p import make_teacher_forcing_arrays, reverse_task
from keras_seq.g2p.model import G2P

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def train_tiny(directory, **model_kwargs):
    """A G2P model on the reversal task, two quick epochs (the pictures need weights, not skill)."""
    keras.utils.set_random_seed(0)
    lexicon = reverse_task(128, 3, 7, seed=0)
    g2p = G2P.create(lexicon, units=16, embedding_dim=8, **model_kwargs)
    data = make_teacher_forcing_arrays(lexicon, g2p.characters, g2p.phonemes)
    g2p.model.compile(keras.optimizers.Adam(0.01),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
                      run_eagerly=True)  # four steps: quicker than tracing a train function
    g2p.model.fit({"encoder_inputs": data["encoder_inputs"], "decoder_inputs": data["decoder_inputs"]},
                  data["labels"], epochs=2, batch_size=64, verbose=0)
    g2p.save(directory)
    return directory


@pytest.fixture(scope="module")
def attention_model(tmp_path_factory):
    pytest.importorskip("matplotlib")
    return train_tiny(tmp_path_factory.mktemp("lstm_attention"), cell="lstm", attention=True)


@pytest.fixture(scope="module")
def gru_model(tmp_path_factory):
    pytest.importorskip("matplotlib")
    return train_tiny(tmp_path_factory.mktemp("gru"), cell="gru", bidirectional_encoder=False)


def image(path):
    """The PNG's pixels (after checking it is a non-empty PNG)."""
    import matplotlib.image

    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_SIGNATURE)
    return matplotlib.image.imread(path)


def test_gates_of_a_bidirectional_lstm_encoder(attention_model, tmp_path):
    g2p = G2P.load(attention_model)
    characters, cell_name, parts = plot.gate_activations(g2p, "Keras", layer=0)
    assert characters == list("keras") and cell_name == "LSTMCell"
    assert set(parts) == {"forward", "backward"}
    assert parts["forward"]["f"].shape == (5, 16)
    paths = {word: tmp_path / f"{word}.png" for word in ("abcde", "edcba", "abcdefg")}
    assert cli(["plot", "gates", "--model", str(attention_model), "--word", "abcde",
                "--out", str(paths["abcde"])]) == 0
    for word in ("edcba", "abcdefg"):
        plot.plot_gates(g2p, word, paths[word])
    a, b, longer = (image(paths[w]) for w in ("abcde", "edcba", "abcdefg"))
    assert a.shape == b.shape and not np.array_equal(a, b)  # same length, other letters
    assert longer.shape[1] > a.shape[1]  # one column per character


def test_gates_of_a_one_direction_gru_encoder(gru_model, tmp_path):
    g2p = G2P.load(gru_model)
    _, cell_name, parts = plot.gate_activations(g2p, "abc")
    assert cell_name == "GRUCell" and set(parts) == {""}
    assert set(parts[""]) == {"u", "r", "c", "h"}
    one, two = tmp_path / "one.png", tmp_path / "two.png"
    plot.plot_gates(g2p, "abc", one)
    plot.plot_gates(g2p, "xyz", two)
    assert not np.array_equal(image(one), image(two))


def write_metrics(directory, wer):
    directory.mkdir()
    rows = ["epoch,loss,val_loss,dev_wer,dev_per,seconds"]
    for epoch in range(1, 6):
        rows.append(f"{epoch},{2.0 / epoch},{2.2 / epoch},{wer / epoch},{wer / 4 / epoch},{10 * epoch}")
    rows.append("6,0.3,0.35,,,60")  # an epoch without dev scores
    (directory / "metrics.csv").write_text("\n".join(rows) + "\n")
    return directory


def test_curves(tmp_path):
    pytest.importorskip("matplotlib")
    first, second = write_metrics(tmp_path / "run1", 0.6), write_metrics(tmp_path / "run2", 0.9)
    metrics = plot.read_metrics(first)
    assert metrics["epoch"].tolist() == [1, 2, 3, 4, 5, 6] and np.isnan(metrics["dev_wer"][-1])
    outs = [tmp_path / "a.png", tmp_path / "b.png"]
    for run, out in zip((first, second), outs):
        assert cli(["plot", "curves", "--run", str(run), "--out", str(out)]) == 0
    assert not np.array_equal(image(outs[0]), image(outs[1]))


def test_attention(attention_model, tmp_path):
    g2p = G2P.load(attention_model)
    characters, phonemes, weights = plot.attention_weights(g2p, "abcd")
    assert characters == list("abcd")
    assert weights.shape == (len(phonemes), 4)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    # The re-run decoder emitted the greedy output.
    out = g2p.model.generate(g2p.encode_words(["abcd"]), method="greedy")
    greedy = g2p.phonemes.decode(np.asarray(out["tokens"])[0])
    assert [p for p in phonemes if p != "</s>"] == greedy
    outs = {word: tmp_path / f"{word}.png" for word in ("abcd", "dcba", "abcdefg")}
    assert cli(["plot", "attention", "--model", str(attention_model), "--word", "abcd",
                "--out", str(outs["abcd"])]) == 0
    for word in ("dcba", "abcdefg"):
        plot.plot_attention(g2p, word, outs[word])
    a, b, longer = (image(outs[w]) for w in ("abcd", "dcba", "abcdefg"))
    assert not np.array_equal(a, b)
    assert longer.shape[1] > a.shape[1]


def test_clear_errors(gru_model, tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "x.png")
    assert cli(["plot", "attention", "--model", str(gru_model), "--word", "abc", "--out", out]) == 2
    assert "no attention" in capsys.readouterr().err
    assert cli(["plot", "curves", "--run", str(tmp_path), "--out", out]) == 2
    assert "metrics" in capsys.readouterr().err
    assert cli(["plot", "gates", "--model", str(gru_model), "--word", "", "--out", out]) == 2
    assert "No characters" in capsys.readouterr().err
    G2P.ensemble([G2P.load(gru_model), G2P.load(gru_model)]).save(tmp_path / "ensemble")
    for kind in ("gates", "attention"):
        assert cli(["plot", kind, "--model", str(tmp_path / "ensemble"), "--word", "abc", "--out", out]) == 2
        assert "an ensemble of 2 encoder-decoders" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    with pytest.raises(plot.MissingMatplotlib, match=r"pip install keras-seq\[plot\]"):
        plot.pyplot()
    assert cli(["plot", "curves", "--run", str(tmp_path), "--out", out]) == 2
    assert "keras-seq[plot]" in capsys.readouterr().err


def test_gates_of_a_deeper_encoder_layer():
    g2p = G2P.create(reverse_task(20, seed=3), units=6, embedding_dim=4, cell="elman", encoder_layers=2)
    characters, cell_name, parts = plot.gate_activations(g2p, "abc", layer=1)
    assert cell_name == "ElmanCell" and set(parts) == {"forward", "backward"}
    assert parts["backward"]["a"].shape == (3, 6)
    np.testing.assert_allclose(np.tanh(parts["forward"]["a"]), parts["forward"]["h"], atol=1e-6)
    with pytest.raises(ValueError, match="no layer 2"):
        plot.gate_activations(g2p, "abc", layer=2)
