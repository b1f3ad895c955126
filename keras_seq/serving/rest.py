"""TF Serving's REST API (`--rest_api_port`) over the same ServerCore, runner and checks as gRPC.

Routes, bodies, messages and HTTP codes follow TF Serving's `api_rest` (model_servers/
http_rest_api_handler.cc, util/json_tensor.cc, http_server.cc; summarised in
shared/reference/tf-serving-contract.md, sections 2 and 7):

- `POST /v1/models/<m>[/versions/<v>|/labels/<l>]:predict` with `{"signature_name"?, "instances":
  [...]}` (row format, answered `{"predictions": [...]}`) or `{"inputs": ...}` (columnar, answered
  `{"outputs": ...}`). Values take the dtype of the signature's input; a string may be given as
  `{"b64": "<base64>"}`, and string outputs whose alias ends in `_bytes` come back that way.
- `POST ...:classify` and `...:regress` with `{"signature_name"?, "context"?, "examples": [...]}`
  (tf.Examples as JSON objects), answered `{"results": [...]}`; a predict-only signature gets the
  same error as over gRPC (`Expected one input Tensor.` ...).
- `GET /v1/models/<m>[/versions/<v>|/labels/<l>]` (GetModelStatus as JSON) and `.../metadata`
  (GetModelMetadata as JSON, `{"model_spec": ..., "metadata": {"signature_def": ...}}`).
- Errors: `{"error": "<message>"}` with the status's HTTP code (`errors.http_status`); a path
  under `/v1/` that matches no route is INVALID_ARGUMENT `Malformed request: <METHOD> <path>`.
- The Prometheus page, when `--monitoring_config_file` enables it, at its path (`metrics.py`).

Everything after the JSON is parsed goes through the gRPC side's code: `ServerCore.acquire` resolves
the model, version and label, `inference.predict_arrays/classify/regress/metadata` run the request (with
`--max_request_tensor_bytes`), and the RequestTracker drains REST calls at shutdown as it does RPCs.
Limits that TF Serving's REST port does not have: bodies over `--max_request_bytes` get
RESOURCE_EXHAUSTED (429) before they are read, and TLS from `--ssl_config_file` (TF Serving's REST
port is plaintext). The HTTP server is Cheroot (CherryPy's WSGI server: a thread pool, keep-alive
connections, TLS), with Werkzeug's request and response objects.
"""

import base64
import json
import logging
import math
import os
import re
import ssl
import tempfile
import threading
import time

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.example import feature_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)
from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from werkzeug.wrappers import Request, Response

from keras_seq.serving import errors, inference
from keras_seq.serving import server as server_lib  # with_servable, model_status: shared with gRPC
from keras_seq.serving.tensors import ndarray_to_proto

log = logging.getLogger("keras_seq.serving")

PREDICT_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?:(classify|regress|predict)", re.IGNORECASE
)
STATUS_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:/versions/(\d+)|/labels/([^/:]+))?(?:/(metadata))?", re.IGNORECASE
)
API_PATH = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
JSON_TYPE = "application/json"
DEBUG_CHARS = 256  # TF Serving cuts JSON values quoted in messages to this many bytes
DRAIN_BYTES = 16 << 20  # an over-limit body up to this size is read and dropped so the client sees the 429

# DataTypeString of TensorFlow, where it differs from the NumPy-style name.
_DTYPE_NAMES = {types_pb2.DT_FLOAT: "float", types_pb2.DT_DOUBLE: "double"}
_INT_RANGES = {
    types_pb2.DT_INT32: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT16: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT8: (-(2**31), 2**31 - 1),
    types_pb2.DT_UINT8: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT64: (-(2**63), 2**63 - 1),
    types_pb2.DT_UINT32: (0, 2**32 - 1),
    types_pb2.DT_UINT64: (0, 2**64 - 1),
}
_FLOATS = (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE)


# ------------------------------------------------------------------------------ JSON -> tensors


def _debug(value):
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= DEBUG_CHARS else text[:DEBUG_CHARS]


def _json_type(value):
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def _dtype_name(dtype):
    return _DTYPE_NAMES.get(dtype) or tf.dtypes.as_dtype(dtype).name


def _type_error(value, dtype):
    return errors.invalid_argument(
        f"JSON Value: {_debug(value)} Type: {_json_type(value)} is not of expected type: {_dtype_name(dtype)}"
    )


def _is_b64(value):
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _decode_b64(value):
    if not _is_b64(value):
        raise errors.invalid_argument(f"JSON Value: {_debug(value)} not formatted correctly for base64 data")
    text = value["b64"]
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (ValueError, TypeError):
        raise errors.invalid_argument("Unable to base64 decode") from None


def _leaf(value, dtype):
    """One JSON value as an element of a tensor of `dtype` (AddValueToTensor)."""
    if isinstance(value, dict):
        if dtype == types_pb2.DT_STRING:
            return _decode_b64(value)
        raise _type_error(value, dtype)
    if dtype == types_pb2.DT_STRING:
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return value.encode("utf-8")
    if dtype == types_pb2.DT_BOOL:
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(value, dtype)
    if dtype in _FLOATS:
        return value
    low_high = _INT_RANGES.get(dtype)
    if low_high is None:
        raise errors.ServingError(
            grpc.StatusCode.UNIMPLEMENTED,
            f"Conversion of JSON Value: {_debug(value)} to type: {_dtype_name(dtype)}",
        )
    if not isinstance(value, int) or not low_high[0] <= value <= low_high[1]:
        raise _type_error(value, dtype)
    return value


def _dense_shape(value):
    """The shape a JSON value stands for, from the first element at each level (GetDenseTensorShape)."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value, level, shape, dtype, out):
    """Appends the leaves of `value` to `out`, checking they form a dense `shape` (FillTensorProto)."""
    if not isinstance(value, list):
        if level != len(shape):
            raise errors.invalid_argument(
                f"JSON Value: {_debug(value)} found at incorrect level: {level + 1} in the JSON DOM. "
                f"Expected at level: {len(shape)}"
            )
        out.append(_leaf(value, dtype))
        return
    if level >= len(shape):
        raise errors.invalid_argument(f"Encountered list at unexpected level: {level} expected < {len(shape)}")
    if len(value) != shape[level]:
        raise errors.invalid_argument(
            f"Encountered list at unexpected size: {len(value)} at level: {level} expected size: {shape[level]}"
        )
    for item in value:
        _fill(item, level + 1, shape, dtype, out)


def json_to_array(value, dtype):
    """A JSON value (scalar or nested lists) as a NumPy array of TensorFlow DataType `dtype`."""
    shape = _dense_shape(value)
    flat = []
    _fill(value, 0, shape, dtype, flat)
    if dtype == types_pb2.DT_STRING:
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
    else:
        array = np.array(flat, dtype=tf.dtypes.as_dtype(dtype).as_numpy_dtype)
    return array.reshape(shape)


def _shape_text(shape):
    return "[" + ",".join(str(d) for d in shape) + "]"


def _status_text(error):
    return f"{error.code.name}: {error.message}"


def _rows_to_arrays(instances, inputs):
    """The `instances` list as {alias: array} (FillTensorMapFromInstancesList)."""
    first = instances[0]
    if not isinstance(first, dict) and len(inputs) > 1:
        raise errors.invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input tensors required as "
            "per tensorinfo_map"
        )
    objects = isinstance(first, dict) and not _is_b64(first)
    names = sorted(inputs)
    rows, shapes = {}, {}

    def add(item, name):
        if name not in inputs:
            raise errors.invalid_argument(f"JSON object: does not have named input: {name}")
        array = json_to_array(item, inputs[name].dtype)
        if name not in shapes:
            shapes[name] = array.shape
        elif array.size != int(np.prod(shapes[name])):
            raise errors.invalid_argument(f"Expecting tensor size: {int(np.prod(shapes[name]))} but got: {array.size}")
        elif array.shape != shapes[name]:
            raise errors.invalid_argument(
                f"Expecting shape {_shape_text(shapes[name])} but got: {_shape_text(array.shape)}"
            )
        rows.setdefault(name, []).append(array)

    for index, item in enumerate(instances):
        if objects:
            if not isinstance(item, dict) or _is_b64(item):
                raise errors.invalid_argument(f"Expecting object but got list at item {index} of input list")
            for name, value in item.items():
                try:
                    add(value, name)
                except errors.ServingError as e:
                    raise errors.invalid_argument(
                        f"Failed to process element: {index} key: {name} of 'instances' list. Error: {_status_text(e)}"
                    ) from None
            if set(item) != set(names):
                raise errors.invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. JSON object: {_debug(item)} keys "
                    f"must be equal to: {','.join(names)}"
                )
        else:
            if isinstance(item, dict) and not _is_b64(item):
                raise errors.invalid_argument(f"Expecting value/list but got object at item {index} of input list")
            try:
                add(item, names[0])
            except errors.ServingError as e:
                raise errors.invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. Error: {_status_text(e)}"
                ) from None
    return {
        name: np.concatenate([p.reshape(-1) for p in parts]).reshape((len(parts),) + parts[0].shape)
        for name, parts in rows.items()
    }


def _columns_to_arrays(value, inputs):
    """The `inputs` value as {alias: array} (FillTensorMapFromInputsMap)."""
    if not isinstance(value, dict) or _is_b64(value):
        if len(inputs) > 1:
            raise errors.invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input tensors required as "
                "per tensorinfo_map"
            )
        (name,) = inputs
        return {name: json_to_array(value, inputs[name].dtype)}
    arrays = {}
    for name in sorted(inputs):
        if name not in value:
            raise errors.invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        arrays[name] = json_to_array(value[name], inputs[name].dtype)
    return arrays


def parse_json(body):
    """The request body as a JSON object (ParseJson); INVALID_ARGUMENT otherwise."""
    if not body:
        raise errors.invalid_argument("JSON Parse error: The document is empty")
    try:
        document = json.loads(body)
    except json.JSONDecodeError as e:
        raise errors.invalid_argument(f"JSON Parse error: {e.msg} at offset: {e.pos}") from None
    except UnicodeDecodeError as e:
        raise errors.invalid_argument(f"JSON Parse error: Invalid encoding in string. at offset: {e.start}") from None
    if not isinstance(document, dict):
        raise errors.invalid_argument(f"JSON Value: {_debug(document)} Is not object")
    return document


def signature_name_of(document):
    name = document.get("signature_name", "")
    if not isinstance(name, str):
        raise errors.invalid_argument(
            f"JSON Value: {_debug(document)} not formatted correctly. 'signature_name' key must be a string value."
        )
    return name


def predict_inputs(document, signature_inputs):
    """({alias: array}, row format?) from a predict body, for a signature's inputs."""
    if not signature_inputs:
        raise errors.invalid_argument("Failed to get input map for signature")
    has_instances, has_inputs = "instances" in document, "inputs" in document
    if has_instances and has_inputs:
        raise errors.invalid_argument(
            f"JSON Value: {_debug(document)} Not formatted correctly expecting only one of 'inputs' or "
            "'instances' keys to exist "
        )
    if has_instances:
        instances = document["instances"]
        if not isinstance(instances, list):
            raise errors.invalid_argument(f"JSON Value: {_debug(document)} Expecting 'instances' to be an list/array")
        if not instances:
            raise errors.invalid_argument(f"JSON Value: {_debug(document)} No values in 'instances' array")
        return _rows_to_arrays(instances, signature_inputs), True
    if has_inputs:
        return _columns_to_arrays(document["inputs"], signature_inputs), False
    raise errors.invalid_argument("Missing 'inputs' or 'instances' key")


# ------------------------------------------------------------------------------ tensors -> JSON


def _strings(array, as_bytes):
    def one(value):
        value = bytes(value)
        if as_bytes:
            return {"b64": base64.b64encode(value).decode("ascii")}
        return value.decode("utf-8", "replace")

    return one


def _leaves(array, alias):
    """The array as nested lists of JSON values (AddTensorValues)."""
    if array.dtype == object:
        convert = _strings(array, alias.endswith("_bytes"))
        flat = [convert(v) for v in array.reshape(-1)]
    elif array.dtype.kind == "f":
        # The shortest decimal that reads back as the same float (WriteDecimal), not float32's
        # widened double (0.1 -> 0.10000000149011612).
        flat = [float(s) for s in array.reshape(-1).astype(str)]
    else:
        flat = array.reshape(-1).tolist()
    if array.ndim == 0:
        return flat[0]
    return np.array(flat, dtype=object).reshape(array.shape).tolist() if flat else array.tolist()


def predictions_json(outputs, row_format):
    """The body of a predict answer from {alias: array} (MakeRowFormat/ColumnarFormatJsonFromTensors)."""
    if not outputs:
        raise errors.invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    if not row_format:
        if len(names) == 1:
            return {"outputs": _leaves(outputs[names[0]], names[0])}
        return {"outputs": {name: _leaves(outputs[name], name) for name in names}}
    batch = None
    for name in names:
        array = outputs[name]
        if array.ndim == 0:
            raise errors.invalid_argument(f"Tensor name: {name} has no shape information ")
        if batch is not None and array.shape[0] != batch:
            raise errors.invalid_argument(
                f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} expecting: {batch}"
            )
        batch = array.shape[0]
    columns = {name: _leaves(outputs[name], name) for name in names}
    if len(names) == 1:
        return {"predictions": columns[names[0]]}
    return {"predictions": [{name: columns[name][i] for name in names} for i in range(batch)]}


# ------------------------------------------------------------------------- classify and regress


def _add_to_feature(value, name, feature):
    """One JSON value into a tf.train.Feature (AddValueToFeature)."""

    def incompatible():
        kind = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}.get(
            feature.WhichOneof("kind"), "UNKNOWN"
        )
        return errors.invalid_argument(f"Unexpected element type in feature: {name} expecting type: {kind}")

    def check(kind):
        if feature.WhichOneof("kind") not in (None, kind):
            raise incompatible()

    if value is None or isinstance(value, list) or (isinstance(value, dict) and not _is_b64(value)):
        raise errors.invalid_argument(f"Feature: {name} has element with unexpected JSON type: {_json_type(value)}")
    if isinstance(value, bool):
        check("int64_list")
        feature.int64_list.value.append(int(value))
    elif isinstance(value, dict):
        check("bytes_list")
        feature.bytes_list.value.append(_decode_b64(value))
    elif isinstance(value, str):
        check("bytes_list")
        feature.bytes_list.value.append(value.encode("utf-8"))
    elif isinstance(value, float):
        check("float_list")
        feature.float_list.value.append(value)
    else:
        check("int64_list")
        if value >= 2**63:
            raise errors.invalid_argument(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
        feature.int64_list.value.append(value)


def _example(value, example):
    if not isinstance(value, dict):
        raise errors.invalid_argument(f"Example must be JSON object but got JSON {_json_type(value)}")
    for name, content in value.items():
        feature = feature_pb2.Feature()
        for item in content if isinstance(content, list) else [content]:
            _add_to_feature(item, name, feature)
        example.features.feature[name].CopyFrom(feature)


def fill_examples(document, request, method):
    """`context` and `examples` of a classify/regress body into `request.input`."""
    request.model_spec.signature_name = signature_name_of(document)
    context = document.get("context")
    if context is not None:
        _example(context, request.input.example_list_with_context.context)
    examples = document.get("examples")
    if examples is None:
        raise errors.invalid_argument(
            f"JSON Value: {_debug(document)} When method is {method}, key 'examples' is expected and was not found"
        )
    if not isinstance(examples, list):
        raise errors.invalid_argument(f"JSON Value: {_debug(document)} Expecting 'examples' value to be an list/array")
    if not examples:
        raise errors.invalid_argument(f"JSON Value: {_debug(document)} 'examples' value is an empty array")
    target = request.input.example_list_with_context if context is not None else request.input.example_list
    for value in examples:
        _example(value, target.examples.add())


def _float(value):
    """A float32 score as its shortest decimal (WriteDecimal); NaN and infinities stay floats."""
    return float(str(np.float32(value))) if math.isfinite(value) else float(value)


# ------------------------------------------------------------------------------------ the app


class RestApi:
    """The WSGI application of the REST port.

    Args:
        core: the ServerCore (model resolution); runner, tracker, max_tensor_bytes: as the gRPC
            servicer's; max_request_bytes: the largest body accepted; timeout_s: each request's
            deadline (`--rest_api_timeout_in_ms`; None for none); metrics: a `metrics.Metrics` or
            None; metrics_path: where its page is served.
    """

    def __init__(
        self,
        core,
        runner,
        tracker,
        max_request_bytes,
        max_tensor_bytes=None,
        timeout_s=None,
        metrics=None,
        metrics_path=None,
    ):
        self.core = core
        self.runner = runner
        self.tracker = tracker
        self.max_request_bytes = max_request_bytes
        self.max_tensor_bytes = max_tensor_bytes
        self.timeout_s = timeout_s
        self.metrics = metrics
        self.metrics_path = metrics_path

    def __call__(self, environ, start_response):
        request = Request(environ)
        if self.metrics is not None and request.path == self.metrics_path:
            response = Response(self.metrics.page(), content_type="text/plain; version=0.0.4; charset=utf-8")
        elif API_PATH.fullmatch(request.path):
            response = self._api(request)
        else:
            response = _json_response({"error": f"Not found: {request.path}"}, 404)
        return response(environ, start_response)

    # -- dispatch
    def _api(self, request):
        started = time.perf_counter()
        model_name, method, close = "", "", False
        try:
            model_name, method, call = self._route(request)
            if self.tracker is not None:
                self.tracker.enter()
            try:
                code, body = grpc.StatusCode.OK, call()
            finally:
                if self.tracker is not None:
                    self.tracker.exit()
        except errors.ServingError as e:
            code, body = e.code, {"error": errors.truncate_message(e.message)}
            close = isinstance(e, _BodyTooLarge) and e.unread
        except Exception as e:  # noqa: BLE001 - the server must stay up whatever a request does
            log.exception("REST request failed unexpectedly")
            code, body = grpc.StatusCode.INTERNAL, {"error": errors.truncate_message(f"{type(e).__name__}: {e}")}
        if self.metrics is not None:
            self.metrics.record_request(model_name, method, "REST", code.name, time.perf_counter() - started)
        response = _json_response(body, errors.http_status(code))
        if close:
            response.headers["Connection"] = "close"
        return response

    def _route(self, request):
        """(model name, method, the call) of a request; INVALID_ARGUMENT when no route matches."""
        path = request.path
        if request.method == "POST":
            match = PREDICT_PATH.fullmatch(path)
            if match:
                name, version, label, method = match.groups()
                method = method.lower()
                handler = {"predict": self._predict, "classify": self._classify, "regress": self._regress}[method]
                return name, method, lambda: handler(_model_spec(name, version, label), self._body(request))
        elif request.method == "GET":
            match = STATUS_PATH.fullmatch(path)
            if match:
                name, version, label, metadata = match.groups()
                if not name:
                    raise errors.invalid_argument("Missing model name in request.")
                handler = self._metadata if metadata else self._status
                return name, "", lambda: handler(_model_spec(name, version, label))
        raise errors.invalid_argument(f"Malformed request: {request.method} {path}")

    def _body(self, request):
        limit = self.max_request_bytes
        length = request.content_length
        if length is None or length <= limit:
            body = request.stream.read(limit + 1)
            if len(body) <= limit:
                return body
        # Read (and drop) the rest, up to DRAIN_BYTES, so that the client gets the answer rather
        # than a reset; past that the connection is closed.
        unread, drained = length is not None and length > DRAIN_BYTES, 0
        while not unread:
            chunk = request.stream.read(1 << 20)
            if not chunk:
                break
            drained += len(chunk)
            unread = drained > DRAIN_BYTES
        raise _BodyTooLarge(length, limit, unread)

    def _deadline(self):
        return None if self.timeout_s is None else time.monotonic() + self.timeout_s

    def _with_servable(self, spec, handler):
        return server_lib.with_servable(self.core, spec, handler, self.tracker)

    # -- the calls
    def _predict(self, spec, body):
        document = parse_json(body)
        spec.signature_name = signature_name_of(document)
        deadline = self._deadline()

        def run(servable):
            key = spec.signature_name or inference.DEFAULT_SIGNATURE
            signature = servable.signature_defs.get(key)
            if signature is None:
                raise errors.invalid_argument(f'Serving signature name: "{key}" not found in signature def')
            arrays, row_format = predict_inputs(document, signature.inputs)
            request = predict_pb2.PredictRequest()
            request.model_spec.CopyFrom(spec)
            for alias, array in arrays.items():
                request.inputs[alias].CopyFrom(ndarray_to_proto(array, signature.inputs[alias].dtype))
            arrays = None
            held = inference.HeldRequest(request)
            del request
            _, _, outputs = inference.predict_arrays(servable, held, self.runner, deadline, self.max_tensor_bytes)
            return predictions_json(outputs, row_format)

        return self._with_servable(spec, run)

    def _examples_call(self, spec, body, method, message_class, run_method):
        document = parse_json(body)
        request = message_class()
        request.model_spec.CopyFrom(spec)
        fill_examples(document, request, method)
        deadline = self._deadline()
        return self._with_servable(
            request.model_spec, lambda s: run_method(s, request, self.runner, deadline, self.max_tensor_bytes)
        )

    def _classify(self, spec, body):
        response = self._examples_call(
            spec, body, "classify", classification_pb2.ClassificationRequest, inference.classify
        )
        results = response.result.classifications
        if not results:
            raise errors.invalid_argument("Cannot convert empty ClassificationResults to JSON")
        return {"results": [[[c.label, _float(c.score)] for c in r.classes] for r in results]}

    def _regress(self, spec, body):
        response = self._examples_call(spec, body, "regress", regression_pb2.RegressionRequest, inference.regress)
        results = response.result.regressions
        if not results:
            raise errors.invalid_argument("Cannot convert empty RegressionResults to JSON")
        return {"results": [_float(r.value) for r in results]}

    def _status(self, spec):
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.CopyFrom(spec)
        return _message_json(server_lib.model_status(self.core, request))

    def _metadata(self, spec):
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.CopyFrom(spec)
        inference.check_metadata_request(request)
        response = self._with_servable(spec, lambda s: inference.metadata(s, request))
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return {
            "model_spec": _message_json(response.model_spec),
            "metadata": {"signature_def": _message_json(signature_map)},
        }


class _BodyTooLarge(errors.ServingError):
    """RESOURCE_EXHAUSTED for a body over `--max_request_bytes`; `unread`: the rest was not read."""

    def __init__(self, length, limit, unread):
        size = f"of {length} bytes " if length is not None else ""
        super().__init__(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"The request body {size}is larger than the {limit} bytes this server accepts (--max_request_bytes)",
        )
        self.unread = unread


def _model_spec(name, version, label):
    """FillModelSpecWithNameVersionAndLabel (the path's regex allows only one of version and label)."""
    spec = model_pb2.ModelSpec(name=name)
    if version is not None:
        try:
            spec.version.value = int(version)
        except ValueError:
            raise errors.invalid_argument(f"Failed to convert version: {version} to numeric.") from None
    if label is not None:
        spec.version_label = label
    return spec


def _message_json(message):
    """A protobuf message as TF Serving's REST port writes it (proto field names, defaults included)."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _json_response(body, status):
    return Response(json.dumps(body, ensure_ascii=False), status=status, content_type=JSON_TYPE)


# ---------------------------------------------------------------------------------- the server


def _ssl_adapter(ssl_config):
    """Cheroot's TLS adapter for a checked SSLConfig (`tls.check_ssl_config`): the server's key and
    certificate, and with `client_verify` only clients with a certificate from `custom_ca`."""
    with tempfile.TemporaryDirectory(prefix="keras-seq-tls-") as directory:  # 0700, removed at once
        key, cert = os.path.join(directory, "key.pem"), os.path.join(directory, "cert.pem")
        with open(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(ssl_config.server_key)
        with open(cert, "w") as f:
            f.write(ssl_config.server_cert)
        adapter = BuiltinSSLAdapter(cert, key)  # reads both files now
    context = adapter.context  # a server context holding the key pair
    if ssl_config.custom_ca:
        context.load_verify_locations(cadata=ssl_config.custom_ca)
    context.verify_mode = ssl.CERT_REQUIRED if ssl_config.client_verify else ssl.CERT_NONE
    return adapter


class _Server(wsgi.Server):
    """Cheroot's WSGI server, logging through `logging` instead of writing to stderr."""

    def error_log(self, msg="", level=logging.INFO, traceback=False):
        log.log(level, "REST server: %s", msg, exc_info=traceback)


class RestServer:
    """The REST port: Cheroot's WSGI server (a pool of `num_threads` threads, keep-alive
    connections) on a thread of its own.

    Raises OSError (one line naming the address) when the port cannot be bound.
    """

    def __init__(self, app, host, port, ssl_config, num_threads):
        self._server = _Server(
            (host.strip("[]"), port), app, numthreads=num_threads, request_queue_size=128, shutdown_timeout=1
        )
        if ssl_config is not None:
            self._server.ssl_adapter = _ssl_adapter(ssl_config)
        try:
            self._server.prepare()
        except OSError as e:
            raise OSError(f"Could not bind the REST API to {host}:{port}: {e.strerror or e}") from None
        self.port = self._server.bind_addr[1]
        self._thread = threading.Thread(target=self._server.serve, name="rest-server", daemon=True)
        self._thread.start()

    def stop(self, timeout=1.0):
        self._server.stop()
        self._thread.join(timeout)
