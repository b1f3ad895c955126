"""TPU readiness, proven on CPU: the training step `keras-seq train` builds compiles with XLA for
static batch shapes (one per length bucket on JAX, one in all on TensorFlow) and full batches, on
both backends (`keras_seq.distribute.check_tpu_constraints`).

Each backend runs the CLI in a subprocess whose `keras_seq.distribute.fit` is replaced by the
check: it gets the very model, dataset and strategy the CLI's training loop made. On JAX the
run is ``--strategy tpu`` over 2 CPU devices (DataParallel, as over a TPU VM's chips; it implies
``--static-shapes``); on TensorFlow (whose "tpu" strategy needs a TPU) it is ``--static-shapes``,
what "tpu" implies. The same CLI without static shapes (length buckets) must fail the check.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r'''
import json, sys
import keras
import keras_seq.distribute as distribute
from keras_seq.cli import main

seen = []

def fit(model, strategy, dataset, **kwargs):  # the check instead of training
    try:
        seen.append({"losses": distribute.check_tpu_constraints(model, dataset, strategy=strategy),
                     "replicas": strategy.num_replicas_in_sync, "jit_compile": model.jit_compile})
    except ValueError as e:
        seen.append({"error": str(e)})

distribute.fit = fit
codes = [main(argv) for argv in json.loads(sys.argv[1])]
print("RESULT" + json.dumps({"codes": codes, "seen": seen, "backend": keras.backend.backend()}))
'''


# Both cases (20-45 s each) run with -m slow: the default suite stays under 15 minutes.
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_cli_training_step_compiles_with_xla_for_static_shapes(backend, tmp_path):
    from keras_seq.g2p.data import reverse_task, write_cmudict

    train = tmp_path / "train.dict"
    write_cmudict(reverse_task(96, 3, 7, seed=1), train)  # words of 3 to 7 letters: several buckets
    common = ["train", "g2p", "--train", str(train), "--dev", str(train), "--units", "8", "--embedding-dim", "4",
              "--batch-size", "16", "--epochs", "1", "--dev-words", "0"]
    static = ["--strategy", "tpu"] if backend == "jax" else ["--static-shapes"]
    argv = [[*common, "--out", str(tmp_path / "static"), *static],
            [*common, "--out", str(tmp_path / "buckets"), "--no-static-shapes"]]
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
               XLA_FLAGS="--xla_force_host_platform_device_count=2",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    (tmp_path / "check.py").write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(tmp_path / "check.py"), json.dumps(argv)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert result["backend"] == backend and result["codes"] == [0, 0]
    static_run, bucketed = result["seen"]
    assert "error" not in static_run, static_run["error"]
    assert static_run["jit_compile"] is True and len(static_run["losses"]) == 1
    assert static_run["replicas"] == (2 if backend == "jax" else 1)
    settings = json.loads((tmp_path / "static" / "settings.json").read_text())
    assert settings["static_shapes"] is True and settings["strategy"] == ("tpu" if backend == "jax" else "default")
    # Without static shapes: TensorFlow traces buckets of any length (a dynamic shape); JAX's
    # fixed-size buckets are static, but their partial batches are not full batches.
    expected = "partial batches" if backend == "jax" else "dynamic shape"
    assert expected in bucketed.get("error", ""), bucketed
