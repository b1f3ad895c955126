"""The model repository through the stock stubs: version policies, polling, availability-preserving
swaps, broken versions, warmup and config reloads under load (issues 4 and 6).

These tests write into the repository, so they run against the local server only.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import shutil
import threading
import time

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

import serving_fixtures
from keras_seq.serving import ServingError, config as config_lib
from keras_seq.serving.server import create_server

State = get_model_status_pb2.ModelVersionStatus.State
FAST = dict(port=0, file_system_poll_wait_seconds=0.1, max_num_load_retries=0)


class Stubs:
    def __init__(self, port):
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.predict = prediction_service_pb2_grpc.PredictionServiceStub(self.channel).Predict
        self.status = model_service_pb2_grpc.ModelServiceStub(self.channel).GetModelStatus
        self.reload = model_service_pb2_grpc.ModelServiceStub(self.channel).HandleReloadConfigRequest

    def y(self, model="m", x=1.0, **spec):
        response = self.predict(serving_fixtures.predict_request(model, {"x": np.array([x], np.float32)}), timeout=30)
        return response.outputs["y"].float_val[0], response.model_spec.version.value

    def states(self, model="m"):
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        response = self.status(request, timeout=30)
        return [
            (s.version, State.Name(s.state), s.status.error_code, s.status.error_message)
            for s in response.model_version_status
        ]


@pytest.fixture
def serve(tmp_path):
    """serve(config or base_path, **options) -> (server, Stubs); stopped at teardown."""
    started = []

    def start(model_config, **options):
        if isinstance(model_config, str):
            model_config = config_lib.single_model_config("m", model_config)
        server, port = create_server(model_config=model_config, **{**FAST, **options})
        started.append(server)
        return server, Stubs(port)

    yield start
    for server in started:
        server.stop(0)


def wait_for(condition, timeout=30.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def config_with(base_path, policy=None, labels=None, name="m"):
    config = config_lib.single_model_config(name, base_path)
    model = config.model_config_list.config[0]
    if policy == "all":
        model.model_version_policy.all.SetInParent()
    elif isinstance(policy, int):
        model.model_version_policy.latest.num_versions = policy
    elif isinstance(policy, (list, tuple)):
        model.model_version_policy.specific.versions.extend(policy)
    for label, version in (labels or {}).items():
        model.version_labels[label] = version
    return config


@pytest.fixture
def three_versions(tmp_path):
    base = str(tmp_path / "m")
    for version in (1, 2, 3):
        serving_fixtures.write_half_plus_two(base, version, a=float(version), b=0.0, warmup=False)
    return base


@pytest.mark.parametrize(
    "policy, expected",
    [(None, [3]), (2, [3, 2]), ("all", [3, 2, 1]), ([1, 3], [3, 1])],
)
def test_version_policies(serve, three_versions, policy, expected):
    _, stubs = serve(config_with(three_versions, policy))
    assert [v for v, state, _, _ in stubs.states() if state == "AVAILABLE"] == expected
    assert stubs.y() == (float(expected[0]), expected[0])  # Latest = highest loaded version


def test_version_directory_names(serve, tmp_path):
    base = str(tmp_path / "m")
    serving_fixtures.write_half_plus_two(base, 7, warmup=False)
    os.rename(os.path.join(base, "7"), os.path.join(base, "0007"))
    os.makedirs(os.path.join(base, "not_a_version"))
    os.makedirs(os.path.join(base, ".tmp-export"))
    _, stubs = serve(base)
    assert stubs.y()[1] == 7
    assert [v for v, *_ in stubs.states()] == [7]


def test_new_version_is_picked_up_while_requests_run(serve, tmp_path):
    base = str(tmp_path / "m")
    serving_fixtures.write_half_plus_two(base, 1, a=1.0, b=0.0)
    _, stubs = serve(base)
    failures, answers, stop = [], [], threading.Event()

    def client():
        while not stop.is_set():
            try:
                answers.append(stubs.y())
            except grpc.RpcError as e:
                failures.append(e)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(answers) > 20)
        serving_fixtures.write_half_plus_two(base, 2, a=2.0, b=0.0)
        wait_for(lambda: answers[-1] == (2.0, 2))
        n = len(answers)
        wait_for(lambda: len(answers) > n + 20)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failures
    assert set(answers) == {(1.0, 1), (2.0, 2)}
    wait_for(lambda: stubs.states() == [(2, "AVAILABLE", 0, ""), (1, "END", 0, "")])


@pytest.mark.parametrize("broken", ["half_written", "corrupt"])
def test_broken_version_never_replaces_a_working_one(serve, tmp_path, broken):
    base = str(tmp_path / "m")
    v1 = serving_fixtures.write_half_plus_two(base, 1, a=1.0, b=0.0)
    _, stubs = serve(base)
    if broken == "half_written":
        serving_fixtures.write_half_written(base, 2, v1)
    else:
        serving_fixtures.write_corrupt(base, 2)
    wait_for(lambda: stubs.states()[0][1] == "END")
    (version, state, code, message), old = stubs.states()
    assert (version, state) == (2, "END") and code != 0 and message
    assert old == (1, "AVAILABLE", 0, "")
    assert stubs.y() == (1.0, 1)
    # A good version after the broken one is served.
    serving_fixtures.write_half_plus_two(base, 3, a=3.0, b=0.0)
    wait_for(lambda: stubs.y() == (3.0, 3))


def test_broken_only_version_fails_startup(tmp_path):
    base = str(tmp_path / "m")
    serving_fixtures.write_corrupt(base, 1)
    with pytest.raises(ServingError) as info:
        create_server(model_config=config_lib.single_model_config("m", base), **FAST)
    assert info.value.code == grpc.StatusCode.UNKNOWN
    assert info.value.message.startswith("1 model(s) did not become available: {")


def test_failed_load_is_retried(serve, tmp_path):
    base = str(tmp_path / "m")
    v1 = serving_fixtures.write_half_plus_two(base, 1, a=1.0, b=0.0)
    source = serving_fixtures.write_half_plus_two(str(tmp_path / "source"), 2, a=2.0, b=0.0)
    _, stubs = serve(base, max_num_load_retries=5, load_retry_interval_micros=300_000)
    serving_fixtures.write_half_written(base, 2, v1)
    time.sleep(0.2)
    shutil.rmtree(os.path.join(base, "2"))
    shutil.copytree(source, os.path.join(base, "2"))  # the copy completes before the retry
    wait_for(lambda: stubs.y() == (2.0, 2))


def test_warmup_errors_fail_the_load(serve, tmp_path):
    base = str(tmp_path / "m")
    serving_fixtures.write_half_plus_two(base, 1, a=1.0, b=0.0)
    _, stubs = serve(base)
    v2 = serving_fixtures.write_half_plus_two(str(tmp_path / "staging"), 2, warmup=False)
    os.makedirs(os.path.join(v2, "assets.extra"))
    with open(os.path.join(v2, "assets.extra", "tf_serving_warmup_requests"), "wb") as f:
        f.write(b"this is not a TFRecord file")
    os.rename(v2, os.path.join(base, "2"))
    wait_for(lambda: stubs.states()[0][1] == "END")
    version, _, code, message = stubs.states()[0]
    assert version == 2 and code == grpc.StatusCode.DATA_LOSS.value[0]
    assert "Please verify your warmup data is in TFRecord format." in message
    v3 = serving_fixtures.write_half_plus_two(str(tmp_path / "staging"), 3, warmup=False)
    serving_fixtures.write_warmup(v3, [serving_fixtures.predict_request("m", {"x": np.ones(1, np.float32)}, "nope")])
    os.rename(v3, os.path.join(base, "3"))
    wait_for(lambda: stubs.states()[0][:2] == (3, "END"))
    assert stubs.states()[0][2] == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert stubs.y() == (1.0, 1)


def test_warmup_runs_at_load(serve, tmp_path, caplog):
    from keras_seq.serving import inference

    base = str(tmp_path / "m")
    path = serving_fixtures.write_half_plus_two(base, 1)
    assert len(inference.read_warmup_records(path)) == 1
    with caplog.at_level("INFO", logger="keras_seq.serving"):
        serve(base)
    loads = [r for r in caplog.records if "Successfully loaded servable version" in r.getMessage()]
    assert len(loads) == 1


def reload_config(stubs, config):
    request = model_management_pb2.ReloadConfigRequest()
    request.config.CopyFrom(config)
    return stubs.reload(request, timeout=60)


def test_reload_adds_and_removes_models_under_load(serve, tmp_path):
    a = str(tmp_path / "a")
    b = str(tmp_path / "b")
    serving_fixtures.write_half_plus_two(a, 1, a=1.0, b=0.0)
    serving_fixtures.write_half_plus_two(b, 1, a=5.0, b=0.0)
    config_a = config_with(a, name="a")
    _, stubs = serve(config_a)
    failures, count, stop = [], [0], threading.Event()

    def client():
        while not stop.is_set():
            try:
                assert stubs.y("a") == (1.0, 1)
                count[0] += 1
            except grpc.RpcError as e:
                failures.append(e)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        both = config_with(a, name="a")
        both.model_config_list.config.add().CopyFrom(config_with(b, name="b").model_config_list.config[0])
        response = reload_config(stubs, both)
        assert response.status.error_code == 0
        assert stubs.y("b") == (5.0, 1)  # blocks until added models are available
        reload_config(stubs, config_a)
        with pytest.raises(grpc.RpcError) as info:
            stubs.y("b")
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert info.value.details() == "Servable not found for request: Latest(b)"
        n = count[0]
        wait_for(lambda: count[0] > n + 10)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failures


def test_labels(serve, three_versions):
    _, stubs = serve(config_with(three_versions, "all", {"stable": 1}))
    request = serving_fixtures.predict_request("m", {"x": np.ones(1, np.float32)})
    request.model_spec.version_label = "stable"
    assert stubs.predict(request, timeout=30).model_spec.version.value == 1
    with pytest.raises(grpc.RpcError) as info:
        reload_config(stubs, config_with(three_versions, "all", {"stable": 9}))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info.value.details() == (
        "Request to assign label to version 9 of model m, which is not currently available for inference"
    )


def test_reload_cannot_escape_model_roots(serve, tmp_path):
    root = tmp_path / "models"
    base = str(root / "m")
    serving_fixtures.write_half_plus_two(base, 1, warmup=False)
    outside = str(tmp_path / "elsewhere" / "m")
    serving_fixtures.write_half_plus_two(outside, 1, warmup=False)
    _, stubs = serve(base)  # allowed root: the parent of the startup base path
    for bad in (outside, str(root / "m" / ".." / ".." / "elsewhere" / "m")):
        with pytest.raises(grpc.RpcError) as info:
            reload_config(stubs, config_with(bad))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as info:
        reload_config(stubs, config_with(base, name="../m"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    os.symlink(os.path.dirname(outside), str(root / "link"))
    with pytest.raises(grpc.RpcError):
        reload_config(stubs, config_with(str(root / "link" / "m")))
    assert stubs.y()[1] == 1


def test_base_path_vanishing_for_a_while_unloads_nothing(serve, tmp_path):
    base = str(tmp_path / "m")
    serving_fixtures.write_half_plus_two(base, 1, a=1.0, b=0.0, warmup=False)
    _, stubs = serve(base)
    os.rename(base, base + ".away")
    time.sleep(0.5)  # several polls fail to list the base path
    assert stubs.y() == (1.0, 1)
    os.rename(base + ".away", base)
    serving_fixtures.write_half_plus_two(base, 2, a=2.0, b=0.0, warmup=False)
    wait_for(lambda: stubs.y() == (2.0, 2))


def test_model_config_file_is_re_read(tmp_path):
    from google.protobuf import text_format

    a, b = str(tmp_path / "models" / "a"), str(tmp_path / "models" / "b")
    serving_fixtures.write_half_plus_two(a, 1, a=1.0, b=0.0, warmup=False)
    serving_fixtures.write_half_plus_two(b, 1, a=7.0, b=0.0, warmup=False)
    config_file = tmp_path / "models.config"
    config_file.write_text(text_format.MessageToString(config_with(a, name="a")))
    server, port = create_server(model_config_file=str(config_file), model_config_file_poll_wait_seconds=0.1, **FAST)
    try:
        stubs = Stubs(port)
        both = config_with(a, name="a")
        both.model_config_list.config.add().CopyFrom(config_with(b, name="b").model_config_list.config[0])
        config_file.write_text(text_format.MessageToString(both))
        wait_for(lambda: server.core.manager("b") is not None and server.core.manager("b").available_versions() == [1])
        assert stubs.y("b") == (7.0, 1)
        config_file.write_text("this is not a config")  # logged, the old config stays
        time.sleep(0.3)
        assert stubs.y("a") == (1.0, 1) and stubs.y("b") == (7.0, 1)
    finally:
        server.stop(0)
