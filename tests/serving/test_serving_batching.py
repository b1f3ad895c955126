"""Server-side batching (`--enable_batching`): concurrent requests are merged into one
`Session::Run` (seen by the model as one batch), limits and padding follow BatchingParameters.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import threading

import grpc
import numpy as np
import pytest

import serving_fixtures
from keras_seq.serving import Client, ServingError
from keras_seq.serving.batching import BatchingOptions
from keras_seq.serving.server import create_server


@pytest.fixture(scope="module")
def base_path(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("batching") / "m")
    serving_fixtures.write_half_plus_two(base, 1, a=2.0, b=1.0)
    return base


@pytest.fixture
def batching_server(base_path):
    servers = []

    def start(**batching):
        options = BatchingOptions(**{"num_batch_threads": 1, **batching})
        server, port = create_server(
            model_base_path=base_path,
            model_name="m",
            port=0,
            enable_batching=True,
            batching=options,
            file_system_poll_wait_seconds=-1,
        )
        servers.append(server)
        return server, Client(f"127.0.0.1:{port}", retries=0)

    yield start
    for server in servers:
        server.stop(0)


def test_concurrent_requests_are_merged_into_batches(batching_server):
    server, client = batching_server(max_batch_size=8, batch_timeout_micros=20_000)
    seen, failures = [], []

    def one_client(i):
        try:
            for j in range(10):
                x = float(i * 100 + j)
                out = client.predict("m", {"x": [x]}, signature_name="batch_size")
                seen.append(int(out["n"][0]))
                assert client.predict("m", {"x": [x]})["y"].tolist() == [2 * x + 1]
        except Exception as e:  # noqa: BLE001
            failures.append(e)

    threads = [threading.Thread(target=one_client, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:3]
    assert max(seen) > 1, "no two requests were ever batched together"
    assert max(seen) <= 8
    assert server.scheduler.batches_run < 240


def test_task_larger_than_max_batch_size(batching_server):
    _, client = batching_server(max_batch_size=4)
    with pytest.raises(ServingError) as info:
        client.predict("m", {"x": np.ones(5, np.float32)})
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.message == "Task size 5 is larger than maximum input batch size 4"
    assert client.predict("m", {"x": np.ones(4, np.float32)})["y"].tolist() == [3.0] * 4


def test_batches_are_padded_to_allowed_sizes(batching_server):
    _, client = batching_server(max_batch_size=8, allowed_batch_sizes=(2, 4, 8))
    out = client.predict("m", {"x": np.ones(3, np.float32)}, signature_name="batch_size")
    assert out["n"].tolist() == [4, 4, 4]


def test_empty_batch_passes_through(batching_server):
    _, client = batching_server(max_batch_size=8, allowed_batch_sizes=(2, 4, 8))
    assert client.predict("m", {"x": np.zeros(0, np.float32)})["y"].shape == (0,)


def test_scalar_inputs_cannot_be_batched(batching_server):
    _, client = batching_server(max_batch_size=8)
    with pytest.raises(ServingError) as info:
        client.predict("m", {"x": np.float32(1.0)})
    assert info.value.message == "Batching Run() input tensors must have at least one dimension"


def test_batching_options_are_validated():
    with pytest.raises(ServingError) as info:
        BatchingOptions(max_batch_size=8, allowed_batch_sizes=(2, 4)).validate()
    assert info.value.message == (
        "Last entry in allowed_batch_sizes must match max_batch_size; last entry was 4; expected 8"
    )


def test_batching_parameters_file(base_path, tmp_path):
    params = tmp_path / "batching_parameters.txt"
    params.write_text(
        "max_batch_size { value: 16 } batch_timeout_micros { value: 1000 } num_batch_threads { value: 2 } "
        "pad_variable_length_inputs: true"
    )
    server, port = create_server(
        model_base_path=base_path,
        model_name="m",
        port=0,
        enable_batching=True,
        batching_parameters_file=str(params),
        file_system_poll_wait_seconds=-1,
    )
    try:
        assert server.scheduler.options.max_batch_size == 16
        assert server.scheduler.options.num_batch_threads == 2
        assert server.scheduler.options.pad_variable_length_inputs
    finally:
        server.stop(0)
    with pytest.raises(ValueError):
        create_server(model_base_path=base_path, model_name="m", port=0, batching_parameters_file=str(params))
