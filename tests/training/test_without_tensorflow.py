"""Training on a machine without TensorFlow (a JAX-only GPU or TPU machine), and the trip back.

A fresh process on the JAX backend in which importing TensorFlow fails (a `sitecustomize` that
refuses it, as on a machine where it is not installed) runs `keras-seq train g2p`; the run
directory is packed by `bench/g2p_gpu.py pack` (the lent GPU machine's files come back in parts
of under 16 MB), unpacked here, and TensorFlow's `keras-seq evaluate` of it scores the dev words
as the JAX process's dev scoring of its best epoch did.
"""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "g2p_gpu.py"

NO_TENSORFLOW = '''
import sys

class RefuseTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, RefuseTensorFlow())
'''


def _run_without_tensorflow(tmp_path, *args, returncode=0):
    site = tmp_path / "no-tensorflow"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(NO_TENSORFLOW)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([str(site), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run([sys.executable, *map(str, args)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == returncode, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout + proc.stderr


def test_train_on_jax_without_tensorflow_pack_unpack_evaluate(tmp_path, capsys):
    from keras_seq.cli import main
    from keras_seq.g2p.data import reverse_task, write_cmudict

    train, dev, run = tmp_path / "train.dict", tmp_path / "dev.dict", tmp_path / "run"
    write_cmudict(reverse_task(960, 3, 5, seed=1), train)
    write_cmudict(reverse_task(40, 3, 5, seed=2), dev)
    probe = _run_without_tensorflow(tmp_path, "-c", "import keras_seq.training.data as d; print(d.tensorflow_available())")
    assert probe.strip().endswith("False")  # the refusal works: the training below had no TensorFlow
    _run_without_tensorflow(
        tmp_path, "-m", "keras_seq.cli", "train", "g2p", "--train", train, "--dev", dev, "--out", run,
        "--epochs", 5, "--units", 32, "--embedding-dim", 16, "--attention", "--batch-size", 16,
        "--learning-rate", 0.01, "--dev-words", 40)
    _run_without_tensorflow(tmp_path, SCRIPT, "pack", run, tmp_path / "packed")
    parts = sorted(p.name for p in (tmp_path / "packed").glob("model.keras.part-*"))
    assert parts and "model.keras" not in os.listdir(tmp_path / "packed")
    back = tmp_path / "back"
    subprocess.run([sys.executable, str(SCRIPT), "unpack", str(tmp_path / "packed"), str(back)], check=True,
                   capture_output=True)
    assert (back / "model.keras").read_bytes() == (run / "model.keras").read_bytes()

    rows = list(csv.DictReader(open(back / "metrics.csv")))
    best = json.loads((back / "run.json").read_text())["best_epoch"]
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
    assert float(rows[best - 1]["dev_per"]) < 0.6, rows  # a model that decodes: the comparison means something
    capsys.readouterr()
    assert main(["evaluate", "--model", str(back), "--data", str(dev), "--greedy"]) == 0
    text = capsys.readouterr().out
    wer = float(re.search(r"WER: ([\d.]+)%", text).group(1)) / 100
    assert abs(wer - float(rows[best - 1]["dev_wer"])) <= 1 / 40 + 1e-9, (text, rows)  # one near tie may flip

    # What needs TensorFlow on any backend says so in one line.
    said = _run_without_tensorflow(tmp_path, "-m", "keras_seq.cli", "export", "--model", back, returncode=2)
    assert said.strip() == ("keras-seq export: needs TensorFlow, which is not installed here (pip install tensorflow); "
                            "without it, train and evaluate run on KERAS_BACKEND=jax")


def test_unpack_refuses_damaged_or_missing_parts_and_never_overwrites(tmp_path):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import g2p_gpu
    finally:
        sys.path.remove(str(SCRIPT.parent))
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(np.random.default_rng(0).bytes(2500))
    (run / "settings.json").write_text("{}")
    g2p_gpu.pack(run, tmp_path / "packed", part_bytes=1000)
    assert len(list((tmp_path / "packed").glob("model.keras.part-*"))) == 3

    (tmp_path / "taken").mkdir()
    with pytest.raises(SystemExit, match="already exists"):
        g2p_gpu.unpack(tmp_path / "packed", tmp_path / "taken")
    part = tmp_path / "packed" / "model.keras.part-001"
    data = part.read_bytes()
    part.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(SystemExit, match="model.keras differ"):
        g2p_gpu.unpack(tmp_path / "packed", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    part.unlink()
    with pytest.raises(SystemExit, match="lacks model.keras.part-001"):
        g2p_gpu.unpack(tmp_path / "packed", tmp_path / "out")
    part.write_bytes(data)
    g2p_gpu.unpack(tmp_path / "packed", tmp_path / "out")
    assert (tmp_path / "out" / "model.keras").read_bytes() == (run / "model.keras").read_bytes()
