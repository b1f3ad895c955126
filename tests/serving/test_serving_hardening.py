"""Serving hardening (issue 22), measured on `keras-seq serve` processes through the stock stubs:

- a memory budget per request (`--max_request_tensor_bytes`): a request whose tensors would
  expand past it gets RESOURCE_EXHAUSTED before it is parsed, and a big string is not copied
  needlessly on its way to the model (the server's peak RSS);
- the client's deadline ends the work: after a timed-out request the server's CPU time stops
  growing, with batching off and on (a request still in the batch queue never runs);
- a bounded shutdown: after SIGTERM new requests get UNAVAILABLE, running ones are cancelled at the
  end of the grace period, and the process exits within the grace period plus one second;
- fail-fast startup: a bad SSL config, a key that does not match its certificate, a misspelt field,
  a port in use each give one line and exit status 1 before any model loads; expired
  certificates and binding all interfaces without TLS give warnings.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import datetime
import logging
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from keras_seq.serving import config as config_lib
from keras_seq.serving import server as server_lib
from keras_seq.serving import tls
from keras_seq.serving.tensors import estimated_bytes, proto_to_ndarray

import serving_fixtures as testing

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INT32_MAX = 2**31 - 1
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Toys(tf.Module):
    """`serving_default`: a string model that costs nothing per byte (the length of each word);
    `spin`: a batchable model that loops max(iterations) times, to keep the CPU busy."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="words")])
    def serve(self, words):
        return {"length": tf.strings.length(words)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="iterations")])
    def spin(self, iterations):
        _, total = tf.while_loop(
            lambda i, t: i < tf.reduce_max(iterations), lambda i, t: (i + 1, t + tf.sin(t)), [0, 1.0]
        )
        return {"y": tf.cast(iterations, tf.float32) * 0.0 + tf.minimum(total, 1.0) * 0.0 + 2.0}


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    root = tmp_path_factory.mktemp("hardening")
    testing.write_half_plus_two(str(root / "half_plus_two"), 1, warmup=False)
    module = Toys()
    signatures = {"serving_default": module.serve, "spin": module.spin}
    tf.saved_model.save(module, str(root / "toys" / "1"), signatures=signatures)
    config = config_lib.ModelServerConfig()
    for name in ("half_plus_two", "toys"):
        config.model_config_list.config.add(name=name, base_path=str(root / name), model_platform="tensorflow")
    path = root / "models.config"
    path.write_text(text_format.MessageToString(config))
    return str(path)


# ------------------------------------------------------------------------------ server processes


class ServerProcess:
    """`python -m keras_seq.serving.server ...` in a fresh process; its output is collected."""

    def __init__(self, *flags):
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "keras_seq.serving.server", "--port=0", "--file_system_poll_wait_seconds=-1", *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines = []
        started = threading.Event()
        self.port = None

        def read():
            for line in self.process.stdout:
                self.lines.append(line)
                match = re.search(r"Running gRPC ModelServer at [^ ]*:(\d+)", line)
                if match:
                    self.port = int(match.group(1))
                    started.set()
            started.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        started.wait(120)
        assert self.port, self.output
        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{self.port}",
            options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)],
        )
        self.predict = prediction_service_pb2_grpc.PredictionServiceStub(self.channel).Predict

    @property
    def output(self):
        return "".join(self.lines)

    def cpu_seconds(self):
        """User + system CPU time of the server process, from /proc (10 ms resolution)."""
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def peak_rss_mib(self):
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM")

    def close(self):
        self.channel.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)


@pytest.fixture(scope="module")
def server(repository):
    process = ServerProcess(f"--model_config_file={repository}")  # the default budget, 64 MiB
    yield process
    process.close()


@pytest.fixture(scope="module")
def batching_server(repository, tmp_path_factory):
    params = tmp_path_factory.mktemp("batching") / "params.txt"
    params.write_text("max_batch_size { value: 1024 } batch_timeout_micros { value: 0 } num_batch_threads { value: 1 }")
    process = ServerProcess(
        f"--model_config_file={repository}",
        "--enable_batching",
        f"--batching_parameters_file={params}",
        "--max_request_tensor_bytes=4000",
    )
    yield process
    process.close()


def slow_request(iterations):
    """TF Serving's kind of long request: one row spinning `iterations` times (the `spin` toy)."""
    return testing.predict_request("toys", {"iterations": np.array([iterations], np.int32)}, "spin")


def words_request(tensor):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "toys"
    request.inputs["words"].CopyFrom(tensor)
    return request


def string_tensor(values, dims):
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=values)
    for size in dims:
        tensor.tensor_shape.dim.add().size = size
    return tensor


# ------------------------------------------------------------------------- limits: memory budget


@settings(max_examples=150, deadline=None)
@given(
    dims=st.lists(st.integers(0, 4), max_size=3),
    values=st.lists(st.binary(max_size=40), max_size=7),
)
def test_string_tensors_parse_as_tensorflow_parses_them(dims, values):
    """The one-copy string route gives what TensorFlow's own FromProto gives (padding, truncation)."""
    proto = string_tensor(values, dims)
    expected = np.asarray(tf.io.parse_tensor(proto.SerializeToString(), tf.string).numpy(), dtype=object)
    got = proto_to_ndarray(proto)
    assert got.shape == expected.shape and got.dtype == object
    assert got.tolist() == expected.tolist()
    parsed = sum(len(v) for v in got.reshape(-1)) + 24 * got.size
    assert estimated_bytes(proto) >= parsed


@pytest.mark.parametrize("dtype", [tf.float32, tf.int64, tf.int8, tf.bool, tf.float16, tf.complex64])
def test_estimated_bytes_of_fixed_size_dtypes_is_the_parsed_size(dtype):
    proto = tf.make_tensor_proto(np.zeros([3, 5], dtype.as_numpy_dtype))
    assert estimated_bytes(proto) == tf.io.parse_tensor(proto.SerializeToString(), dtype).numpy().nbytes
    expanding = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum)
    expanding.tensor_shape.dim.add().size = 10**9
    assert estimated_bytes(expanding) == 10**9 * dtype.size


def test_expanding_request_gets_resource_exhausted_quickly(server):
    cases = {
        "one string, 10^9 elements": string_tensor([b"x" * 30], [10**9]),
        "no values, 10^8 elements": string_tensor([], [10**8]),
    }
    floats = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0])
    floats.tensor_shape.dim.add().size = 10**9
    for name, tensor in cases.items():
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            server.predict(words_request(tensor), timeout=30)
        elapsed = time.monotonic() - started
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, name
        assert "--max_request_tensor_bytes" in info.value.details()
        assert elapsed < 5, (name, elapsed)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(floats)
    with pytest.raises(grpc.RpcError) as info:
        server.predict(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Under the budget, the same shapes still parse with TF Serving's padding.
    response = server.predict(words_request(string_tensor([b"ab", b"xyz"], [4])), timeout=30)
    assert list(response.outputs["length"].int_val) == [2, 3, 3, 3]


def test_budget_flag_is_applied(batching_server):
    """That server runs with --max_request_tensor_bytes=4000: 1000 floats fit, 1001 do not."""
    small = testing.predict_request("half_plus_two", {"x": np.ones(1000, np.float32)})
    assert len(batching_server.predict(small, timeout=30).outputs["y"].float_val) == 1000
    with pytest.raises(grpc.RpcError) as info:
        batching_server.predict(testing.predict_request("half_plus_two", {"x": np.ones(1001, np.float32)}), timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "4004 bytes" in info.value.details()


def test_a_60_mib_word_costs_few_copies(server):
    """The server's peak RSS grows by gRPC Python's receive (slices, chunks, joined: ~3 x 60 MiB);
    after it the server holds at most two copies (message + NumPy, then NumPy + TensorFlow's
    tensor). tests/test_g2p_serving_cost.py measures the same with an exported G2P model."""
    size = 60 << 20
    server.predict(words_request(string_tensor([b"warm", b"up"], [2])), timeout=30)
    before = server.peak_rss_mib()
    cpu = server.cpu_seconds()
    request = words_request(string_tensor([b"a" * size], [1]))
    started = time.monotonic()
    response = server.predict(request, timeout=60)
    elapsed = time.monotonic() - started
    assert list(response.outputs["length"].int_val) == [size]
    growth = server.peak_rss_mib() - before
    cpu = server.cpu_seconds() - cpu
    print(f"60 MiB word: peak RSS +{growth:.0f} MiB, server CPU {cpu:.2f} s, {elapsed:.2f} s")
    assert growth < 3.5 * 60, growth  # seen: +181 MiB; +211-242 MiB holding the message, +409 before


# ------------------------------------------------------------------------------------ deadlines


def assert_cpu_stops_after_deadline(process, requests, deadline_s):
    """Sends `requests` (in threads) with `deadline_s`; after the deadline, the server's CPU time
    must stop growing (a spinning TensorFlow loop would add about a second per second)."""
    process.predict(slow_request(10), timeout=60)  # warm
    codes = []

    def send(request, delay):
        time.sleep(delay)
        try:
            process.predict(request, timeout=deadline_s - delay)
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as e:
            codes.append(e.code())

    started = time.monotonic()
    threads = [threading.Thread(target=send, args=(r, d)) for r, d in requests]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    waited = time.monotonic() - started
    assert codes == [grpc.StatusCode.DEADLINE_EXCEEDED] * len(requests), codes
    time.sleep(max(0.0, deadline_s + 0.1 - waited))  # 100 ms after the deadline
    first = process.cpu_seconds()
    time.sleep(2.0)
    after = process.cpu_seconds() - first
    print(f"server CPU in the 2 s from 100 ms after the deadline: {after:.2f} s")
    assert after < 0.25, after
    return after


def test_deadline_stops_a_running_model(server):
    assert_cpu_stops_after_deadline(server, [(slow_request(INT32_MAX), 0.0)], deadline_s=1.0)
    assert list(server.predict(slow_request(10), timeout=30).outputs["y"].float_val) == [2.0]


def test_deadline_stops_batched_runs_and_queued_tasks(batching_server):
    """One batch thread: the first request runs, the second waits in the queue past its deadline
    (and must never run); the first batch is cancelled at its deadline."""
    requests = [(slow_request(INT32_MAX), 0.0), (slow_request(INT32_MAX - 1), 0.3)]
    assert_cpu_stops_after_deadline(batching_server, requests, deadline_s=1.5)
    assert list(batching_server.predict(slow_request(10), timeout=30).outputs["y"].float_val) == [2.0]


# ------------------------------------------------------------------------------------- shutdown


def test_shutdown_is_bounded_by_the_grace_period(repository):
    grace = 1.0
    process = ServerProcess(f"--model_config_file={repository}", f"--shutdown_grace_seconds={grace}")
    try:
        process.predict(slow_request(10), timeout=60)
        results = []

        def in_flight():
            try:
                process.predict(slow_request(INT32_MAX), timeout=120)
                results.append(grpc.StatusCode.OK)
            except grpc.RpcError as e:
                results.append(e.code())

        threads = [threading.Thread(target=in_flight) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        assert not results
        sent = time.monotonic()
        process.process.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        with pytest.raises(grpc.RpcError) as info:
            process.predict(slow_request(10), timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()
        code = process.process.wait(timeout=30)
        exited = time.monotonic() - sent
        for t in threads:
            t.join(30)
        print(f"exited {exited:.2f} s after SIGTERM (grace {grace} s), status {code}")
        assert results == [grpc.StatusCode.UNAVAILABLE] * 2, results
        assert exited < grace + 1.0, process.output
        assert code == 0, process.output
        assert "cancelled the TensorFlow runs" in process.output
    finally:
        process.close()


# ------------------------------------------------------------------------------ startup checks


def write_ssl_config(path, key, cert, ca=None, client_verify=False, text=None):
    if text is None:
        config = config_lib.SSLConfig(
            server_key=open(key).read(), server_cert=open(cert).read(), client_verify=client_verify
        )
        if ca:
            config.custom_ca = open(ca).read()
        text = text_format.MessageToString(config)
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return testing.make_certificates(str(tmp_path_factory.mktemp("certs")))


def run_main(argv):
    """`main(argv)` in a thread: a server that starts by mistake fails the test (signal handlers
    can only be set in the main thread) instead of serving forever."""
    result = []
    thread = threading.Thread(target=lambda: result.append(server_lib.main(argv)), daemon=True)
    thread.start()
    thread.join(60)
    assert result, "main() did not return: the server started"
    return result[0]


def fail_fast(capfd, caplog, *flags):
    """Runs `keras-seq serve`'s main in this process; returns its status and stderr lines."""
    caplog.set_level(logging.INFO, logger="keras_seq.serving")
    started = time.monotonic()
    status = run_main(["--port=0", "--file_system_poll_wait_seconds=-1", *flags])
    elapsed = time.monotonic() - started
    err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert not any("Successfully loaded" in r.getMessage() for r in caplog.records), "a model loaded"
    assert elapsed < 10, elapsed
    return status, err


@pytest.mark.parametrize("problem", ["missing_file", "misspelt_field", "bad_key", "mismatched_pair", "not_pem"])
def test_bad_ssl_config_fails_in_one_line_before_loading(problem, repository, certs, tmp_path, capfd, caplog):
    path = tmp_path / "ssl.config"
    if problem == "missing_file":
        ssl = str(tmp_path / "nope.config")
    elif problem == "misspelt_field":
        ssl = write_ssl_config(path, None, None, text='server_keyfile: "k"')
    elif problem == "bad_key":
        ssl = write_ssl_config(path, None, None, text='server_key: "garbage" server_cert: "garbage"')
    elif problem == "mismatched_pair":
        ssl = write_ssl_config(path, certs["server_key"], certs["client_cert"])
    else:
        ssl = write_ssl_config(path, certs["server_key"], certs["server_key"])
    status, err = fail_fast(capfd, caplog, f"--model_config_file={repository}", f"--ssl_config_file={ssl}")
    assert status == 1
    assert len(err) == 1 and err[0].startswith("Failed to start server. Error: "), err
    assert ssl in err[0]
    if problem == "mismatched_pair":
        assert "does not match" in err[0]


@pytest.mark.parametrize("flag", ["--model_config_file", "--batching_parameters_file", "--monitoring_config_file"])
def test_bad_config_file_fails_in_one_line(flag, repository, tmp_path, capfd, caplog):
    bad = tmp_path / "bad.config"
    bad.write_text("this_field_does_not_exist: 1")
    flags = [f"{flag}={bad}"]
    if flag != "--model_config_file":
        flags.append(f"--model_config_file={repository}")
    if flag == "--batching_parameters_file":
        flags.append("--enable_batching")
    status, err = fail_fast(capfd, caplog, *flags)
    assert status == 1
    assert len(err) == 1 and err[0].startswith(f"Failed to start server. Error: {flag} {bad}: "), err
    assert "this_field_does_not_exist" in err[0]


def test_port_in_use_fails_in_one_line_before_loading(repository, capfd, caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        caplog.set_level(logging.INFO, logger="keras_seq.serving")
        status = run_main([f"--port={port}", f"--model_config_file={repository}"])
    err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert status == 1
    assert len(err) == 1 and f"127.0.0.1:{port}" in err[0] and "in use" in err[0], err
    assert not any("Successfully loaded" in r.getMessage() for r in caplog.records)


def test_misspelt_ssl_field_exits_1_from_a_fresh_process(repository, tmp_path):
    ssl = write_ssl_config(tmp_path / "ssl.config", None, None, text='server_cert: "c" client_verfy: true')
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(
        [sys.executable, "-m", "keras_seq.serving.server", f"--model_config_file={repository}", f"--ssl_config_file={ssl}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    ours = [line for line in result.stderr.splitlines() if "keras_seq" in line or "Error" in line or "Traceback" in line]
    assert result.returncode == 1
    assert ours == [f"Failed to start server. Error: --ssl_config_file {ssl}: {ours[0].split(': ', 2)[2]}"], ours
    assert "client_verfy" in ours[0]


def self_signed(directory, not_before, not_after):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dated")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = directory / "dated.key", directory / "dated.pem"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(key_path), str(cert_path)


@pytest.mark.parametrize("when", ["expired", "not_yet_valid"])
def test_certificate_out_of_its_dates_gives_a_warning_with_them(when, tmp_path, caplog):
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    day = datetime.timedelta(days=1)
    start, end = (now - 3 * day, now - day) if when == "expired" else (now + day, now + 3 * day)
    key, cert = self_signed(tmp_path, start, end)
    config = config_lib.read_ssl_config(write_ssl_config(tmp_path / "ssl.config", key, cert))
    caplog.set_level(logging.WARNING, logger="keras_seq.serving")
    tls.check_ssl_config(config, "the config")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert str(start) in warnings[0] and str(end) in warnings[0]
    assert ("expired" if when == "expired" else "not valid yet") in warnings[0]


def test_valid_certificates_give_no_warning(certs, tmp_path, caplog):
    path = write_ssl_config(tmp_path / "ssl.config", certs["server_key"], certs["server_cert"], certs["ca_cert"], True)
    caplog.set_level(logging.WARNING, logger="keras_seq.serving")
    tls.check_ssl_config(config_lib.read_ssl_config(path), "the config")
    assert not caplog.records


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_binding_all_interfaces_without_tls_warns_once(host, repository, caplog):
    caplog.set_level(logging.WARNING, logger="keras_seq.serving")
    server, _ = server_lib.create_server(
        model_config_file=repository, host=host, port=0, file_system_poll_wait_seconds=-1
    )
    server.stop(0)
    exposed = [r.getMessage() for r in caplog.records if "without TLS" in r.getMessage()]
    if host == "127.0.0.1":
        assert not exposed
    else:
        assert len(exposed) == 1
        assert "Predict" in exposed[0] and "HandleReloadConfigRequest" in exposed[0] and host in exposed[0]


# ------------------------------------------------------------------------- heavy variants (slow)


def spin_clients(process, n, timeout):
    results = []

    def call():
        try:
            process.predict(slow_request(INT32_MAX), timeout=timeout)
            results.append(grpc.StatusCode.OK)
        except grpc.RpcError as e:
            results.append(e.code())

    threads = [threading.Thread(target=call) for _ in range(n)]
    for t in threads:
        t.start()
    return threads, results


@pytest.mark.slow
def test_deadline_stops_eight_concurrent_runs(server):
    requests = [(slow_request(INT32_MAX - i), 0.05 * i) for i in range(8)]
    assert_cpu_stops_after_deadline(server, requests, deadline_s=2.0)


@pytest.mark.slow
def test_shutdown_with_batching_running_and_queued_requests_is_bounded(repository, tmp_path):
    """One batch thread: one batch runs, the others wait in the queue; SIGTERM with a 2 s grace."""
    grace = 2.0
    params = tmp_path / "params.txt"
    params.write_text("max_batch_size { value: 1 } num_batch_threads { value: 1 }")
    process = ServerProcess(
        f"--model_config_file={repository}",
        "--enable_batching",
        f"--batching_parameters_file={params}",
        f"--shutdown_grace_seconds={grace}",
    )
    try:
        process.predict(slow_request(10), timeout=60)
        threads, results = spin_clients(process, 6, timeout=120)
        time.sleep(1.0)
        sent = time.monotonic()
        process.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(grpc.RpcError) as info:
            process.predict(slow_request(10), timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        code = process.process.wait(timeout=60)
        exited = time.monotonic() - sent
        for t in threads:
            t.join(30)
        print(f"batching: exited {exited:.2f} s after SIGTERM (grace {grace} s), status {code}")
        assert results == [grpc.StatusCode.UNAVAILABLE] * 6, results
        assert exited < grace + 1.0 and code == 0, process.output
    finally:
        process.close()
