"""The README's main job, `keras-seq demo`, end to end in a fresh process on a tiny budget."""

import os
import subprocess
import sys

from keras_seq.g2p import reverse_task, write_cmudict


def test_demo_trains_exports_serves_and_predicts_over_grpc(tmp_path):
    data = tmp_path / "tiny.dict"
    write_cmudict(reverse_task(300, 3, 6, seed=0), data)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    command = [
        sys.executable, "-m", "keras_seq.cli", "demo", "--data", str(data), "--minutes", "0.05",
        "--model-dir", str(tmp_path / "model"), "--export-base", str(tmp_path / "export" / "g2p"),
        "abc", "hello",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    out = result.stdout
    for step in ("[1/4]", "[2/4]", "[3/4]", "[4/4]"):
        assert step in out
    assert (tmp_path / "export" / "g2p" / "1" / "saved_model.pb").exists()
    assert (tmp_path / "export" / "g2p" / "1" / "assets.extra" / "tf_serving_warmup_requests").exists()
    rows = [line.split() for line in out.splitlines() if line.startswith(("abc ", "hello "))]
    assert [r[0] for r in rows] == ["abc", "hello"], out
    assert all(r[-1] == "ms" for r in rows)
    assert "Served by model g2p, version 1" in out
    # It ends with the commands that serve the export again, and query it over REST.
    tail = out.rstrip().splitlines()[-2:]
    assert tail[0].strip().startswith("keras-seq serve --model_name=g2p --model_base_path=")
    assert str(tmp_path / "export" / "g2p") in tail[0] and "--rest_api_port=8501" in tail[0]
    assert tail[1].strip().startswith("curl -d '{\"inputs\": {\"words\": [") and tail[1].endswith(":predict")

    # A second run reuses the trained model and exports the next version.
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Reusing the model" in result.stdout
    assert "Served by model g2p, version 2" in result.stdout


def test_demo_pretrained_takes_the_shipped_model_without_training(capsys):
    """`keras-seq demo --pretrained`: step 1 is the packaged model (fails until it is packaged)."""
    import numpy as np

    from keras_seq.demo import build_parser, train_or_load
    from keras_seq.g2p import load_pretrained

    args = build_parser().parse_args(["--pretrained", "--model-dir", "/nonexistent/never-trained"])
    g2p = train_or_load(args)
    assert "[1/4] Using the pretrained G2P model" in capsys.readouterr().out
    for got, want in zip(g2p.model.get_weights(), load_pretrained().model.get_weights()):
        np.testing.assert_array_equal(got, want)
    assert not build_parser().parse_args([]).pretrained  # the default path still trains
