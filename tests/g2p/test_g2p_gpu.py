"""bench/g2p_gpu.py: prepared here (TensorFlow), trained on the JAX backend in another process (as on
the JAX-only GPU machine), imported back and scored here by `keras-seq evaluate`: the greedy WER
measured on JAX equals the one measured on TensorFlow, so the weights and the model survive the trip."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from keras_seq.cli.tasks import evaluate_main
from keras_seq.g2p.data import reverse_task, write_cmudict

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "g2p_gpu.py"


def _run(*args, backend="tensorflow"):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": backend}
    run = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                         timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def test_prepare_train_on_jax_import_round_trip(tmp_path, capsys):
    train, dev = tmp_path / "train.dict", tmp_path / "dev.dict"
    write_cmudict(reverse_task(1000, 3, 6, seed=1), train)
    write_cmudict(reverse_task(60, 3, 6, seed=2), dev)
    prepared, trained, model = tmp_path / "prepared", tmp_path / "trained", tmp_path / "model"
    _run("prepare", "--train", train, "--dev", dev, "--out", prepared, "--units", 64, "--embedding-dim", 16,
         "--encoder-layers", 1, "--attention", "--context-every-step", "--dropout", 0.0, "--learning-rate", 0.01, "--batch-size", 32)
    _run("train", "--prepared", prepared, "--out", trained, "--epochs", 8, "--seconds", 500, "--dropout", 0.0,
         "--select-every", "--select-from", 2, "--weights-dtype", "float32", backend="jax")
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["epochs"] == 8 and summary["chosen"] in summary["greedy_dev_wer"]
    assert [h["epoch"] for h in summary["history"]] == list(range(1, 9))
    assert summary["history"][-1]["loss"] < summary["history"][0]["loss"]
    # Model selection on dev: the kept weights are the ones with the lowest greedy dev WER.
    wer_there = summary["greedy_dev_wer"][summary["chosen"]]
    assert wer_there == min(summary["greedy_dev_wer"].values())
    assert wer_there < 0.5, summary["greedy_dev_wer"]  # a model that decodes words, not an empty one

    _run("import", "--prepared", prepared, "--weights", trained, "--config", trained / "config.json",
         "--out", model)
    assert evaluate_main(["--model", str(model), "--data", str(dev), "--greedy"]) == 0
    wer_here = float(re.search(r"WER: ([\d.]+)%", capsys.readouterr().out).group(1)) / 100
    # Same weights, two backends: at most one word may flip on a near tie of two logits.
    assert abs(wer_here - wer_there) <= 1 / 60 + 1e-9, (wer_here, wer_there)


def test_import_refuses_weights_of_another_model(tmp_path):
    train = tmp_path / "train.dict"
    write_cmudict(reverse_task(50, 3, 5, seed=1), train)
    small, large = tmp_path / "small", tmp_path / "large"
    _run("prepare", "--train", train, "--dev", train, "--out", small, "--units", 8, "--encoder-layers", 1)
    _run("prepare", "--train", train, "--dev", train, "--out", large, "--units", 16, "--encoder-layers", 1)
    # Weights of the small model (as the train step writes them), offered to the large one.
    code = (
        "import sys, json, numpy as np; sys.path.insert(0, sys.argv[1]); import g2p_gpu;"
        "from keras_seq.models.seq2seq import EncoderDecoder;"
        "m = EncoderDecoder.from_config(json.load(open(sys.argv[2]))['model']); m.build();"
        "g2p_gpu._save_weights(__import__('pathlib').Path(sys.argv[3]), [v.path for v in m.weights],"
        " [v.numpy() for v in m.weights])"
    )
    weights = tmp_path / "weights"
    weights.mkdir()
    subprocess.run([sys.executable, "-c", code, str(ROOT / "bench"), str(small / "settings.json"), str(weights)],
                   check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run([sys.executable, str(SCRIPT), "import", "--prepared", str(large), "--weights", str(weights),
                          "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode != 0
    assert "do not match" in run.stderr or "shape" in run.stderr.lower()
    assert not (tmp_path / "out").exists()
