"""Warmup requests: `assets.extra/tf_serving_warmup_requests`, a TFRecord file of `PredictionLog`
records that TF Serving replays when it loads a version (g3doc/saved_model_warmup.md). Any failing
record fails the version's load, so an export runs them first (`run_warmup_requests`).
"""

import os

from keras_seq.export.errors import ExportError
# Where the warmup file lies and how many records TF Serving takes, shared with the server.
from keras_seq.repository_format import MAX_WARMUP_RECORDS, WARMUP_FILE, warmup_path  # noqa: F401 (re-exported)


def write_warmup_requests(path, requests, model_name="model"):
    """Write `requests` to `<path>/assets.extra/tf_serving_warmup_requests`; return the file's path.

    `path` is a SavedModel directory. `requests` is a list whose items are each a `PredictionLog`,
    a `PredictRequest`, or a dict — either `{"inputs": {alias: array}, "signature_name": ...,
    "model_name": ..., "output_filter": [...]}` or just `{alias: array}` for `serving_default` —
    whose arrays (NumPy arrays, lists, Python strings) become TensorProtos; or `requests` is one
    dict `{signature name: {alias: array}}`, one request per signature. At most 1000 records, TF
    Serving's limit.
    """
    import tensorflow as tf

    logs = to_predict_logs(requests, model_name)
    target = warmup_path(path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with tf.io.TFRecordWriter(target) as writer:
        for record in logs:
            writer.write(record.SerializeToString())
    return target


def read_warmup_requests(path):
    """The `PredictionLog`s of a warmup file, given the file or its SavedModel directory."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.fspath(path)
    if os.path.isdir(path):
        path = warmup_path(path)
    logs = []
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        entry = prediction_log_pb2.PredictionLog()
        entry.ParseFromString(record)
        logs.append(entry)
    return logs


def run_warmup_requests(path):
    """Run each warmup request of the SavedModel at `path` on it, as TF Serving does at load time.

    Raises ExportError naming the first request that fails (unknown signature, missing or extra
    inputs, wrong dtype, or an error while running). Returns the number of requests run.
    """
    import tensorflow as tf

    logs = read_warmup_requests(path)
    if not logs:
        return 0
    loaded = tf.saved_model.load(path)
    for i, entry in enumerate(logs):
        if entry.WhichOneof("log_type") != "predict_log":
            raise ExportError(f"warmup record {i}: only predict_log records are written by keras-seq")
        request = entry.predict_log.request
        name = request.model_spec.signature_name or "serving_default"
        if name not in loaded.signatures:
            raise ExportError(f"warmup record {i}: no signature {name!r} (have {sorted(loaded.signatures)})")
        fn = loaded.signatures[name]
        specs = fn.structured_input_signature[1]
        if set(specs) != set(request.inputs):
            raise ExportError(
                f"warmup record {i}: signature {name!r} takes inputs {sorted(specs)}, the request has "
                f"{sorted(request.inputs)}"
            )
        feeds = {}
        for alias, proto in request.inputs.items():
            if proto.dtype != specs[alias].dtype.as_datatype_enum:
                raise ExportError(
                    f"warmup record {i}: input {alias!r} is {tf.dtypes.as_dtype(proto.dtype).name}, "
                    f"signature {name!r} expects {specs[alias].dtype.name}"
                )
            feeds[alias] = tf.constant(tf.make_ndarray(proto), dtype=specs[alias].dtype)
        outputs = fn.structured_outputs
        for alias in request.output_filter:
            if alias not in outputs:
                raise ExportError(f"warmup record {i}: output_filter names {alias!r}, not an output of {name!r}")
        try:
            fn(**feeds)
        except (tf.errors.OpError, ValueError, TypeError) as e:
            raise ExportError(f"warmup record {i} fails on signature {name!r}: {e}") from e
    return len(logs)


def to_predict_logs(requests, model_name):
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    if _per_signature(requests):
        requests = [{"signature_name": name, "inputs": inputs} for name, inputs in requests.items()]
    elif isinstance(requests, (dict, predict_pb2.PredictRequest, prediction_log_pb2.PredictionLog)):
        requests = [requests]
    logs = []
    for i, request in enumerate(requests):
        if isinstance(request, prediction_log_pb2.PredictionLog):
            logs.append(request)
            continue
        if isinstance(request, dict):
            spec = request if "inputs" in request else {"inputs": request}
            unknown = set(spec) - {"inputs", "signature_name", "model_name", "output_filter"}
            if unknown:
                raise ExportError(f"warmup request {i}: unknown keys {sorted(unknown)}")
            proto = predict_pb2.PredictRequest()
            proto.model_spec.name = spec.get("model_name") or model_name
            proto.model_spec.signature_name = spec.get("signature_name") or "serving_default"
            proto.output_filter.extend(spec.get("output_filter") or ())
            for alias, value in spec["inputs"].items():
                if not isinstance(value, tensor_pb2.TensorProto):
                    value = tf.make_tensor_proto(_as_array(value))
                proto.inputs[alias].CopyFrom(value)
            request = proto
        if not isinstance(request, predict_pb2.PredictRequest):
            raise ExportError(
                f"warmup request {i}: expected a PredictRequest, PredictionLog or dict, got {type(request)}"
            )
        logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    if len(logs) > MAX_WARMUP_RECORDS:
        raise ExportError(
            f"{len(logs)} warmup requests: TF Serving refuses more than {MAX_WARMUP_RECORDS} "
            "(Number of warmup records exceeds the maximum)"
        )
    return logs


def _per_signature(requests):
    """Whether `requests` is `{signature name: {alias: array}}` (not one request's dict)."""
    return (
        isinstance(requests, dict)
        and bool(requests)
        and "inputs" not in requests
        and all(isinstance(v, dict) for v in requests.values())
    )


def _as_array(value):
    """A request value ready for `tf.make_tensor_proto`: Python strings become UTF-8 bytes; NumPy
    arrays keep their dtype; Python numbers follow TensorFlow's rules (float32, int32)."""
    import numpy as np

    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "U" or value.dtype == object:
            return np.vectorize(lambda s: s.encode("utf-8") if isinstance(s, str) else s, otypes=[object])(value)
        return value
    if isinstance(value, (list, tuple)):
        return [_as_array(v) for v in value]
    return value
