"""Contract tests of TF Serving's REST API and Prometheus metrics, through `requests`.

They run against `keras-seq serve --rest_api_port` (started in-process on 127.0.0.1, one server
for the module) by default, and against a real TF Serving when KERAS_SEQ_TFSERVING_REST=HOST:PORT is
set (its gRPC port in KERAS_SEQ_TFSERVING=HOST:PORT for the tests that also use gRPC); that server
must serve the toy repository written by `python tests/serving_fixtures.py DIR` with
`DIR/models.config`, and `serving/monitoring.config` for the metrics tests. Tests of limits TF
Serving does not have (body size, TLS on REST) and of this project's clients run locally only.
Expected codes and messages are TF Serving's (shared/reference/tf-serving-contract.md, sections
2 and 7; model_servers/http_rest_api_handler.cc, util/json_tensor.cc).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import base64
import logging
import socket
import threading
import time

import grpc
import numpy as np
import pytest
import requests
from google.protobuf import text_format
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import prediction_service_pb2_grpc

import serving_fixtures
from keras_seq import cli
from keras_seq.serving import Client, RestClient, ServingError
from keras_seq.serving import config as config_lib
from keras_seq.serving import server as server_lib
from keras_seq.serving.batching import BatchingOptions, BatchScheduler
from keras_seq.serving.metrics import Metrics
from keras_seq.serving.server import create_server

EXTERNAL = os.environ.get("KERAS_SEQ_TFSERVING_REST")
EXTERNAL_GRPC = os.environ.get("KERAS_SEQ_TFSERVING")
local_only = pytest.mark.skipif(bool(EXTERNAL), reason="a limit or client of keras-seq serve, not of TF Serving")
HP2 = "half_plus_two"
METRICS_PATH = "/monitoring/prometheus/metrics"
MAX_REQUEST_BYTES = 1 << 20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(REST base URL, gRPC address or None, local ModelServer or None)."""
    if EXTERNAL:
        yield f"http://{EXTERNAL}", EXTERNAL_GRPC, None
        return
    root = tmp_path_factory.mktemp("rest_repo")
    config = serving_fixtures.write_toy_repository(str(root))
    monitoring = root / "monitoring.config"
    monitoring.write_text(f'prometheus_config {{ enable: true path: "{METRICS_PATH}" }}')
    model_server, port = create_server(
        model_config=config,
        port=0,
        rest_api_port=-1,
        monitoring_config_file=str(monitoring),
        max_request_bytes=MAX_REQUEST_BYTES,
        file_system_poll_wait_seconds=-1,
        max_num_load_retries=0,
    )
    yield f"http://127.0.0.1:{model_server.rest_port}", f"127.0.0.1:{port}", model_server
    model_server.stop(0)


@pytest.fixture(scope="module")
def base(server):
    return server[0]


@pytest.fixture(scope="module")
def http():
    with requests.Session() as session:
        yield session


def post(http, url, body):
    """POSTs `body` (a dict as JSON, or raw bytes/str); returns (HTTP status, parsed JSON)."""
    if isinstance(body, (bytes, str)):
        response = http.post(url, data=body, timeout=30)
    else:
        response = http.post(url, json=body, timeout=30)
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    return response.status_code, response.json()


def get(http, url):
    response = http.get(url, timeout=30)
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    return response.status_code, response.json()


def b64(data):
    return {"b64": base64.b64encode(data).decode("ascii")}


# ------------------------------------------------------------------------------------ predict


def test_predict_row_format(http, base):
    assert post(http, f"{base}/v1/models/{HP2}:predict", {"instances": [1.0, 2.0, 5.0]}) == (
        200,
        {"predictions": [4.0, 5.0, 8.0]},  # the latest version, 2: x + 3
    )
    status, answer = post(
        http, f"{base}/v1/models/two_inputs:predict", {"instances": [{"a": 1.5, "b": 2}, {"a": 3.0, "b": 4}]}
    )
    assert status == 200 and answer == {"predictions": [{"prod": 3.0, "sum": 3.5}, {"prod": 12.0, "sum": 7.0}]}
    status, answer = post(
        http, f"{base}/v1/models/{HP2}:predict", {"signature_name": "matrix", "instances": [[1, 1, 1, 1]]}
    )
    assert status == 200 and answer == {"predictions": [[4.0, 4.0]]}  # version 2: sum(x) * 1.0


def test_predict_columnar_format(http, base):
    status, answer = post(http, f"{base}/v1/models/two_inputs:predict", {"inputs": {"a": [1.5, 3.0], "b": [2, 4]}})
    assert status == 200 and answer == {"outputs": {"prod": [3.0, 12.0], "sum": [3.5, 7.0]}}
    # One output: the value itself, not keyed by its alias.
    assert post(http, f"{base}/v1/models/{HP2}:predict", {"inputs": [0.5]}) == (200, {"outputs": [3.5]})
    status, answer = post(
        http, f"{base}/v1/models/g2p:predict", {"signature_name": "greedy", "inputs": {"words": ["abc", "hi"]}}
    )
    assert status == 200 and answer == {"outputs": {"pronunciation": ["A B C", "H I"], "score": [-3.0, -2.0]}}


def test_strings_in_base64_both_ways(http, base):
    status, answer = post(
        http, f"{base}/v1/models/g2p:predict", {"signature_name": "greedy", "instances": [b64(b"abc"), "de"]}
    )
    assert status == 200 and [p["pronunciation"] for p in answer["predictions"]] == ["A B C", "D E"]
    # Outputs whose alias ends in _bytes come back as {"b64": ...}, so any bytes survive.
    raw = b"\xff\x00bytes"
    status, answer = post(http, f"{base}/v1/models/g2p:predict", {"signature_name": "echo", "instances": [b64(raw)]})
    assert status == 200 and answer == {"predictions": [b64(raw)]}
    status, answer = post(http, f"{base}/v1/models/g2p:predict", {"signature_name": "echo", "inputs": [b64(raw), "x"]})
    assert status == 200 and answer == {"outputs": [b64(raw), b64(b"x")]}


def test_version_and_label_routes(http, base):
    url = f"{base}/v1/models/{HP2}"
    assert post(http, f"{url}/versions/1:predict", {"instances": [2.0]}) == (200, {"predictions": [3.0]})
    assert post(http, f"{url}/versions/2:predict", {"instances": [2.0]}) == (200, {"predictions": [5.0]})
    assert post(http, f"{url}/labels/stable:predict", {"instances": [2.0]}) == (200, {"predictions": [3.0]})
    assert post(http, f"{url}/labels/canary:predict", {"instances": [2.0]}) == (200, {"predictions": [5.0]})


# ---------------------------------------------------------------------------- status, metadata


def test_model_status(http, base):
    ok = {"error_code": "OK", "error_message": ""}
    assert get(http, f"{base}/v1/models/{HP2}") == (
        200,
        {
            "model_version_status": [
                {"version": "2", "state": "AVAILABLE", "status": ok},
                {"version": "1", "state": "AVAILABLE", "status": ok},
            ]
        },
    )
    expected_v1 = (200, {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": ok}]})
    assert get(http, f"{base}/v1/models/{HP2}/versions/1") == expected_v1
    assert get(http, f"{base}/v1/models/{HP2}/labels/stable") == expected_v1
    assert get(http, f"{base}/v1/models/{HP2}/versions/9") == (
        404,
        {"error": f"Could not find version 9 of model {HP2}"},
    )
    assert get(http, f"{base}/v1/models/nope") == (404, {"error": "Could not find any versions of model nope"})


def test_model_metadata(http, base):
    status, answer = get(http, f"{base}/v1/models/g2p/metadata")
    assert status == 200
    assert answer["model_spec"] == {"name": "g2p", "version": "1", "signature_name": ""}
    signatures = answer["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "greedy", "tokens", "echo"} <= set(signatures)
    words = signatures["serving_default"]["inputs"]["words"]
    assert words["dtype"] == "DT_STRING" and words["tensor_shape"]["dim"][0]["size"] == "-1"
    assert signatures["serving_default"]["method_name"] == "tensorflow/serving/predict"
    status, answer = get(http, f"{base}/v1/models/{HP2}/versions/1/metadata")
    assert status == 200 and answer["model_spec"]["version"] == "1"
    status, answer = get(http, f"{base}/v1/models/{HP2}/labels/canary/metadata")
    assert status == 200 and answer["model_spec"]["version"] == "2"


# ------------------------------------------------------------------------- classify, regress


def test_classify_and_regress(http, base):
    url = f"{base}/v1/models/{HP2}/versions/1"
    status, answer = post(
        http, f"{url}:classify", {"signature_name": "classify", "examples": [{"x": 0.25}, {"x": 1.0}]}
    )
    assert status == 200 and answer == {"results": [[["pos", 0.25], ["neg", 0.75]], [["pos", 1.0], ["neg", 0.0]]]}
    status, answer = post(http, f"{url}:regress", {"signature_name": "regress", "examples": [{"x": 2.0}, {"x": [4.0]}]})
    assert status == 200 and answer == {"results": [3.0, 4.0]}
    # The context's features join every example's.
    status, answer = post(
        http, f"{url}:regress", {"signature_name": "regress", "context": {"x": 2.0}, "examples": [{}, {"x": 6.0}]}
    )
    assert status == 200 and answer == {"results": [3.0, 5.0]}


def test_classify_and_regress_on_predict_signatures_answer_as_tf_serving(http, base):
    status, answer = post(http, f"{base}/v1/models/{HP2}:classify", {"examples": [{"x": 1.0}]})
    assert status == 400 and answer["error"].startswith("No classification inputs found in SignatureDef:"), answer
    status, answer = post(http, f"{base}/v1/models/g2p:regress", {"examples": [{"words": "abc"}]})
    assert (status, answer) == (400, {"error": "Expected one output Tensor."})
    status, answer = post(http, f"{base}/v1/models/two_inputs:classify", {"examples": [{"a": 1.0}]})
    assert (status, answer) == (400, {"error": "Expected one input Tensor."})
    status, answer = post(http, f"{base}/v1/models/{HP2}:regress", {"signature_name": "regress"})
    assert status == 400 and "key 'examples' is expected and was not found" in answer["error"]


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "path, body, status, message",
    [
        ("/v1/models/nope:predict", {"instances": [1.0]}, 404, "Servable not found for request: Latest(nope)"),
        (
            f"/v1/models/{HP2}/versions/9:predict",
            {"instances": [1.0]},
            404,
            f"Servable not found for request: Specific({HP2}, 9)",
        ),
        (
            f"/v1/models/{HP2}/labels/nope:predict",
            {"instances": [1.0]},
            400,
            "Unrecognized servable version label: nope",
        ),
        (
            f"/v1/models/{HP2}:predict",
            {"signature_name": "nope", "instances": [1.0]},
            400,
            'Serving signature name: "nope" not found in signature def',
        ),
        (f"/v1/models/{HP2}:predict", {"signature_name": "matrix"}, 400, "Missing 'inputs' or 'instances' key"),
        (
            "/v1/models/two_inputs:predict",
            {"inputs": {"a": [1.0]}},
            400,
            "Missing named input: b in 'inputs' object.",
        ),
        (
            "/v1/models/two_inputs:predict",
            {"instances": [1.0]},
            400,
            "instances is a plain list, but expecting list of objects as multiple input tensors required as per "
            "tensorinfo_map",
        ),
        (
            f"/v1/models/{HP2}:predict",
            {"instances": ["x"]},
            400,
            "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: \"x\" Type: "
            "String is not of expected type: float",
        ),
        (
            f"/v1/models/{HP2}:predict",
            {"instances": [1.0, [2.0]]},
            400,
            "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: Expecting shape [] but "
            "got: [1]",
        ),
        (f"/v1/models/{HP2}:predict", "", 400, "JSON Parse error: The document is empty"),
        (f"/v1/models/{HP2}/versions/1:frobnicate", {"instances": [1.0]}, 400, None),
    ],
    ids=[
        "model",
        "version",
        "label",
        "signature",
        "no_inputs",
        "missing_input",
        "plain_list",
        "type",
        "ragged",
        "empty_body",
        "method",
    ],
)
def test_errors_are_json_with_tf_serving_codes(http, base, path, body, status, message):
    got_status, answer = post(http, base + path, body)
    assert got_status == status, answer
    assert set(answer) == {"error"}
    if message is not None:
        assert answer["error"] == message
    else:
        assert answer["error"].startswith("Malformed request: POST "), answer


def test_bad_json_is_a_parse_error(http, base):
    for body in ("{bad", "[1, 2", '{"instances": [1.0]'):
        status, answer = post(http, f"{base}/v1/models/{HP2}:predict", body)
        assert status == 400 and answer["error"].startswith("JSON Parse error: "), answer
    status, answer = post(http, f"{base}/v1/models/{HP2}:predict", "[1.0]")
    assert status == 400 and answer["error"].endswith("Is not object"), answer
    status, answer = post(http, f"{base}/v1/models/{HP2}:predict", {"signature_name": 3, "instances": [1.0]})
    assert status == 400 and answer["error"].endswith("'signature_name' key must be a string value."), answer


@local_only
def test_body_over_max_request_bytes_gets_429(http, base):
    body = b'{"instances": [' + b"1.0, " * (MAX_REQUEST_BYTES // 5) + b"1.0]}"
    assert len(body) > MAX_REQUEST_BYTES
    status, answer = post(http, f"{base}/v1/models/{HP2}:predict", body)
    assert status == 429 and "(--max_request_bytes)" in answer["error"], answer
    # A chunked body (no Content-Length) is cut at the limit too.
    chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
    response = http.post(f"{base}/v1/models/{HP2}:predict", data=chunks, timeout=30)
    assert response.status_code == 429 and "(--max_request_bytes)" in response.json()["error"]
    # The server still answers on the same session afterwards.
    assert post(http, f"{base}/v1/models/{HP2}:predict", {"instances": [1.0]}) == (200, {"predictions": [4.0]})


# ----------------------------------------------------------------------------------- metrics


def metric_values(http, base):
    """{(sample name, sorted labels): value} of the Prometheus page, read by prometheus_client's parser."""
    response = http.get(base + METRICS_PATH, timeout=30)
    if EXTERNAL and response.status_code != 200:
        pytest.skip("the TF Serving under test serves no metrics (start it with serving/monitoring.config)")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def value(values, name, **labels):
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


REQUEST_COUNT = ":tensorflow:serving:request_count_total"  # the parser's name for the counter's samples
LATENCY_COUNT = ":tensorflow:serving:request_latency_count"


def test_metrics_count_requests_by_model_and_status(http, base):
    before = metric_values(http, base)
    for _ in range(3):
        post(http, f"{base}/v1/models/{HP2}:predict", {"instances": [1.0]})
    post(http, f"{base}/v1/models/nope_metrics:predict", {"instances": [1.0]})
    post(http, f"{base}/v1/models/{HP2}:predict", {"signature_name": "nope", "instances": [1.0]})
    after = metric_values(http, base)
    ok = dict(model_name=HP2, status="OK")
    assert value(after, REQUEST_COUNT, **ok) - value(before, REQUEST_COUNT, **ok) == 3
    missing = dict(model_name="nope_metrics", status="NOT_FOUND")
    assert value(after, REQUEST_COUNT, **missing) - value(before, REQUEST_COUNT, **missing) == 1
    bad = dict(model_name=HP2, status="INVALID_ARGUMENT")
    assert value(after, REQUEST_COUNT, **bad) - value(before, REQUEST_COUNT, **bad) == 1
    # Latency: successful calls only, in microseconds, by model, API and entrypoint.
    rest = dict(model_name=HP2, API="predict", entrypoint="REST")
    assert value(after, LATENCY_COUNT, **rest) - value(before, LATENCY_COUNT, **rest) == 3
    assert value(after, LATENCY_COUNT, model_name="nope_metrics", API="predict", entrypoint="REST") == 0
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (name, labels), v in after.items()
        if name == ":tensorflow:serving:request_latency_bucket"
        and {"entrypoint": "REST", "API": "predict"}.items() <= dict(labels).items()
        and dict(labels)["model_name"] == HP2
    )
    assert buckets[0][0] == 10.0 and buckets[-1] == (float("inf"), value(after, LATENCY_COUNT, **rest))


def test_metrics_count_grpc_calls_and_model_loads(http, server):
    base, grpc_address, _ = server
    if grpc_address is None:
        pytest.skip("set KERAS_SEQ_TFSERVING=HOST:PORT for the gRPC port of the TF Serving under test")
    before = metric_values(http, base)
    with grpc.insecure_channel(grpc_address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        stub.Predict(serving_fixtures.predict_request(HP2, {"x": np.array([1.0], np.float32)}), timeout=30)
        with pytest.raises(grpc.RpcError):
            stub.Predict(serving_fixtures.predict_request("nope_grpc", {"x": np.array([1.0], np.float32)}), timeout=30)
    after = metric_values(http, base)
    ok = dict(model_name=HP2, status="OK")
    assert value(after, REQUEST_COUNT, **ok) - value(before, REQUEST_COUNT, **ok) == 1
    assert value(after, REQUEST_COUNT, model_name="nope_grpc", status="NOT_FOUND") == 1
    grpc_latency = dict(model_name=HP2, API="Predict", entrypoint="GRPC")
    assert value(after, LATENCY_COUNT, **grpc_latency) - value(before, LATENCY_COUNT, **grpc_latency) == 1
    loads = {
        dict(labels)["model_path"]
        for (name, labels), v in after.items()
        if name == ":tensorflow:cc:saved_model:load_attempt_count_total"
        and dict(labels)["status"] == "success"
        and v >= 1
    }
    assert any(f"{HP2}/1" in p for p in loads) and any(f"{HP2}/2" in p for p in loads), loads


@local_only
def test_metrics_page_is_written_as_tf_serving_writes_it(http, base):
    page = http.get(base + METRICS_PATH, timeout=30).text
    assert "# TYPE :tensorflow:serving:request_count counter" in page
    assert "# TYPE :tensorflow:serving:request_latency histogram" in page
    assert ":tensorflow:serving:request_count{" in page and "_total" not in page and "_created" not in page


def test_batching_records_batch_sizes():
    """The batch scheduler's metrics, on a stand-in servable (TF Serving's batching_session names)."""

    class Servable:
        def run(self, feeds, fetches, timeout_ms=None):
            return [feeds[0][1] * 2]

    metrics = Metrics()
    scheduler = BatchScheduler(
        BatchingOptions(
            max_batch_size=8, batch_timeout_micros=200_000, num_batch_threads=1, allowed_batch_sizes=(4, 8)
        ),
        metrics,
    )
    servable, results = Servable(), []
    threads = [
        threading.Thread(target=lambda n=n: results.append(scheduler.run(servable, [("x", np.ones(n))], ["y"])))
        for n in (1, 2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    scheduler.close()
    values = {}
    for family in text_string_to_metric_families(metrics.page()):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    name = ":tensorflow:serving:batching_session:"
    assert value(values, name + "input_batch_size_count") == 2 and value(values, name + "input_batch_size_sum") == 3
    assert (
        value(values, name + "processed_batch_size_count") == 1
        and value(values, name + "processed_batch_size_sum") == 4
    )
    assert value(values, name + "padding_size_sum", execution_batch_size="4") == 1


# --------------------------------------------------------------------------- clients and CLI


@local_only
def test_rest_client_matches_the_grpc_client(server):
    base, grpc_address, _ = server
    with Client(grpc_address, timeout=30) as grpc_client, RestClient(base, timeout=30) as rest_client:
        for args, kwargs in [
            (("g2p", ["hello", "wörld"]), {}),
            (("g2p", []), {}),
            ((HP2, {"x": [1.0, 2.0]}), {"version_label": "stable"}),
            (("two_inputs", {"a": [1.0], "b": [2]}), {}),
            (("g2p", {"ids": np.array([[5, 6]], np.int32)}), {"signature_name": "tokens"}),
            (("g2p", [b"\xff\xfe"]), {"signature_name": "echo"}),
        ]:
            expected, got = grpc_client.predict(*args, **kwargs), rest_client.predict(*args, **kwargs)
            assert sorted(expected) == sorted(got)
            for alias in expected:
                assert got[alias].dtype == expected[alias].dtype and got[alias].shape == expected[alias].shape
                assert got[alias].tolist() == expected[alias].tolist(), alias
        assert rest_client.status(HP2) == grpc_client.status(HP2)
        assert rest_client.metadata("g2p") == grpc_client.metadata("g2p")
        for call in (grpc_client, rest_client):
            with pytest.raises(ServingError) as info:
                call.predict("nope", ["x"])
            assert info.value.code == grpc.StatusCode.NOT_FOUND
            assert info.value.message == "Servable not found for request: Latest(nope)"


@local_only
def test_empty_predict_returns_no_rows(server):
    base, grpc_address, _ = server
    with Client(grpc_address, timeout=30) as grpc_client:
        out = grpc_client.predict("g2p", [])
    assert out["pronunciation"].shape == (0,) and out["nbest"].shape == (0, 2)


@local_only
def test_keras_seq_predict_rest(server, capsys):
    base = server[0].removeprefix("http://")
    assert cli.main(["predict", "--rest", "--server", base, "--model", "g2p", "hello", "ab"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("hello") and "H E L L O" in lines[1] and "-5.0000" in lines[1]
    assert cli.main(["predict", "--rest", "--server", base, "--model", "nope", "x"]) == 1
    assert "NOT_FOUND: Servable not found for request: Latest(nope)" in capsys.readouterr().err


# --------------------------------------------------------------------------------- TLS, ports


@local_only
def test_rest_uses_the_ssl_config_of_grpc(tmp_path):
    base_path = str(tmp_path / "m")
    serving_fixtures.write_half_plus_two(base_path, 1, a=1.0, b=0.0, warmup=False)
    certs = serving_fixtures.make_certificates(str(tmp_path))
    read = lambda key: open(certs[key], "rb").read()  # noqa: E731
    ssl = config_lib.SSLConfig(
        server_key=read("server_key").decode(),
        server_cert=read("server_cert").decode(),
        custom_ca=read("ca_cert").decode(),
        client_verify=True,
    )
    server, _ = create_server(
        model_base_path=base_path,
        model_name="m",
        port=0,
        rest_api_port=-1,
        ssl_config=ssl,
        file_system_poll_wait_seconds=-1,
    )
    try:
        tls = dict(
            root_certificates=read("ca_cert"), private_key=read("client_key"), certificate_chain=read("client_cert")
        )
        with RestClient(f"127.0.0.1:{server.rest_port}", timeout=10, retries=0, **tls) as client:
            assert client.predict("m", {"x": [2.0]})["y"].tolist() == [2.0]
        url = f"https://127.0.0.1:{server.rest_port}/v1/models/m"
        with pytest.raises(requests.exceptions.ConnectionError):  # no client certificate
            requests.get(url, verify=certs["ca_cert"], timeout=10)
        with pytest.raises(requests.exceptions.ConnectionError):  # plaintext
            requests.get(url.replace("https", "http"), timeout=10)
    finally:
        server.stop(0)


def _run_main(argv):
    result = []
    thread = threading.Thread(target=lambda: result.append(server_lib.main(argv)), daemon=True)
    thread.start()
    thread.join(60)
    assert result, "main() did not return: the server started"
    return result[0]


@local_only
def test_rest_port_in_use_fails_in_one_line_before_loading(tmp_path, capfd, caplog):
    base_path = str(tmp_path / "m")
    serving_fixtures.write_half_plus_two(base_path, 1, warmup=False)
    caplog.set_level(logging.INFO, logger="keras_seq.serving")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        status = _run_main(["--port=0", f"--rest_api_port={port}", "--model_name=m", f"--model_base_path={base_path}"])
        elapsed = time.monotonic() - started
    err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert status == 1 and elapsed < 10
    assert len(err) == 1 and f"127.0.0.1:{port}" in err[0] and "REST API" in err[0] and "in use" in err[0], err
    assert not any("Successfully loaded" in r.getMessage() for r in caplog.records)


@local_only
def test_monitoring_without_rest_port_warns(tmp_path, caplog):
    path = tmp_path / "monitoring.config"
    path.write_text(text_format.MessageToString(config_lib.MonitoringConfig(prometheus_config={"enable": True})))
    options = server_lib.ServerOptions(monitoring_config_file=str(path))
    caplog.set_level(logging.WARNING, logger="keras_seq.serving")
    assert server_lib._monitoring(options) == (None, None)
    assert "set --rest_api_port" in caplog.text
