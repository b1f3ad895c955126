"""The client (`keras_seq.serving.Client`) and `keras-seq predict`: numpy and strings in, numpy
out, metadata and status, deadlines, retries on UNAVAILABLE only, typed errors.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import socket
import time

import grpc
import numpy as np
import pytest

import serving_fixtures
from keras_seq import cli
from keras_seq.serving import Client, ServingError
from keras_seq.serving.client import format_table
from keras_seq.serving.server import create_server


@pytest.fixture(scope="module")
def address(tmp_path_factory):
    root = tmp_path_factory.mktemp("client_repo")
    config = serving_fixtures.write_toy_repository(str(root))
    server, port = create_server(model_config=config, port=0, file_system_poll_wait_seconds=-1)
    yield f"127.0.0.1:{port}"
    server.stop(0)


@pytest.fixture
def client(address):
    with Client(address, timeout=30) as c:
        yield c


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_predict_numpy_and_strings(client):
    out = client.predict("half_plus_two", {"x": np.array([1.0, 3.0], np.float32)}, version=1)
    assert out["y"].dtype == np.float32 and out["y"].tolist() == [2.5, 3.5]
    out = client.predict("g2p", ["hello", "wörld"])
    assert out["pronunciation"].tolist() == [b"H E L L O", "W Ö R L D".replace("Ö", "ö").encode()]
    assert out["score"].dtype == np.float32 and out["nbest"].shape == (2, 2)
    out = client.predict("g2p", {"ids": np.array([[5, 6]], np.int32)}, signature_name="tokens")
    assert out["ids"].tolist() == [[6, 7]]
    out = client.predict("half_plus_two", {"x": [2.0]}, version_label="canary", output_filter=["y"])
    assert out["y"].tolist() == [5.0]


def test_metadata_and_status(client):
    signatures = client.metadata("g2p")
    assert {"serving_default", "greedy", "tokens"} <= set(signatures)
    assert list(signatures["serving_default"].inputs) == ["words"]
    assert client.status("half_plus_two") == [(2, "AVAILABLE", "OK", ""), (1, "AVAILABLE", "OK", "")]


def test_errors_are_typed(client):
    with pytest.raises(ServingError) as info:
        client.predict("nope", ["a"])
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert info.value.message == "Servable not found for request: Latest(nope)"
    with pytest.raises(ValueError):
        client.predict("g2p", ["a"], version=1, version_label="stable")


def test_retries_unavailable_with_backoff_then_raises():
    with Client(f"127.0.0.1:{free_port()}", timeout=2, retries=2, backoff=0.2) as c:
        started = time.monotonic()
        with pytest.raises(ServingError) as info:
            c.predict("m", ["a"])
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - started >= 0.2 + 0.4


def test_retry_reaches_a_server_that_comes_up(tmp_path):
    base = str(tmp_path / "m")
    serving_fixtures.write_half_plus_two(base, 1, warmup=False)
    port = free_port()
    import threading

    servers = []
    threading.Timer(
        0.5,
        lambda: servers.append(
            create_server(model_base_path=base, model_name="m", port=port, file_system_poll_wait_seconds=-1)[0]
        ),
    ).start()
    try:
        with Client(f"127.0.0.1:{port}", timeout=5, retries=8, backoff=0.2) as c:
            assert c.predict("m", {"x": [2.0]})["y"].tolist() == [3.0]
    finally:
        time.sleep(0.1)
        for server in servers:
            server.stop(0)


def test_other_codes_are_not_retried(client):
    calls = []
    real = client.prediction.Predict

    def counting(request, timeout):
        calls.append(timeout)
        return real(request, timeout=timeout)

    client.prediction.Predict = counting
    with pytest.raises(ServingError):
        client.predict("g2p", {"nope": ["a"]})
    assert calls == [30]  # one try, with the default deadline


def test_deadline(client):
    with pytest.raises(ServingError) as info:
        client.predict(
            "half_plus_two",
            {"x": [1.0], "iterations": np.array(50_000_000, np.int32)},
            signature_name="slow",
            timeout=0.2,
        )
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_keras_seq_predict_prints_one_row_per_word(address, capsys):
    assert cli.main(["predict", "--server", address, "--model", "g2p", "hello", "ab"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["word", "pronunciation", "nbest"]
    assert lines[1].startswith("hello") and "H E L L O" in lines[1] and "-5.0000" in lines[1]
    assert lines[2].startswith("ab") and "A B" in lines[2]
    assert cli.main(["predict", "--server", address, "--model", "nope", "x"]) == 1
    assert "NOT_FOUND: Servable not found for request: Latest(nope)" in capsys.readouterr().err


def test_format_table():
    table = format_table(["a"], {"pronunciation": np.array([b"AH0"], object), "score": np.array([-0.5], np.float32)})
    assert table.splitlines() == ["word  pronunciation  score", "a     AH0            -0.5000"]
