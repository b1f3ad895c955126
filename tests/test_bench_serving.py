"""bench/serving.py runs end to end on the toy model (no timing is asserted: speed lives in bench/RESULTS.md)."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_in_process_only_decodes_every_word_of_a_cmudict_file(tmp_path):
    words = tmp_path / "words.dict"
    words.write_text(";;; a comment\nHELLO  HH AH L OW\nHELLO(2)  HH EH L OW\nWORLD  W ER L D\n", encoding="utf-8")
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "serving.py"), "--in_process_only", "--rounds", "1",
         "--words", str(words)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "batching" not in run.stdout  # no server was started
    assert re.search(r"in-process batch 256: +\d+ words/s", run.stdout), run.stdout
    # Two distinct words: the variant HELLO(2) is the same word.
    assert re.search(r"all 2 words of .*words\.dict in batches of 256: \d+ words/s", run.stdout), run.stdout
