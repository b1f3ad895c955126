"""Every example of `examples/` runs with its tiny budget, so that none of them rots.

All examples run in one subprocess (TensorFlow imported once), each through `runpy` as
`__main__` with `--tiny`, so each also runs exactly as `python examples/NAME.py --tiny` would.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FIGURES = [
    "fig_10_03_elman_seq2seq_same_length.py",
    "fig_10_04_06_output_recurrence_teacher_forcing.py",
    "fig_10_05_sequence_to_one.py",
    "fig_10_08_language_model_sampling.py",
    "fig_10_09_vector_to_sequence.py",
    "fig_10_10_conditional_sequence.py",
    "fig_10_11_bidirectional.py",
    "fig_10_12_encoder_decoder.py",
    "eq_10_40_lstm_gates.py",
    "eq_10_45_gru_gates.py",
]

RUNNER = r"""
import json, runpy, sys, time, traceback
results = {}
for path in sys.argv[1:]:
    start = time.time()
    sys.argv = [path, "--tiny"]
    try:
        runpy.run_path(path, run_name="__main__")
        results[path] = ["ok", round(time.time() - start, 1)]
    except BaseException:
        results[path] = [traceback.format_exc(), round(time.time() - start, 1)]
print("RESULTS " + json.dumps(results))
"""


def test_one_example_per_figure_each_with_a_tiny_flag():
    present = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert sorted(FIGURES) == [p for p in present if not p.startswith("_")]
    for name in FIGURES:
        text = (EXAMPLES / name).read_text()
        assert text.startswith('"""') and "--tiny" in text and "KERAS_SEQ_EXAMPLE_TINY" in text, name


def test_every_example_runs_with_a_tiny_budget(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow", "MPLBACKEND": "Agg"}
    paths = [str(EXAMPLES / name) for name in FIGURES]
    proc = subprocess.run([sys.executable, "-c", RUNNER, *paths], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULTS ")]
    if not lines:
        pytest.fail(f"the examples' runner died (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    results = json.loads(lines[-1][len("RESULTS "):])
    failed = {Path(p).name: r[0] for p, r in results.items() if r[0] != "ok"}
    assert not failed, "\n\n".join(f"{name}:\n{error}" for name, error in failed.items())
    assert "Fig. 10.8" in proc.stdout and "memory unit" in proc.stdout  # they print what they learned
