"""A general string-to-string task end to end: TSV pairs -> keras-seq train seq2seq -> predict,
evaluate -> export -> keras-seq serve -> the stock TF Serving gRPC stubs."""

import json
import os

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from keras_seq.cli.export import main as export_main
from keras_seq.cli.predict import main as predict_main
from keras_seq.cli.tasks import average_main, evaluate_main, train_main
from keras_seq.seq2seq import TextSeq2Seq
from keras_seq.text import SourceTooLongError


def _reverse_pairs(n, seed):
    rng = np.random.default_rng(seed)
    words = {"".join(rng.choice(list("abcdef"), size=rng.integers(2, 6))) for _ in range(n)}
    return [(w, " ".join(reversed(w))) for w in sorted(words)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seq2seq")
    for name, seed in (("train", 0), ("dev", 1)):
        (tmp / f"{name}.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in _reverse_pairs(600 if name == "train" else 60, seed)))
    out = tmp / "run"
    argv = ["seq2seq", "--train", str(tmp / "train.tsv"), "--dev", str(tmp / "dev.tsv"), "--out", str(out),
            "--epochs", "6", "--batch-size", "16", "--units", "48", "--embedding-dim", "16", "--target-split", "words",
            "--max-input-length", "8", "--keep-epochs", "2"]
    assert train_main(argv) == 0
    return tmp, out, argv


def test_train_writes_a_run_directory_with_its_settings(run):
    tmp, out, argv = run
    for name in ("seq2seq.json", "model.keras", "source_vocabulary.txt", "target_vocabulary.txt", "metrics.csv",
                 "settings.json", "run.json"):
        assert (out / name).exists(), name
    settings = json.loads((out / "settings.json").read_text())
    assert (settings["epochs"], settings["units"], settings["target_split"], settings["attention"]) == (6, 48, "words", True)
    header = (out / "metrics.csv").read_text().splitlines()[0]
    assert header.startswith("epoch,loss,val_loss,dev_ser,dev_ter,")
    last = (out / "metrics.csv").read_text().splitlines()[-1].split(",")
    assert float(last[3]) < 0.5  # it learned: fewer than half the dev outputs wrong after 6 epochs


def test_a_run_is_never_overwritten_without_overwrite_and_resume_checks_settings(run, capsys):
    tmp, out, argv = run
    before = (out / "model.keras").read_bytes()
    assert train_main(argv) == 2
    assert "already holds a finished training run" in capsys.readouterr().err
    assert train_main([*argv[:-6], "--units", "32", "--resume", "--epochs", "7"]) == 2
    assert "holds a different run (units=48 (asked 32)" in capsys.readouterr().err
    assert (out / "model.keras").read_bytes() == before


def test_bad_tsv_line_is_named_with_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("ab\tb a\nno tab\n")
    assert train_main(["seq2seq", "--train", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert f"{bad}:2: expected 'source<TAB>target', found no tab" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_python_and_offline_cli_predict_agree_and_refuse_too_long_sources(run, capsys, tmp_path):
    tmp, out, _ = run
    model = TextSeq2Seq.load(out)
    results = model.predict(["abc", "", "fed"])
    assert results[1] == [("", 0.0)]  # an empty source gets an empty result, not a guess
    assert all(isinstance(r[0][0], str) for r in results)
    assert model.predict(["abz"])[0][0][0] is not None  # "z" is not in the vocabulary: <unk>, not a crash
    with pytest.raises(SourceTooLongError, match="has 9 tokens; the model reads at most 8"):
        model.predict(["abcdefabc"])
    (tmp_path / "in.txt").write_text("abc\n\nfed\n")
    assert predict_main(["--model", str(out), "--input", str(tmp_path / "in.txt")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"abc\t{results[0][0][0]}", "\t", f"fed\t{results[2][0][0]}"]
    (tmp_path / "in.txt").write_text("abc\nabcdefabc\n")
    assert predict_main(["--model", str(out), "--input", str(tmp_path / "in.txt")]) == 2
    assert f"{tmp_path / 'in.txt'}:2: source 'abcdefabc' has 9 tokens" in capsys.readouterr().err


def test_predict_decodes_batches_of_similar_length_and_keeps_the_order(run):
    _, out, _ = run
    model = TextSeq2Seq.load(out)
    sources = ["abcdef", "ab", "abcde", "", "abc", "fedcba", "a"]
    alone = [model.predict([s])[0] for s in sources]
    widths, decode = [], model.decode_ids
    model.decode_ids = lambda ids, *args: (widths.append(ids.shape[1]), decode(ids, *args))[1]
    together = model.predict(sources, batch_size=2)
    assert widths == [1, 3, 6, 6]  # "" and "a", "ab" and "abc", the 5- and 6-, then the last 6-letter source
    assert [[text for text, _ in r] for r in together] == [[text for text, _ in r] for r in alone]
    np.testing.assert_allclose([r[0][1] for r in together], [r[0][1] for r in alone], rtol=1e-5, atol=1e-5)


def test_offline_cli_predict_takes_num_results_and_max_length(run, capsys):
    _, out, _ = run
    assert predict_main(["--model", str(out), "--beam-width", "3", "--num-results", "2", "--max-length", "2",
                         "abcde"]) == 0
    short = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert len(short) == 2 and all(source == "abcde" and len(text.split()) <= 2 for source, text, _ in short)
    assert len(TextSeq2Seq.load(out).predict(["abcde"], beam_width=3)[0][0][0].split()) > 2  # the limit cut it
    assert predict_main(["--model", str(out), "--max-length", "999", "abc"]) == 2
    assert "`max_length` must be between 1 and" in capsys.readouterr().err


def test_evaluate_prints_exact_match_and_token_error_rate(run, capsys):
    tmp, out, _ = run
    assert evaluate_main(["--model", str(out), "--data", str(tmp / "dev.tsv")]) == 0
    text = capsys.readouterr().out
    assert "exact match:" in text and "token error rate:" in text and "sources/s" in text


def test_average_of_kept_epochs_is_a_model_directory(run, capsys):
    tmp, out, _ = run
    epochs = sorted((out / "epochs").iterdir())
    assert len(epochs) == 2
    assert average_main([*map(str, epochs), "--out", str(tmp / "avg")]) == 0
    assert TextSeq2Seq.load(tmp / "avg").predict(["abc"])[0][0][0]


def test_export_serves_strings_through_the_stock_grpc_stubs(run, capsys):
    from keras_seq.serving.server import create_server

    tmp, out, _ = run
    model = TextSeq2Seq.load(out)
    base = tmp / "export" / "rev"
    assert export_main(["--model", str(out), "--base-path", str(base)]) == 0
    path = capsys.readouterr().out.strip()
    loaded = tf.saved_model.load(path)
    sources = ["abc", "", "fed", "x" * 40, "a" * 500]
    got = loaded.signatures["serving_default"](inputs=tf.constant(sources))
    expected = model.predict(sources[:3])
    assert [s.decode() for s in got["outputs"].numpy()[:3]] == [r[0][0] for r in expected]
    np.testing.assert_allclose(got["score"].numpy()[:3], [r[0][1] for r in expected], rtol=1e-4, atol=1e-4)
    # too long (by tokens, or by bytes before any splitting) or empty: flagged or empty, never a guess
    assert got["too_long"].numpy().tolist() == [False, False, False, True, True]
    assert [s.decode() for s in got["outputs"].numpy()[3:]] == ["", ""]

    server, port = create_server(model_name="rev", model_base_path=os.path.abspath(base), port=0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "rev"
            request.model_spec.signature_name = "greedy"
            request.inputs["inputs"].CopyFrom(tf.make_tensor_proto(["abc", "fed"]))
            response = stub.Predict(request, timeout=60)
            outputs = [s.decode() for s in tf.make_ndarray(response.outputs["outputs"])]
            assert outputs == [r[0][0] for r in model.predict(["abc", "fed"], method="greedy")]
    finally:
        server.stop(grace=1)
