"""Access and lifecycle (issue 6): TLS and mutual TLS from an `--ssl_config_file`, the request
size limit, the default bind address, and a graceful SIGTERM of a `keras-seq serve` process.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import re
import signal
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
from google.protobuf import text_format
from tensorflow_serving.apis import prediction_service_pb2_grpc

import serving_fixtures
from keras_seq.serving import Client, ServingError, config as config_lib
from keras_seq.serving.server import create_server


@pytest.fixture(scope="module")
def base_path(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("security") / "m")
    serving_fixtures.write_half_plus_two(base, 1, a=1.0, b=0.0, warmup=False)
    return base


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return serving_fixtures.make_certificates(str(tmp_path_factory.mktemp("certs")))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write_ssl_config(path, certs, client_verify):
    config = config_lib.SSLConfig(
        server_key=read(certs["server_key"]).decode(),
        server_cert=read(certs["server_cert"]).decode(),
        custom_ca=read(certs["ca_cert"]).decode(),
        client_verify=client_verify,
    )
    with open(path, "w", encoding="utf-8") as f:
        f.write(text_format.MessageToString(config))
    return path


@pytest.fixture
def tls_server(base_path, certs, tmp_path):
    servers = []

    def start(client_verify):
        ssl_file = write_ssl_config(str(tmp_path / "ssl.config"), certs, client_verify)
        server, port = create_server(
            model_base_path=base_path,
            model_name="m",
            port=0,
            ssl_config_file=ssl_file,
            file_system_poll_wait_seconds=-1,
        )
        servers.append(server)
        return port

    yield start
    for server in servers:
        server.stop(0)


def tls_client(port, certs, client_pair=None):
    extra = {}
    if client_pair:
        extra = dict(
            private_key=read(certs[f"{client_pair}_key"]), certificate_chain=read(certs[f"{client_pair}_cert"])
        )
    return Client(f"127.0.0.1:{port}", timeout=10, retries=0, root_certificates=read(certs["ca_cert"]), **extra)


def test_tls(tls_server, certs):
    port = tls_server(client_verify=False)
    with tls_client(port, certs) as client:
        assert client.predict("m", {"x": [2.0]})["y"].tolist() == [2.0]
    with Client(f"127.0.0.1:{port}", timeout=5, retries=0) as plaintext, pytest.raises(ServingError) as info:
        plaintext.predict("m", {"x": [2.0]})
    assert info.value.code == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_refuses_clients_without_the_right_certificate(tls_server, certs):
    port = tls_server(client_verify=True)
    with tls_client(port, certs, "client") as client:
        assert client.predict("m", {"x": [3.0]})["y"].tolist() == [3.0]
    for pair in (None, "rogue"):
        with tls_client(port, certs, pair) as client, pytest.raises(ServingError) as info:
            client.predict("m", {"x": [3.0]})
        assert info.value.code == grpc.StatusCode.UNAVAILABLE


def test_ssl_config_is_text_format_sslconfig(tmp_path):
    path = tmp_path / "ssl.config"
    path.write_text('server_key: "k" server_cert: "c" custom_ca: "ca" client_verify: true')
    config = config_lib.read_ssl_config(str(path))
    assert (config.server_key, config.server_cert, config.custom_ca, config.client_verify) == ("k", "c", "ca", True)
    path.write_text('server_keyfile: "k"')
    with pytest.raises(text_format.ParseError):
        config_lib.read_ssl_config(str(path))


def test_request_size_limit(base_path):
    server, port = create_server(
        model_base_path=base_path, model_name="m", port=0, max_request_bytes=1 << 20, file_system_poll_wait_seconds=-1
    )
    try:
        with Client(f"127.0.0.1:{port}", retries=0) as client:
            with pytest.raises(ServingError) as info:
                client.predict("m", {"x": np.ones(600_000, np.float32)})
            assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert client.predict("m", {"x": [1.0]})["y"].tolist() == [1.0]
    finally:
        server.stop(0)


def _listening_addresses(port):
    """Local addresses listening on `port`, from /proc/net/tcp{,6} (hex, as the kernel writes them)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:
                    found.append(address)
    return found


def test_binds_loopback_by_default(base_path):
    server, port = create_server(model_base_path=base_path, model_name="m", port=0, file_system_poll_wait_seconds=-1)
    try:
        addresses = _listening_addresses(port)
        if not addresses:
            pytest.skip("/proc/net/tcp is not readable here")
        loopback = {"0100007F", "0000000000000000FFFF00000100007F"}  # 127.0.0.1 (IPv4, or v4-mapped IPv6)
        assert addresses and set(addresses) <= loopback, addresses
    finally:
        server.stop(0)


def test_sigterm_finishes_in_flight_requests_and_exits_zero(base_path):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "keras_seq.serving.server",
            "--port=0",
            "--model_name=m",
            "--model_base_path=m",  # relative: resolved against the working directory
            "--file_system_poll_wait_seconds=-1",
            "--shutdown_grace_seconds=30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=os.path.dirname(base_path),
    )
    try:
        port = None
        lines = []
        for line in process.stdout:
            lines.append(line)
            match = re.search(r"Running gRPC ModelServer at 127\.0\.0\.1:(\d+)", line)
            if match:
                port = int(match.group(1))
                break
        assert port, "".join(lines)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict
        slow = serving_fixtures.predict_request(
            "m", {"x": np.ones(1, np.float32), "iterations": np.array(400_000, np.int32)}, "slow"
        )
        started = time.monotonic()
        predict(slow, timeout=120)
        single = time.monotonic() - started
        result = {}

        def in_flight():
            try:
                result["response"] = predict(slow, timeout=120)
            except grpc.RpcError as e:
                result["error"] = e

        thread = threading.Thread(target=in_flight)
        thread.start()
        time.sleep(min(0.3, single / 3))
        process.send_signal(signal.SIGTERM)
        thread.join(timeout=120)
        assert "response" in result, result.get("error")
        with pytest.raises(grpc.RpcError):  # no new requests once shutting down
            predict(serving_fixtures.predict_request("m", {"x": np.ones(1, np.float32)}), timeout=5)
        assert process.wait(timeout=60) == 0
        output = "".join(lines) + process.stdout.read()
        assert "Done unloading servable version {name: m version: 1}" in output
        channel.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
