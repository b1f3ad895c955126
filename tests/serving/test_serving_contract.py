"""Contract tests: TF Serving's gRPC API through the stock `tensorflow-serving-api` stubs.

They run against `keras-seq serve` (started in-process on 127.0.0.1, port 0) by default, and
against a real TF Serving when KERAS_SEQ_TFSERVING=HOST:PORT is set; that server must serve the toy
repository written by `python tests/serving_fixtures.py DIR` with `DIR/models.config`. Tests
that write into the repository skip there. Expected codes and messages are those of
`shared/reference/tf-serving-contract.md`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import re

import grpc
import numpy as np
import pytest
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

import serving_fixtures
from keras_seq.serving.server import create_server
from keras_seq.serving.tensors import ndarray_to_proto

EXTERNAL = os.environ.get("KERAS_SEQ_TFSERVING")
local_only = pytest.mark.skipif(bool(EXTERNAL), reason="writes into the model repository")
HP2 = "half_plus_two"
AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(address, local ModelServer or None)."""
    if EXTERNAL:
        yield EXTERNAL, None
        return
    root = tmp_path_factory.mktemp("contract_repo")
    config = serving_fixtures.write_toy_repository(str(root))
    model_server, port = create_server(
        model_config=config, port=0, file_system_poll_wait_seconds=-1, max_num_load_retries=0
    )
    yield f"127.0.0.1:{port}", model_server
    model_server.stop(0)


@pytest.fixture(scope="module")
def channel(server):
    ch = grpc.insecure_channel(server[0])
    yield ch
    ch.close()


@pytest.fixture(scope="module")
def predictions(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def models(channel):
    return model_service_pb2_grpc.ModelServiceStub(channel)


def request_for(model, inputs, signature="", version=None, label=None, output_filter=()):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if signature:
        request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for alias, value in inputs.items():
        request.inputs[alias].CopyFrom(value if isinstance(value, tensor_pb2.TensorProto) else ndarray_to_proto(value))
    request.output_filter.extend(output_filter)
    return request


def floats(*values):
    return np.array(values, dtype=np.float32)


def words(*values):
    return np.array([v.encode() if isinstance(v, str) else v for v in values], dtype=object)


def expect_error(method, request, code, message):
    """Calls `method`; asserts the status code and the message (a string, or a compiled regex)."""
    with pytest.raises(grpc.RpcError) as info:
        method(request, timeout=30)
    assert info.value.code() == code, info.value.details()
    details = info.value.details()
    if isinstance(message, re.Pattern):
        assert message.search(details), details
    else:
        assert details == message
    return details


def values_of(tensor):
    import tensorflow as tf

    return tf.make_ndarray(tensor)


# ------------------------------------------------------------------------------------ Predict


def test_predict_serving_default_resolves_latest_and_echoes_spec(predictions):
    response = predictions.Predict(request_for(HP2, {"x": floats(1, 2, 4)}), timeout=30)
    y = response.outputs["y"]
    assert y.dtype == types_pb2.DT_FLOAT
    assert [d.size for d in y.tensor_shape.dim] == [3]
    assert list(y.float_val) == [4.0, 5.0, 7.0]  # version 2: x + 3, typed field
    assert y.tensor_content == b""
    assert response.model_spec.name == HP2
    assert response.model_spec.version.value == 2
    assert response.model_spec.signature_name == "serving_default"


def test_predict_specific_version_and_label(predictions):
    response = predictions.Predict(request_for(HP2, {"x": floats(2)}, version=1), timeout=30)
    assert list(response.outputs["y"].float_val) == [3.0]
    assert response.model_spec.version.value == 1
    response = predictions.Predict(request_for(HP2, {"x": floats(2)}, label="stable"), timeout=30)
    assert list(response.outputs["y"].float_val) == [3.0]
    assert response.model_spec.version.value == 1
    assert response.model_spec.WhichOneof("version_choice") == "version"  # the label is never echoed
    response = predictions.Predict(request_for(HP2, {"x": floats(2)}, label="canary"), timeout=30)
    assert response.model_spec.version.value == 2


def test_predict_every_signature(predictions):
    import tensorflow as tf

    matrix = predictions.Predict(request_for(HP2, {"x": np.ones([2, 4], np.float32)}, "matrix"), timeout=30)
    np.testing.assert_allclose(values_of(matrix.outputs["y"]), np.full([2, 2], 4.0))
    assert matrix.model_spec.signature_name == "matrix"

    example = tf.train.Example(
        features=tf.train.Features(feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=[2.0]))})
    )
    serialized = words(example.SerializeToString())
    regress = predictions.Predict(request_for(HP2, {"inputs": serialized}, "regress"), timeout=30)
    assert list(regress.outputs["outputs"].float_val) == [5.0]
    classify = predictions.Predict(request_for(HP2, {"inputs": serialized}, "classify"), timeout=30)
    assert list(classify.outputs["classes"].string_val) == [b"pos", b"neg"]
    batch = predictions.Predict(request_for(HP2, {"x": floats(1, 2)}, "batch_size"), timeout=30)
    assert batch.outputs["n"].dtype == types_pb2.DT_INT32 and list(batch.outputs["n"].int_val) == [2, 2]

    g2p = predictions.Predict(request_for("g2p", {"words": words("hello", "ab")}), timeout=30)
    assert list(g2p.outputs["pronunciation"].string_val) == [b"H E L L O", b"A B"]
    assert g2p.outputs["score"].dtype == types_pb2.DT_FLOAT and list(g2p.outputs["score"].float_val) == [-5.0, -2.0]
    assert [d.size for d in g2p.outputs["nbest"].tensor_shape.dim] == [2, 2]
    greedy = predictions.Predict(request_for("g2p", {"words": words("ab")}, "greedy"), timeout=30)
    assert sorted(greedy.outputs) == ["pronunciation", "score"]
    tokens = predictions.Predict(request_for("g2p", {"ids": np.array([[1, 2, 3]], np.int32)}, "tokens"), timeout=30)
    assert list(tokens.outputs["ids"].int_val) == [2, 3, 4]

    two = predictions.Predict(request_for("two_inputs", {"a": floats(1.5), "b": np.array([2], np.int32)}), timeout=30)
    assert list(two.outputs["sum"].float_val) == [3.5] and list(two.outputs["prod"].float_val) == [3.0]


def test_output_filter(predictions):
    response = predictions.Predict(request_for("g2p", {"words": words("ab")}, output_filter=["score"]), timeout=30)
    assert list(response.outputs) == ["score"]


def test_empty_batch_succeeds(predictions):
    response = predictions.Predict(request_for(HP2, {"x": np.ones([0, 4], np.float32)}, "matrix"), timeout=30)
    assert [d.size for d in response.outputs["y"].tensor_shape.dim] == [0, 2]
    response = predictions.Predict(request_for("g2p", {"words": words()}), timeout=30)
    assert [d.size for d in response.outputs["pronunciation"].tensor_shape.dim] == [0]


def test_tensor_proto_quirks_of_from_proto(predictions):
    padded = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[7.0])
    padded.tensor_shape.dim.add().size = 3
    response = predictions.Predict(request_for(HP2, {"x": padded}, version=1), timeout=30)
    assert list(response.outputs["y"].float_val) == [5.5, 5.5, 5.5]
    content = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=floats(2, 4).tobytes(), float_val=[9])
    content.tensor_shape.dim.add().size = 2
    response = predictions.Predict(request_for(HP2, {"x": content}, version=1), timeout=30)
    assert list(response.outputs["y"].float_val) == [3.0, 4.0]


# ------------------------------------------------------------------------ Predict error table


def test_error_missing_model_spec(predictions):
    expect_error(
        predictions.Predict, predict_pb2.PredictRequest(), grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec"
    )


def test_error_empty_name(predictions):
    expect_error(
        predictions.Predict,
        request_for("", {"x": floats(1)}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "ModelSpec has no name specified.",
    )


def test_error_unknown_label(predictions):
    expect_error(
        predictions.Predict,
        request_for(HP2, {"x": floats(1)}, label="nightly"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Unrecognized servable version label: nightly",
    )


def test_error_unknown_model_and_version(predictions):
    expect_error(
        predictions.Predict,
        request_for("nope", {"x": floats(1)}),
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    )
    expect_error(
        predictions.Predict,
        request_for(HP2, {"x": floats(1)}, version=99),
        grpc.StatusCode.NOT_FOUND,
        f"Servable not found for request: Specific({HP2}, 99)",
    )


def test_error_unknown_signature(predictions):
    expect_error(
        predictions.Predict,
        request_for(HP2, {"x": floats(1)}, "nope"),
        grpc.StatusCode.FAILED_PRECONDITION,
        'Serving signature key "nope" not found.',
    )


def test_long_messages_are_truncated(predictions):
    name = "s" * 2000
    details = expect_error(
        predictions.Predict,
        request_for(HP2, {"x": floats(1)}, name),
        grpc.StatusCode.FAILED_PRECONDITION,
        re.compile(r"^Serving signature key \"s+\.\.\.TRUNCATED$"),
    )
    assert len(details) == 1024 + len("...TRUNCATED")


def test_error_input_count(predictions):
    expect_error(
        predictions.Predict,
        request_for(HP2, {"x": floats(1), "z": floats(1)}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input size does not match signature: 2!=1 len({x,z}) != len({x}). Sent extra: {z}. Missing but required: {}.",
    )
    expect_error(
        predictions.Predict,
        request_for("two_inputs", {"a": floats(1)}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input size does not match signature: 1!=2 len({a}) != len({a,b}). Sent extra: {}. Missing but required: {b}.",
    )
    expect_error(
        predictions.Predict,
        request_for(HP2, {}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input size does not match signature: 0!=1 len({}) != len({x}). Sent extra: {}. Missing but required: {x}.",
    )


def test_error_wrong_input_name(predictions):
    expect_error(
        predictions.Predict,
        request_for(HP2, {"X": floats(1)}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Signature input alias: x(feed name: serving_default_x:0) not found in request and no default "
        "value provided. Inputs expected to be in the request {X}, or default input alias set: ",
    )


def test_error_tensor_parsing(predictions):
    negative = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    negative.tensor_shape.dim.add().size = -1
    short = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=b"abc")
    short.tensor_shape.dim.add().size = 1
    unset = tensor_pb2.TensorProto(float_val=[1.0])
    for bad in (negative, short, unset):
        expect_error(
            predictions.Predict,
            request_for(HP2, {"x": bad}),
            grpc.StatusCode.INVALID_ARGUMENT,
            "tensor parsing error: x",
        )


def test_error_output_filter(predictions):
    expect_error(
        predictions.Predict,
        request_for("g2p", {"words": words("a")}, output_filter=["nope"]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "output tensor alias not found in signature: nope Outputs expected to be in the set "
        "{nbest,nbest_scores,pronunciation,score}.",
    )
    expect_error(
        predictions.Predict,
        request_for("g2p", {"words": words("a")}, output_filter=["score", "score"]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "duplicate output tensor alias: score",
    )


def test_error_wrong_dtype(predictions):
    expect_error(
        predictions.Predict,
        request_for(HP2, {"x": np.array([1], np.int32)}),
        grpc.StatusCode.INVALID_ARGUMENT,
        re.compile(r"^Expects arg\[\d+\] to be float but int32 is provided$"),
    )
    expect_error(
        predictions.Predict,
        request_for(HP2, {"x": words("a")}),
        grpc.StatusCode.INVALID_ARGUMENT,
        re.compile(r"^Expects arg\[\d+\] to be float but string is provided$"),
    )
    expect_error(
        predictions.Predict,
        request_for("two_inputs", {"a": floats(1), "b": floats(1)}),
        grpc.StatusCode.INVALID_ARGUMENT,
        re.compile(r"^Expects arg\[\d+\] to be int32 but float is provided$"),
    )


def test_error_wrong_shape(predictions):
    expect_error(
        predictions.Predict,
        request_for(HP2, {"x": np.ones([2, 5], np.float32)}, "matrix"),
        grpc.StatusCode.INVALID_ARGUMENT,
        re.compile(r"Matrix size-incompatible: In\[0\]: \[2,5\], In\[1\]: \[4,2\]"),
    )
    expect_error(
        predictions.Predict,
        request_for(HP2, {"x": floats(1, 2)}, "matrix"),
        grpc.StatusCode.INVALID_ARGUMENT,
        re.compile(r"In\[0\]"),
    )
    expect_error(
        predictions.Predict,
        request_for("two_inputs", {"a": floats(1, 2), "b": np.array([1, 2, 3], np.int32)}),
        grpc.StatusCode.INVALID_ARGUMENT,
        re.compile(r"[Ii]ncompatible shapes|must be equal|shape"),
    )


def test_server_stays_up_after_errors(predictions):
    response = predictions.Predict(request_for(HP2, {"x": floats(0)}), timeout=30)
    assert list(response.outputs["y"].float_val) == [3.0]


# ------------------------------------------------------------------ Classify, Regress, Multi


def _example_input(*xs):
    import tensorflow as tf

    from tensorflow_serving.apis import input_pb2

    model_input = input_pb2.Input()
    for x in xs:
        example = model_input.example_list.examples.add()
        example.CopyFrom(
            tf.train.Example(
                features=tf.train.Features(feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=[x]))})
            )
        )
    return model_input


def test_classify_and_regress_signatures(predictions):
    request = classification_pb2.ClassificationRequest(input=_example_input(0.25, 1.0))
    request.model_spec.name, request.model_spec.signature_name = HP2, "classify"
    response = predictions.Classify(request, timeout=30)
    first = response.result.classifications[0].classes
    assert [(c.label, round(c.score, 4)) for c in first] == [("pos", 0.25), ("neg", 0.75)]
    assert response.model_spec.version.value == 2 and response.model_spec.signature_name == "classify"

    request = regression_pb2.RegressionRequest(input=_example_input(1.0, 2.0))
    request.model_spec.name, request.model_spec.signature_name = HP2, "regress"
    response = predictions.Regress(request, timeout=30)
    assert [r.value for r in response.result.regressions] == [4.0, 5.0]


def test_classify_regress_multi_on_predict_signature(predictions):
    request = classification_pb2.ClassificationRequest(input=_example_input(1.0))
    request.model_spec.name = HP2
    expect_error(
        predictions.Classify,
        request,
        grpc.StatusCode.FAILED_PRECONDITION,
        re.compile(r"^No classification inputs found in SignatureDef: "),
    )
    request = classification_pb2.ClassificationRequest(input=_example_input(1.0))
    request.model_spec.name = "two_inputs"
    expect_error(predictions.Classify, request, grpc.StatusCode.INVALID_ARGUMENT, "Expected one input Tensor.")
    request = regression_pb2.RegressionRequest(input=_example_input(1.0))
    request.model_spec.name = HP2
    expect_error(
        predictions.Regress,
        request,
        grpc.StatusCode.FAILED_PRECONDITION,
        re.compile(r"^No regression inputs found in SignatureDef: "),
    )
    request = inference_pb2.MultiInferenceRequest(input=_example_input(1.0))
    task = request.tasks.add(method_name="tensorflow/serving/predict")
    task.model_spec.name = HP2
    expect_error(
        predictions.MultiInference,
        request,
        grpc.StatusCode.UNIMPLEMENTED,
        "Unsupported signature method_name: tensorflow/serving/predict",
    )
    request = classification_pb2.ClassificationRequest(input=_example_input(1.0))
    request.model_spec.name, request.model_spec.signature_name = HP2, "nope"
    expect_error(
        predictions.Classify, request, grpc.StatusCode.INVALID_ARGUMENT, "No signature was found with the name: nope"
    )


def test_multi_inference(predictions):
    request = inference_pb2.MultiInferenceRequest(input=_example_input(1.0))
    task = request.tasks.add(method_name="tensorflow/serving/regress")
    task.model_spec.name, task.model_spec.signature_name = HP2, "regress"
    response = predictions.MultiInference(request, timeout=30)
    assert response.results[0].regression_result.regressions[0].value == 4.0
    assert response.results[0].model_spec.version.value == 2
    # TF2 SavedModels give every signature its own input placeholder, so tasks cannot share one.
    task = request.tasks.add(method_name="tensorflow/serving/classify")
    task.model_spec.name, task.model_spec.signature_name = HP2, "classify"
    expect_error(
        predictions.MultiInference,
        request,
        grpc.StatusCode.INVALID_ARGUMENT,
        "Input tensor must be the same for all Signatures.",
    )


# ------------------------------------------------------------------------------- Metadata


def metadata_request(name, fields=("signature_def",), version=None):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=list(fields))
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    return request


def test_metadata_lists_every_signature(predictions):
    response = predictions.GetModelMetadata(metadata_request(HP2), timeout=30)
    assert response.model_spec.name == HP2 and response.model_spec.version.value == 2
    assert response.model_spec.signature_name == ""
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    assert {"serving_default", "matrix", "regress", "classify", "__saved_model_init_op"} <= set(
        signatures.signature_def
    )
    x = signatures.signature_def["serving_default"].inputs["x"]
    assert x.dtype == types_pb2.DT_FLOAT and [d.size for d in x.tensor_shape.dim] == [-1]
    g2p = predictions.GetModelMetadata(metadata_request("g2p"), timeout=30)
    g2p.metadata["signature_def"].Unpack(signatures)
    assert signatures.signature_def["serving_default"].inputs["words"].dtype == types_pb2.DT_STRING


def test_metadata_errors(predictions):
    expect_error(
        predictions.GetModelMetadata,
        get_model_metadata_pb2.GetModelMetadataRequest(),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Missing ModelSpec",
    )
    expect_error(
        predictions.GetModelMetadata,
        metadata_request(HP2, fields=()),
        grpc.StatusCode.INVALID_ARGUMENT,
        "GetModelMetadataRequest must specify at least one metadata_field",
    )
    expect_error(
        predictions.GetModelMetadata,
        metadata_request(HP2, fields=("signature_def", "graph")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Metadata field graph is not supported",
    )
    expect_error(
        predictions.GetModelMetadata,
        metadata_request("nope"),
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    )


# --------------------------------------------------------------------------------- Status


def status_request(name, version=None):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    return request


def test_status_lists_versions_newest_first(models):
    response = models.GetModelStatus(status_request(HP2), timeout=30)
    assert [s.version for s in response.model_version_status] == [2, 1]
    for status in response.model_version_status:
        assert status.state == AVAILABLE
        assert status.status.error_code == 0 and status.status.error_message == ""
    response = models.GetModelStatus(status_request(HP2, version=1), timeout=30)
    assert [s.version for s in response.model_version_status] == [1]


def test_status_errors(models):
    expect_error(
        models.GetModelStatus,
        get_model_status_pb2.GetModelStatusRequest(),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Missing ModelSpec",
    )
    expect_error(
        models.GetModelStatus,
        status_request(HP2, version=7),
        grpc.StatusCode.NOT_FOUND,
        f"Could not find version 7 of model {HP2}",
    )
    expect_error(
        models.GetModelStatus,
        status_request("nope"),
        grpc.StatusCode.NOT_FOUND,
        "Could not find any versions of model nope",
    )


# ------------------------------------------------------------------------------ Reload config


def reload_request(*entries, labels=None):
    request = model_management_pb2.ReloadConfigRequest()
    for name, base_path, platform in entries:
        model = request.config.model_config_list.config.add(name=name, base_path=base_path, model_platform=platform)
        if name == HP2:
            model.model_version_policy.all.SetInParent()
            for label, version in (labels or {}).items():
                model.version_labels[label] = version
    return request


def test_reload_config_errors(models, server):
    if server[1] is None:
        pytest.skip("needs the repository path")
    base = server[1].core.manager(HP2).settings.base_path
    expect_error(
        models.HandleReloadConfigRequest,
        reload_request((HP2, "relative/path", "tensorflow")),
        grpc.StatusCode.INVALID_ARGUMENT,
        f"Expected model {HP2} to have an absolute path or URI; got base_path()=relative/path",
    )
    expect_error(
        models.HandleReloadConfigRequest,
        reload_request((HP2, base, "tensorflow"), (HP2, base, "tensorflow")),
        grpc.StatusCode.INVALID_ARGUMENT,
        f"Illegal to list model {HP2} multiple times in config list",
    )
    expect_error(
        models.HandleReloadConfigRequest,
        reload_request((HP2, base, "")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
        f"ModelServerConfig::model_platform, model name is {HP2}",
    )
    request = model_management_pb2.ReloadConfigRequest()
    request.config.custom_model_config.Pack(model_server_config_pb2.ModelServerConfig())
    expect_error(
        models.HandleReloadConfigRequest,
        request,
        grpc.StatusCode.INVALID_ARGUMENT,
        re.compile("Only ModelConfigList is currently supported"),
    )
