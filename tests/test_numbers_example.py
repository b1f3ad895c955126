"""examples/numbers/make_data.py: the number verbalization task's pairs, against num2words itself."""

import subprocess
import sys
from pathlib import Path

import pytest

from keras_seq.text import read_pairs

num2words = pytest.importorskip("num2words").num2words
SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "numbers" / "make_data.py"


def _make(out, seed=0, n=(300, 50, 100)):
    subprocess.run([sys.executable, str(SCRIPT), str(out), "--seed", str(seed), "--train", str(n[0]),
                    "--dev", str(n[1]), "--test", str(n[2])], check=True, capture_output=True)
    return {name: read_pairs(out / f"{name}.tsv") for name in ("train", "dev", "test")}


def test_parts_are_disjoint_seeded_and_spoken_as_num2words_says(tmp_path):
    parts = _make(tmp_path / "a")
    assert [len(parts[k]) for k in ("train", "dev", "test")] == [300, 50, 100]
    sources = [set(s for s, _ in parts[k]) for k in ("train", "dev", "test")]
    assert not (sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2])
    assert _make(tmp_path / "b") == parts  # the same seed, the same pairs
    assert _make(tmp_path / "c", n=(500, 50, 100))["test"] == parts["test"]  # the test part does not move
    checked = 0
    for source, (target,) in (pair for part in parts.values() for pair in part):
        assert "," not in target and target == " ".join(target.split())
        if source.isdigit():
            assert target == num2words(int(source)).replace(",", "")
            checked += 1
        elif source.startswith("in "):
            assert target == "in " + num2words(int(source[3:]), to="year").replace(",", "")
            checked += 1
        elif source.endswith("%"):
            assert target == num2words(int(source[:-1])).replace(",", "") + " percent"
            checked += 1
    assert checked > 100
