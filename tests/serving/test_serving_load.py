"""Load (issue 6): concurrent clients on 127.0.0.1 get no failed request; p99 latency is recorded;
the server's memory stays flat. The default run keeps a short variant; the full one
(32 clients x 500 requests, memory after 20,000 requests) is marked slow.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import re
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import prediction_service_pb2_grpc

import serving_fixtures
from keras_seq.serving.server import create_server


def hammer(address, clients, requests_each, words=(b"hello",)):
    """Runs `clients` threads of `requests_each` Predicts each; returns (latencies in s, failures)."""
    request = serving_fixtures.predict_request("g2p", {"words": np.array(list(words), dtype=object)})
    latencies, failures = [], []
    lock = threading.Lock()

    def client():
        channel = grpc.insecure_channel(address)
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict
        mine = []
        for _ in range(requests_each):
            started = time.perf_counter()
            try:
                response = predict(request, timeout=60)
                assert response.outputs["pronunciation"].string_val[0] == b"H E L L O"
                mine.append(time.perf_counter() - started)
            except Exception as e:  # noqa: BLE001
                with lock:
                    failures.append(e)
        channel.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, failures


def percentile_ms(latencies, q):
    return float(np.percentile(np.array(latencies) * 1000, q))


@pytest.fixture(scope="module")
def base_path(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("load") / "g2p")
    serving_fixtures.write_words(base, 1)
    return base


def test_short_load_has_no_failures(base_path):
    server, port = create_server(model_base_path=base_path, model_name="g2p", port=0, file_system_poll_wait_seconds=-1)
    try:
        latencies, failures = hammer(f"127.0.0.1:{port}", clients=8, requests_each=50)
    finally:
        server.stop(5)
    assert not failures, failures[:3]
    assert len(latencies) == 400
    print(
        f"8 clients x 50 requests: p50 {percentile_ms(latencies, 50):.1f} ms, p99 {percentile_ms(latencies, 99):.1f} ms"
    )


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


@pytest.mark.slow
def test_load_32_clients_x_500_and_flat_memory(base_path):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "keras_seq.serving.server",
            "--port=0",
            "--model_name=g2p",
            f"--model_base_path={base_path}",
            "--file_system_poll_wait_seconds=-1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        port = None
        for line in process.stdout:
            match = re.search(r"Running gRPC ModelServer at 127\.0\.0\.1:(\d+)", line)
            if match:
                port = int(match.group(1))
                break
        assert port
        threading.Thread(target=lambda: process.stdout.read(), daemon=True).start()
        address = f"127.0.0.1:{port}"
        _, failures = hammer(address, clients=10, requests_each=100)  # the first 1,000
        after_1000 = rss_kib(process.pid)
        started = time.perf_counter()
        latencies, more_failures = hammer(address, clients=32, requests_each=500)
        elapsed = time.perf_counter() - started
        _, last_failures = hammer(address, clients=10, requests_each=300)  # 20,000 in all
        after_20000 = rss_kib(process.pid)
        failures += more_failures + last_failures
        print(
            f"32 clients x 500 requests: {len(latencies) / elapsed:.0f} req/s, p50 {percentile_ms(latencies, 50):.1f} ms, "
            f"p99 {percentile_ms(latencies, 99):.1f} ms; RSS {after_1000 / 1024:.0f} MiB after 1,000, "
            f"{after_20000 / 1024:.0f} MiB after 20,000"
        )
        assert not failures, failures[:3]
        assert len(latencies) == 16_000
        assert after_20000 <= after_1000 * 1.10
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0
