"""A client for TF Serving's REST API (port 8501, or `keras-seq serve --rest_api_port`) with the
interface of the gRPC `Client`: `predict`, `metadata` and `status`, the same deadlines, UNAVAILABLE
retries and `ServingError`s (the code read back from the HTTP status, the message from the
`{"error": ...}` body).

Requests use the columnar format (`{"inputs": {alias: value}}`); strings that are not UTF-8 go as
`{"b64": ...}`. The outputs' names and dtypes come from the signature (one metadata call per model,
version and signature, cached), so `predict` returns the same {alias: NumPy array} as `Client`.
REST has no `output_filter`: the outputs are filtered here.

Example:
    >>> with RestClient("127.0.0.1:8501") as client:          # doctest: +SKIP
    ...     client.predict("g2p", {"words": ["hello"]})["pronunciation"]
    array([b'HH AH L OW'], dtype=object)
"""

import base64
import json
import os
import shutil
import tempfile
import time

import grpc
import numpy as np
import requests
from google.protobuf import json_format
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import get_model_status_pb2

from keras_seq.serving.client import status_rows, with_decoding_settings
from keras_seq.serving.errors import ServingError, code_from_http_status
from keras_seq.serving.tensors import as_request_array

DEFAULT_TIMEOUT_S = 10.0


def _to_json(array):
    """A NumPy array as nested JSON lists; strings UTF-8-decoded, or `{"b64": ...}` when not UTF-8."""
    if array.dtype != object:
        return array.tolist()

    def one(value):
        value = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}

    return np.vectorize(one, otypes=[object])(array).tolist() if array.size else array.tolist()


def _from_json(value, tensor_info):
    """A JSON output value as a NumPy array of the signature's dtype (strings as `bytes`).

    JSON writes an empty tensor as `[]` whatever its shape; the signature's static dims give it back.
    """
    if tensor_info.dtype == types_pb2.DT_STRING:

        def walk(v):
            if isinstance(v, list):
                return [walk(x) for x in v]
            return base64.b64decode(v["b64"]) if isinstance(v, dict) else v.encode("utf-8")

        array = np.array(walk(value), dtype=object)  # NumPy never splits `bytes` into a dimension
    else:
        import tensorflow as tf

        array = np.array(value, dtype=tf.dtypes.as_dtype(tensor_info.dtype).as_numpy_dtype)
    dims = [d.size for d in tensor_info.tensor_shape.dim]
    if array.size == 0 and array.ndim == 1 and len(dims) > 1 and all(d >= 0 for d in dims[1:]):
        array = array.reshape([0, *dims[1:]])
    return array


class RestClient:
    """A connection to one server's REST port.

    Args:
        target: "host:port" (or a full "http(s)://host:port" URL).
        timeout: default deadline of each call, in seconds.
        retries: how many times a call failing with UNAVAILABLE (HTTP 503, or no connection) is tried again.
        backoff: first wait between tries, in seconds (doubled each time).
        root_certificates, private_key, certificate_chain: PEM bytes for TLS (the last two for
            mutual TLS), as for `Client`; with them the URL is https.
    """

    def __init__(
        self,
        target,
        timeout=DEFAULT_TIMEOUT_S,
        retries=3,
        backoff=0.1,
        root_certificates=None,
        private_key=None,
        certificate_chain=None,
    ):
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.session = requests.Session()
        self._tls_dir = None
        self._verify = True
        tls = bool(root_certificates or certificate_chain)
        if "://" in target:
            self.base = target.rstrip("/")
        else:
            self.base = f"{'https' if tls else 'http'}://{target}"
        if tls:
            self._tls_dir = tempfile.mkdtemp(prefix="keras-seq-rest-tls-")  # 0700
            if root_certificates:
                # Given with each request: a session's `verify` loses to REQUESTS_CA_BUNDLE.
                self._verify = self._write("ca.pem", root_certificates)
            if certificate_chain:
                self.session.cert = (self._write("cert.pem", certificate_chain), self._write("key.pem", private_key))
        self._signatures = {}

    def _write(self, name, data):
        path = os.path.join(self._tls_dir, name)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        return path

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.session.close()
        if self._tls_dir is not None:
            shutil.rmtree(self._tls_dir, ignore_errors=True)
            self._tls_dir = None

    # -- calls
    def call(self, method, path, body=None, timeout=None):
        """One HTTP call with a deadline and UNAVAILABLE retries; the JSON answer, or ServingError."""
        timeout = self.timeout if timeout is None else timeout
        delay = self.backoff
        data = None if body is None else json.dumps(body)
        for attempt in range(self.retries + 1):
            try:
                response = self.session.request(
                    method,
                    self.base + path,
                    data=data,
                    timeout=timeout,
                    verify=self._verify,
                    headers={"Content-Type": "application/json"} if data is not None else None,
                )
            except requests.Timeout:
                raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, f"Deadline Exceeded ({method} {path})") from None
            except requests.ConnectionError as e:
                code, message = grpc.StatusCode.UNAVAILABLE, f"failed to connect to {self.base}: {e}"
            else:
                if response.status_code == 200:
                    return response.json()
                code = code_from_http_status(response.status_code)
                try:
                    message = response.json()["error"]
                except (ValueError, KeyError, TypeError):
                    message = response.text or f"HTTP {response.status_code}"
            if code == grpc.StatusCode.UNAVAILABLE and attempt < self.retries:
                time.sleep(delay)
                delay *= 2
                continue
            raise ServingError(code, message)
        raise AssertionError("unreachable")

    @staticmethod
    def _model_path(model, version=None, version_label=None):
        if version is not None and version_label is not None:
            raise ValueError("give a version or a version_label, not both")
        path = f"/v1/models/{requests.utils.quote(model, safe='')}"
        if version is not None:
            path += f"/versions/{int(version)}"
        elif version_label is not None:
            path += f"/labels/{requests.utils.quote(version_label, safe='')}"
        return path

    def _signature(self, model, signature_name, version, version_label, timeout):
        key = (model, signature_name or "serving_default", version, version_label)
        if key not in self._signatures:
            signatures = self.metadata(model, version, timeout, version_label=version_label)
            if key[1] not in signatures:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT, f'Serving signature name: "{key[1]}" not found in signature def'
                )
            self._signatures[key] = signatures[key[1]]
        return self._signatures[key]

    def predict(
        self, model, inputs, signature_name="", version=None, version_label=None, output_filter=(), timeout=None,
        **settings,
    ):
        """Runs a signature; returns {output alias: NumPy array}, as `Client.predict`.

        `inputs` is {alias: array-like}; a bare list of strings is sent as `words`. `settings`:
        decoding settings, as for `Client.predict` (`client.with_decoding_settings`).
        """
        if not isinstance(inputs, dict):
            inputs = {"words": np.array([w.encode() if isinstance(w, str) else w for w in inputs], dtype=object)}
        signature_name, inputs = with_decoding_settings(self, model, inputs, signature_name, version, settings, timeout)
        signature = self._signature(model, signature_name, version, version_label, timeout)
        body = {"inputs": {alias: _to_json(as_request_array(value)) for alias, value in inputs.items()}}
        if signature_name:
            body["signature_name"] = signature_name
        answer = self.call("POST", self._model_path(model, version, version_label) + ":predict", body, timeout)
        outputs = answer["outputs"]
        names = sorted(signature.outputs)
        if len(names) == 1:
            outputs = {names[0]: outputs}
        wanted = list(output_filter) or names
        for alias in wanted:
            if alias not in signature.outputs:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                    f"{{{','.join(names)}}}.",
                )
        return {alias: _from_json(outputs[alias], signature.outputs[alias]) for alias in wanted}

    def metadata(self, model, version=None, timeout=None, version_label=None):
        """{signature name: SignatureDef} of the model (`GET .../metadata`)."""
        answer = self.call("GET", self._model_path(model, version, version_label) + "/metadata", timeout=timeout)
        signature_map = answer["metadata"]["signature_def"].get("signature_def", {})
        return {
            name: json_format.ParseDict(value, meta_graph_pb2.SignatureDef(), ignore_unknown_fields=True)
            for name, value in signature_map.items()
        }

    def status(self, model, version=None, timeout=None):
        """[(version, state name, error code name, error message)] newest first, as `Client.status`."""
        answer = self.call("GET", self._model_path(model, version), timeout=timeout)
        return status_rows(json_format.ParseDict(answer, get_model_status_pb2.GetModelStatusResponse()))
