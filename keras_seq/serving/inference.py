"""The request handling of TF Serving's servables: Predict, Classify, Regress, MultiInference,
GetModelMetadata and warmup, each checked in TF Serving's order with its codes and messages.

Every function takes a loaded `Servable` and a `runner(servable, feeds, fetches, deadline=None)`
that executes one `Session::Run` (directly, or through the batching queue), so batching stays out of
this module. The message texts follow the contract in `shared/reference/tf-serving-contract.md`.

Two limits that TF Serving does not have (see serving/README.md, "Operating it safely"):
- `deadline` (a `time.monotonic()` time, the client's deadline): checked before the inputs are
  parsed and passed on to the run, which TensorFlow cancels when it passes (as TF Serving's
  `RunOptions.timeout_in_ms`), so a request whose client has gone stops costing CPU.
- `max_tensor_bytes`: the memory the request's input tensors may take once parsed, estimated from
  the TensorProtos without parsing them; a request over it gets RESOURCE_EXHAUSTED. The strings a
  request gives (`string_val`) are counted once copied out of the message, before any TensorFlow
  tensor is made; everything they could expand to (padding, the per-element cost) before.

A Predict request may come as a `HeldRequest` (the server's deserializer makes one): `predict`
then lets go of the message, inputs and all, once they are parsed, so that a big request is not
held three times (message, NumPy, TensorFlow's tensor) while the model runs.
"""

import math
import os
import time

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    predict_pb2,
    prediction_log_pb2,
    regression_pb2,
)

from keras_seq.repository_format import MAX_WARMUP_RECORDS, warmup_path
from keras_seq.serving import errors
from keras_seq.serving.tensors import (
    TSTRING_BYTES,
    TensorParseError,
    estimated_bytes,
    given_string_bytes,
    has_given_strings,
    ndarray_to_proto,
    proto_to_ndarray,
)

DEFAULT_SIGNATURE = "serving_default"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"


def remaining_ms(deadline):
    """Milliseconds left until `deadline` (None: no deadline), at least 1; DEADLINE_EXCEEDED if none."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise errors.deadline_exceeded("Deadline exceeded before the model ran")
    return max(1, math.ceil(left * 1000))


def check_deadline(deadline, stage):
    """DEADLINE_EXCEEDED when `deadline` has passed; `stage` says where the request was."""
    if deadline is not None and time.monotonic() >= deadline:
        raise errors.deadline_exceeded(f"Deadline exceeded {stage}")


def direct_runner(servable, feeds, fetches, deadline=None):
    """The runner without batching: one `Session::Run` per request, cancelled at the deadline."""
    return servable.run(feeds, fetches, timeout_ms=remaining_ms(deadline))


def _over_budget(total, limit, what):
    return errors.resource_exhausted(
        f"{what} would take {total} bytes of memory once parsed, more than the {limit} bytes this "
        "server allows per request (--max_request_tensor_bytes)"
    )


class HeldRequest:
    """A PredictRequest in a box that `predict` can empty before the model runs.

    gRPC keeps what its deserializer returned until the RPC ends, and the upb protobuf runtime
    frees a message's memory (its strings included) only with the whole message: clearing a
    field frees nothing. Holding the message here lets `predict` replace it, once its inputs are
    parsed, by a copy without them (`drop_inputs`), which frees the original.
    """

    __slots__ = ("message",)

    def __init__(self, message):
        self.message = message

    @classmethod
    def from_string(cls, data):
        """The gRPC request deserializer of Predict."""
        return cls(predict_pb2.PredictRequest.FromString(data))

    def drop_inputs(self):
        """Replaces the message by a copy of it without `inputs`; returns the copy."""
        message = self.message
        message.ClearField("inputs")
        light = predict_pb2.PredictRequest()
        light.CopyFrom(message)
        self.message = light
        return light


def request_message(request):
    """The PredictRequest of `request` (a message or a `HeldRequest`)."""
    return request.message if isinstance(request, HeldRequest) else request


def make_model_spec(spec, name, signature_name, version):
    """Fills a response ModelSpec as TF Serving's MakeModelSpec does (no version label)."""
    spec.Clear()
    spec.name = name
    if signature_name is not None:
        spec.signature_name = signature_name or DEFAULT_SIGNATURE
    if version is not None:
        spec.version.value = version


def _joined(keys):
    return ",".join(sorted(keys))


# ---------------------------------------------------------------------------------------- Predict


def _verify_inputs_size(signature, request_inputs):
    """Row 7 of the contract: the number of inputs must match the signature's."""
    n_request, n_signature = len(request_inputs), len(signature.inputs)
    if n_request > n_signature or (n_request < n_signature and not signature.defaults):
        request_keys, signature_keys = set(request_inputs), set(signature.inputs)
        raise errors.invalid_argument(
            f"input size does not match signature: {n_request}!={n_signature} "
            f"len({{{_joined(request_keys)}}}) != len({{{_joined(signature_keys)}}}). "
            f"Sent extra: {{{_joined(request_keys - signature_keys)}}}. "
            f"Missing but required: {{{_joined(signature_keys - request_keys)}}}."
        )


def _input_values(signature, request_inputs, max_tensor_bytes=None, deadline=None):
    """Rows 8-10: each signature input from the request (or its default), parsed as FromProto does.

    Before each input is parsed, the memory of the inputs so far is checked against
    `max_tensor_bytes` (RESOURCE_EXHAUSTED) and the deadline (DEADLINE_EXCEEDED); the checks come
    in TF Serving's order otherwise.

    Returns a list of (feed tensor name, NumPy array).
    """
    feeds, seen, total = [], set(), 0
    for alias in sorted(signature.inputs):
        feed_name = signature.inputs[alias].name
        if alias in request_inputs:
            proto = request_inputs[alias]
            seen.add(alias)
        elif alias in signature.defaults:
            proto = signature.defaults[alias]
        else:
            raise errors.invalid_argument(
                f"Signature input alias: {alias}(feed name: {feed_name}) not found in request and "
                f"no default value provided. Inputs expected to be in the request "
                f"{{{_joined(request_inputs)}}}, or default input alias set: {_joined(signature.defaults)}"
            )
        # Given strings are counted once parsed: measuring them in the message copies them.
        strings_later = max_tensor_bytes is not None and has_given_strings(proto)
        if max_tensor_bytes is not None:
            total += estimated_bytes(proto, given_strings=not strings_later)
            if total > max_tensor_bytes:
                raise _over_budget(total, max_tensor_bytes, f"The inputs (up to {alias})")
        check_deadline(deadline, "before parsing the inputs")
        try:
            array = proto_to_ndarray(proto)
        except TensorParseError:
            raise errors.invalid_argument(f"tensor parsing error: {alias}") from None
        if strings_later:
            total += given_string_bytes(array, proto)
            if total > max_tensor_bytes:
                raise _over_budget(total, max_tensor_bytes, f"The inputs (up to {alias})")
        feeds.append((feed_name, array))
    if request_inputs and len(seen) != len(request_inputs):
        raise errors.invalid_argument(
            f"Inputs contains invalid name. Used request inputs: {_joined(seen)}, "
            f"request input: {_joined(request_inputs)}"
        )
    return feeds


def _output_aliases(signature, output_filter):
    """Row 11: the output aliases to fetch (all of them when the filter is empty)."""
    if not output_filter:
        return sorted(signature.outputs)
    aliases = []
    for alias in output_filter:
        if alias not in signature.outputs:
            raise errors.invalid_argument(
                f"output tensor alias not found in signature: {alias} Outputs expected to be in the "
                f"set {{{_joined(signature.outputs)}}}."
            )
        if alias in aliases:
            raise errors.invalid_argument(f"duplicate output tensor alias: {alias}")
        aliases.append(alias)
    return aliases


def find_predict_signature(servable, signature_name):
    """Row 5: the signature named by the request (`serving_default` when empty)."""
    key = signature_name or DEFAULT_SIGNATURE
    signature = servable.signature_defs.get(key)
    if signature is None:
        raise errors.failed_precondition(f'Serving signature key "{key}" not found.')
    return key, signature


def predict_arrays(servable, request, runner=direct_runner, deadline=None, max_tensor_bytes=None):
    """Runs a PredictRequest on `servable` with every check of `predict`; returns (the resolved
    signature key, the request message, {output alias: NumPy array}) or raises ServingError.

    The REST API answers from the arrays (it writes JSON, not a PredictResponse); `predict` writes
    them into the PredictResponse.
    """
    held, request = request, request_message(request)
    key, signature = find_predict_signature(servable, request.model_spec.signature_name)
    _verify_inputs_size(signature, request.inputs)
    feeds = _input_values(signature, request.inputs, max_tensor_bytes, deadline)
    if isinstance(held, HeldRequest):
        request = held.drop_inputs()  # the message's copy of the inputs goes before the model runs
    aliases = _output_aliases(signature, request.output_filter)
    fetches = list(dict.fromkeys(signature.outputs[a].name for a in aliases))
    values = dict(zip(fetches, runner(servable, feeds, fetches, deadline=deadline)))
    return key, request, {alias: values[signature.outputs[alias].name] for alias in aliases}


def predict(servable, request, runner=direct_runner, deadline=None, max_tensor_bytes=None):
    """Runs a PredictRequest on `servable`; returns a PredictResponse or raises ServingError.

    Args:
        request: a PredictRequest, or a `HeldRequest` (emptied of its inputs once they are parsed).
        deadline: the client's deadline (`time.monotonic()` time) or None.
        max_tensor_bytes: the most memory the parsed inputs may take, or None for no limit.
    """
    key, request, outputs = predict_arrays(servable, request, runner, deadline, max_tensor_bytes)
    response = predict_pb2.PredictResponse()
    for alias, value in outputs.items():
        response.outputs[alias].CopyFrom(ndarray_to_proto(value))
    make_model_spec(response.model_spec, request.model_spec.name, key, servable.version)
    return response


# ------------------------------------------------------------------------- Classify and Regress


def _signature_for(servable, model_spec):
    key = model_spec.signature_name or DEFAULT_SIGNATURE
    signature = servable.signature_defs.get(key)
    if signature is None:
        raise errors.invalid_argument(f"No signature was found with the name: {key}")
    return signature


def _classification_names(signature):
    """PreProcessClassification (the method-name check is off by default, as in TF Serving)."""
    if len(signature.inputs) != 1:
        raise errors.invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) not in (1, 2):
        raise errors.invalid_argument(f"Expected one or two output Tensors, found {len(signature.outputs)}")
    if "inputs" not in signature.inputs:
        raise errors.failed_precondition(f"No classification inputs found in SignatureDef: {signature}")
    outputs = [signature.outputs[k].name for k in ("classes", "scores") if k in signature.outputs]
    if not outputs:
        raise errors.failed_precondition(
            'Expected classification signature outputs to contain at least one of "classes" or '
            f'"scores". Signature was: {signature}'
        )
    return signature.inputs["inputs"].name, outputs


def _regression_names(signature):
    """PreProcessRegression (the method-name check is off by default, as in TF Serving)."""
    if len(signature.inputs) != 1:
        raise errors.invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) != 1:
        raise errors.invalid_argument("Expected one output Tensor.")
    if "inputs" not in signature.inputs:
        raise errors.failed_precondition(f"No regression inputs found in SignatureDef: {signature}")
    if "outputs" not in signature.outputs:
        raise errors.failed_precondition(f"No regression outputs found in SignatureDef: {signature}")
    return signature.inputs["inputs"].name, [signature.outputs["outputs"].name]


def _examples_bytes(model_input):
    """The memory of `_serialized_examples(model_input)`, from the message sizes."""
    kind = model_input.WhichOneof("kind")
    if kind == "example_list":
        examples, context = model_input.example_list.examples, 0
    elif kind == "example_list_with_context":
        examples = model_input.example_list_with_context.examples
        context = model_input.example_list_with_context.context.ByteSize()
    else:
        return 0
    return sum(e.ByteSize() + context + TSTRING_BYTES for e in examples)


def _serialized_examples(model_input):
    """The `Input` message as a DT_STRING vector of serialized tf.Examples."""
    kind = model_input.WhichOneof("kind")
    if kind == "example_list":
        serialized = [e.SerializeToString() for e in model_input.example_list.examples]
    elif kind == "example_list_with_context":
        with_context = model_input.example_list_with_context
        context = with_context.context.SerializeToString()
        # Serialized protos concatenate into a merge: the example's features win over the context's.
        serialized = [context + e.SerializeToString() for e in with_context.examples]
    else:
        serialized = []
    if not serialized:
        raise errors.invalid_argument("Input is empty.")
    return np.array(serialized, dtype=object)


def _shape_string(array):
    return "[" + ",".join(str(d) for d in array.shape) + "]"


def _dtype_name(array):
    """TensorFlow's DataType name of an array (`DT_FLOAT`, `DT_STRING`, ...)."""
    if array.dtype == object:
        return "DT_STRING"
    return "DT_" + tf.dtypes.as_dtype(array.dtype).name.upper()


def _fill_classifications(signature, n, values, result):
    classes = values.get(signature.outputs["classes"].name) if "classes" in signature.outputs else None
    scores = values.get(signature.outputs["scores"].name) if "scores" in signature.outputs else None
    for name, array, dtype, ok in (
        ("classes", classes, "DT_STRING", lambda a: a.dtype == object),
        ("scores", scores, "DT_FLOAT", lambda a: a.dtype == np.float32),
    ):
        if array is None:
            continue
        if array.ndim != 2:
            raise errors.invalid_argument(
                f"Expected Tensor shape: [batch_size num_classes] but got {_shape_string(array)}"
            )
        if not ok(array):
            raise errors.invalid_argument(f"Expected {name} Tensor of {dtype}. Got: {_dtype_name(array)}")
        if array.shape[0] != n:
            raise errors.invalid_argument(f"Expected {name} output batch size of {n}. Got: {array.shape[0]}")
    num_classes = (classes if classes is not None else scores).shape[1]
    for i in range(n):
        classifications = result.classifications.add()
        for c in range(num_classes):
            cls = classifications.classes.add()
            if classes is not None:
                cls.label = bytes(classes[i, c]).decode("utf-8", "replace")
            if scores is not None:
                cls.score = float(scores[i, c])


def _fill_regressions(n, output, result):
    if not (output.ndim == 1 or (output.ndim == 2 and output.shape[1] == 1)):
        raise errors.invalid_argument(
            f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got {_shape_string(output)}"
        )
    if output.dtype != np.float32:
        raise errors.invalid_argument(f"Expected output Tensor of DT_FLOAT.  Got: {_dtype_name(output)}")
    if output.shape[0] != n:
        raise errors.invalid_argument(f"Input batch size did not match output batch size: {n} vs. {output.shape[0]}")
    for value in output.reshape(-1):
        result.regressions.add().value = float(value)


def _run_examples(servable, runner, input_name, fetches, model_input, deadline=None, max_tensor_bytes=None):
    if max_tensor_bytes is not None:
        total = _examples_bytes(model_input)
        if total > max_tensor_bytes:
            raise _over_budget(total, max_tensor_bytes, "The serialized examples")
    check_deadline(deadline, "before serializing the examples")
    examples = _serialized_examples(model_input)
    outputs = runner(servable, [(input_name, examples)], fetches, deadline=deadline)
    return len(examples), dict(zip(fetches, outputs))


def classify(servable, request, runner=direct_runner, deadline=None, max_tensor_bytes=None):
    signature = _signature_for(servable, request.model_spec)
    input_name, fetches = _classification_names(signature)
    n, values = _run_examples(servable, runner, input_name, fetches, request.input, deadline, max_tensor_bytes)
    response = classification_pb2.ClassificationResponse()
    _fill_classifications(signature, n, values, response.result)
    make_model_spec(response.model_spec, request.model_spec.name, request.model_spec.signature_name, servable.version)
    return response


def regress(servable, request, runner=direct_runner, deadline=None, max_tensor_bytes=None):
    signature = _signature_for(servable, request.model_spec)
    input_name, fetches = _regression_names(signature)
    n, values = _run_examples(servable, runner, input_name, fetches, request.input, deadline, max_tensor_bytes)
    response = regression_pb2.RegressionResponse()
    _fill_regressions(n, values[fetches[0]], response.result)
    make_model_spec(response.model_spec, request.model_spec.name, request.model_spec.signature_name, servable.version)
    return response


def multi_inference(servable, request, runner=direct_runner, deadline=None, max_tensor_bytes=None):
    """Several classify/regress tasks over one input, as TF Serving's TensorFlowMultiInferenceRunner."""
    model_name, input_name = "", ""
    seen_signatures, fetches = set(), set()
    for task in request.tasks:
        if not task.model_spec.name:
            raise errors.invalid_argument("Found ModelSpec with an empty model name.")
        if model_name and model_name != task.model_spec.name:
            raise errors.invalid_argument("All ModelSpecs in a MultiInferenceRequest must access the same model name.")
        model_name = task.model_spec.name
        key = task.model_spec.signature_name or DEFAULT_SIGNATURE
        if key in seen_signatures:
            raise errors.invalid_argument(f"Duplicate evaluation of signature: {key}")
        seen_signatures.add(key)
        signature = servable.signature_defs.get(key)
        if signature is None:
            raise errors.invalid_argument(f"Requested signature not found in model graph: {key}")
        if task.method_name == CLASSIFY_METHOD:
            name, names = _classification_names(signature)
        elif task.method_name == REGRESS_METHOD:
            name, names = _regression_names(signature)
        else:
            raise errors.ServingError(
                errors.grpc.StatusCode.UNIMPLEMENTED, f"Unsupported signature method_name: {task.method_name}"
            )
        if input_name and input_name != name:
            raise errors.invalid_argument("Input tensor must be the same for all Signatures.")
        input_name = name
        fetches.update(names)
    if not request.tasks:
        raise errors.invalid_argument("MultiInferenceRequest must specify at least one task.")
    n, values = _run_examples(
        servable, runner, input_name, sorted(fetches), request.input, deadline, max_tensor_bytes
    )
    response = inference_pb2.MultiInferenceResponse()
    for task in request.tasks:
        signature = servable.signature_defs[task.model_spec.signature_name or DEFAULT_SIGNATURE]
        result = response.results.add()
        if task.method_name == CLASSIFY_METHOD:
            _fill_classifications(signature, n, values, result.classification_result)
        else:
            _fill_regressions(n, values[signature.outputs["outputs"].name], result.regression_result)
        make_model_spec(result.model_spec, task.model_spec.name, task.model_spec.signature_name, servable.version)
    return response


# ---------------------------------------------------------------------------------- Metadata


def check_metadata_request(request):
    """The checks GetModelMetadata makes before it looks the servable up."""
    if not request.HasField("model_spec"):
        raise errors.invalid_argument("Missing ModelSpec")
    if not request.metadata_field:
        raise errors.invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
        if field != "signature_def":
            raise errors.invalid_argument(f"Metadata field {field} is not supported")


def metadata(servable, request):
    """GetModelMetadataResponse with every SignatureDef of the MetaGraph (init op included)."""
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    make_model_spec(response.model_spec, request.model_spec.name, None, servable.version)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in servable.signature_defs.items():
        signature_map.signature_def[key].CopyFrom(signature)
    response.metadata["signature_def"].Pack(signature_map)
    return response


# -------------------------------------------------------------------------------------- Warmup


def read_warmup_records(version_path):
    """The PredictionLog records of `assets.extra/tf_serving_warmup_requests` ([] when absent)."""
    path = warmup_path(version_path)
    if not os.path.exists(path):
        return []
    records = []
    try:
        for raw in tf.data.TFRecordDataset(path):
            records.append(raw.numpy())
            if len(records) > MAX_WARMUP_RECORDS:
                raise errors.invalid_argument(
                    f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}"
                )
    except tf.errors.OpError as e:
        raise errors.ServingError(
            errors.grpc.StatusCode.DATA_LOSS,
            f"Failed to read warmup data at {path}: {e.message}. Please verify your warmup data is in TFRecord format.",
        ) from None
    logs = []
    for raw in records:
        log = prediction_log_pb2.PredictionLog()
        try:
            log.ParseFromString(raw)
        except Exception:
            raise errors.ServingError(
                errors.grpc.StatusCode.DATA_LOSS,
                f"Failed to parse a PredictionLog in {path}. Please verify your warmup data is in TFRecord format.",
            ) from None
        logs.append(log)
    return logs


def run_warmup(servable, runner=direct_runner, iterations=1):
    """Replays the version's warmup records; any error fails the load, as in TF Serving.

    Returns the number of records replayed.
    """
    logs = read_warmup_records(servable.path)
    for log in logs:
        kind = log.WhichOneof("log_type")
        for _ in range(iterations):
            if kind == "predict_log":
                predict(servable, log.predict_log.request, runner)
            elif kind == "classify_log":
                classify(servable, log.classify_log.request, runner)
            elif kind == "regress_log":
                regress(servable, log.regress_log.request, runner)
            elif kind == "multi_inference_log":
                multi_inference(servable, log.multi_inference_log.request, runner)
            else:
                raise errors.ServingError(
                    errors.grpc.StatusCode.UNIMPLEMENTED, f"Unsupported log_type for warmup: {kind}"
                )
    return len(logs)
