"""Bad input through the stock stubs (issue 6): every bad request gets TF Serving's status code and
a message saying what was wrong, the server stays up, and the next valid request succeeds. Ends
with a bounded hypothesis fuzz of random and mutated PredictRequest bytes.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import threading

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

import serving_fixtures
from keras_seq.serving.server import create_server
from keras_seq.serving.tensors import ndarray_to_proto

EXTERNAL = os.environ.get("KERAS_SEQ_TFSERVING")
INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def address(tmp_path_factory):
    if EXTERNAL:
        yield EXTERNAL
        return
    root = tmp_path_factory.mktemp("badinput_repo")
    config = serving_fixtures.write_toy_repository(str(root))
    server, port = create_server(model_config=config, port=0, file_system_poll_wait_seconds=-1)
    yield f"127.0.0.1:{port}"
    server.stop(0)


@pytest.fixture(scope="module")
def channel(address):
    ch = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", -1)])
    yield ch
    ch.close()


@pytest.fixture(scope="module")
def predict(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict


def g2p_request(*words, tensor=None, output_filter=(), model="g2p", signature=""):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if tensor is None:
        tensor = ndarray_to_proto(np.array(list(words), dtype=object), types_pb2.DT_STRING)
    request.inputs["words"].CopyFrom(tensor)
    request.output_filter.extend(output_filter)
    return request


def assert_still_serving(predict):
    response = predict(g2p_request(b"ok"), timeout=30)
    assert list(response.outputs["pronunciation"].string_val) == [b"O K"]


@pytest.mark.parametrize(
    "word",
    [b"", b"\xff\xfe\x80 not utf-8", "caf\u00e9 \u4e2d\u6587 \U0001f600".encode(), b"\x00\x01\x02", b"x" * 1_000_000],
    ids=["empty", "non_utf8", "out_of_vocabulary", "control_bytes", "one_megabyte"],
)
def test_odd_strings_get_an_answer(predict, word):
    response = predict(g2p_request(word, b"ab"), timeout=60)
    assert len(response.outputs["pronunciation"].string_val) == 2
    assert response.outputs["pronunciation"].string_val[1] == b"A B"
    assert_still_serving(predict)


def _negative_dims():
    t = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b"a"])
    t.tensor_shape.dim.add().size = -3
    return t


def _wrong_content_length():
    t = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=b"\x00" * 7)
    t.tensor_shape.dim.add().size = 2
    return t


BAD_REQUESTS = {
    "wrong_dtype": (
        g2p_request(tensor=ndarray_to_proto(np.ones(2, np.float32))),
        INVALID,
        "Expects arg[0] to be string but float is provided",
    ),
    "negative_dims": (g2p_request(tensor=_negative_dims()), INVALID, "tensor parsing error: words"),
    "dtype_unset": (
        g2p_request(tensor=tensor_pb2.TensorProto(string_val=[b"a"])),
        INVALID,
        "tensor parsing error: words",
    ),
    "output_filter_empty_name": (
        g2p_request(b"a", output_filter=[""]),
        INVALID,
        "output tensor alias not found in signature:  Outputs expected to be in the set",
    ),
    "unknown_model": (
        g2p_request(b"a", model="nope"),
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    ),
    "unknown_signature": (
        g2p_request(b"a", signature="beam9"),
        grpc.StatusCode.FAILED_PRECONDITION,
        'Serving signature key "beam9" not found.',
    ),
    "missing_input": (
        g2p_request(b"a", model="two_inputs"),
        INVALID,
        "input size does not match signature: 1!=2 len({words}) != len({a,b})",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
def test_bad_requests_get_tf_serving_status(predict, name):
    request, code, message = BAD_REQUESTS[name]
    with pytest.raises(grpc.RpcError) as info:
        predict(request, timeout=30)
    assert info.value.code() == code
    assert message in info.value.details()
    assert_still_serving(predict)


def test_wrong_content_length_on_the_right_input(predict):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(_wrong_content_length())
    with pytest.raises(grpc.RpcError) as info:
        predict(request, timeout=30)
    assert (info.value.code(), info.value.details()) == (INVALID, "tensor parsing error: x")


def test_wrong_rank_is_invalid_argument(predict):
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "half_plus_two", "matrix"
    request.inputs["x"].CopyFrom(ndarray_to_proto(np.ones([3], np.float32)))
    with pytest.raises(grpc.RpcError) as info:
        predict(request, timeout=30)
    assert info.value.code() == INVALID and "In[0]" in info.value.details()
    assert_still_serving(predict)


def _valid_request_bytes():
    return g2p_request(b"hello", b"world").SerializeToString()


def _mutate(data, flips):
    data = bytearray(data)
    for position, value in flips:
        data[position % len(data)] = value
    return bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(
    random=st.binary(max_size=512),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
    use_random=st.booleans(),
)
def test_fuzz_predict_request_bytes(channel, random, flips, use_random):
    raw = channel.unary_unary(
        "/tensorflow.serving.PredictionService/Predict",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    payload = random if use_random else _mutate(_valid_request_bytes(), flips)
    try:
        raw(payload, timeout=10)
    except grpc.RpcError as e:
        assert e.code() != grpc.StatusCode.DEADLINE_EXCEEDED, "the server hung on a request"
        assert e.code() != grpc.StatusCode.UNAVAILABLE, "the server went away"


def test_after_fuzzing_the_server_serves_and_leaks_no_threads(predict):
    before = threading.active_count()
    for _ in range(20):
        assert_still_serving(predict)
    assert threading.active_count() <= before + 2
