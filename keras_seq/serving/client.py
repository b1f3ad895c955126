"""A client for TF Serving (or `keras-seq serve`) on the stock `tensorflow-serving-api` stubs.

Every call has a deadline; calls that fail with UNAVAILABLE are retried with exponential backoff
(nothing else is retried: other codes mean the request itself was refused); every failure is
raised as `ServingError` with the gRPC code and message.

Example:
    >>> with Client("127.0.0.1:8500") as client:              # doctest: +SKIP
    ...     outputs = client.predict("g2p", {"words": ["hello", "world"]})
    ...     outputs["pronunciation"]
    array([b'HH AH L OW', b'W ER L D'], dtype=object)

(G2P models are trained without stress digits by default; one trained with `keras-seq train g2p
--stress` answers `HH AH0 L OW1`.)

Decoding settings of a keras-seq export go to its ``decode`` signature, one value per row:

    >>> client.predict("g2p", ["hello"], beam_width=2, num_results=2)   # doctest: +SKIP

`keras-seq predict --server HOST:PORT --model NAME WORD...` prints one row per word (`--rest`: over
TF Serving's REST API, with `rest_client.RestClient`, which has this class's interface;
``--beam-width``, ``--num-results``, ``--max-length``, ``--length-penalty``: decoding settings;
``--signature_name text`` sends sentences to a G2P export's ``text`` signature, as ``texts``, and
prints a row per word).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse
import sys
import time

import grpc
import numpy as np
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from keras_seq.serving.errors import ServingError
from keras_seq.serving.tensors import as_request_array, ndarray_to_proto

DEFAULT_TIMEOUT_S = 10.0
RETRYABLE = (grpc.StatusCode.UNAVAILABLE,)
#: The per-request decoding settings of keras-seq's ``decode`` signature (keras_seq.export.seq2seq).
DECODING_SETTINGS = ("beam_width", "num_results", "max_length", "length_penalty")
DECODE_SIGNATURE = "decode"
#: A G2P export's sentence signature and its input (keras_seq.g2p.serving's names; a test ties them).
TEXT_SIGNATURE, TEXT_SIGNATURE_INPUT = "text", "texts"


def make_request(model, inputs, signature_name="", version=None, version_label=None, output_filter=()):
    """Builds a PredictRequest.

    Args:
        model: the model name.
        inputs: {alias: array-like}; strings (or lists of them) become DT_STRING tensors.
        signature_name: '' means `serving_default` on the server.
        version, version_label: at most one, to pin a version.
        output_filter: output aliases to fetch (all when empty).
    """
    request = predict_pb2.PredictRequest()
    _fill_spec(request.model_spec, model, signature_name, version, version_label)
    for alias, value in inputs.items():
        request.inputs[alias].CopyFrom(ndarray_to_proto(as_request_array(value)))
    request.output_filter.extend(output_filter)
    return request


def _fill_spec(spec, model, signature_name="", version=None, version_label=None):
    if version is not None and version_label is not None:
        raise ValueError("give a version or a version_label, not both")
    spec.name = model
    if signature_name:
        spec.signature_name = signature_name
    if version is not None:
        spec.version.value = int(version)
    if version_label is not None:
        spec.version_label = version_label


def proto_to_numpy(proto):
    """A response TensorProto as a NumPy array (strings stay `bytes`)."""
    import tensorflow as tf

    return tf.make_ndarray(proto)


def with_decoding_settings(client, model, inputs, signature_name, version, settings, timeout=None):
    """``(signature name, inputs)`` of a request with decoding `settings` (``beam_width``,
    ``num_results``, ``max_length``, ``length_penalty``; None: not given).

    With no setting given, both come back as they are. Otherwise the signature is ``decode``
    unless `signature_name` names another, and every setting is sent with one value per row (one
    value given applies to every row), those not given with the export's defaults, read from
    `client.metadata`: a request of several rows must send every input with its number of rows to
    merge with others under server-side batching.
    """
    settings = {name: value for name, value in settings.items() if value is not None}
    if not settings:
        return signature_name, inputs
    unknown = sorted(set(settings) - set(DECODING_SETTINGS))
    if unknown:
        raise TypeError(f"unknown decoding setting(s) {unknown}; the settings are {list(DECODING_SETTINGS)}")
    signature_name = signature_name or DECODE_SIGNATURE
    rows = len(next(iter(inputs.values()))) if inputs else 0
    if set(settings) != set(DECODING_SETTINGS):
        signatures = client.metadata(model, version, timeout)
        if signature_name not in signatures:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"model {model!r} has no {signature_name!r} signature to take decoding settings "
                               f"(an export made before per-request settings?); it has {sorted(signatures)}")
        defaults = signatures[signature_name].defaults
        for name in DECODING_SETTINGS:
            if name not in settings and name in defaults:
                settings[name] = proto_to_numpy(defaults[name])
    dtypes = {"length_penalty": np.float32}
    per_row = {name: np.broadcast_to(np.asarray(value, dtypes.get(name, np.int32)).reshape(-1), (rows,)).copy()
               for name, value in settings.items()}
    return signature_name, {**inputs, **per_row}


class Client:
    """A connection to one server.

    Args:
        target: "host:port".
        timeout: default deadline of each call, in seconds.
        retries: how many times a call failing with UNAVAILABLE is tried again.
        backoff: first wait between tries, in seconds (doubled each time).
        root_certificates, private_key, certificate_chain: PEM bytes for TLS (the last two for
            mutual TLS); without them the channel is plaintext.
        options: extra gRPC channel options.
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
        options=(),
    ):
        self.target = target
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        channel_options = [("grpc.max_receive_message_length", -1), *options]
        if root_certificates or certificate_chain:
            credentials = grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)
            self.channel = grpc.secure_channel(target, credentials, options=channel_options)
        else:
            self.channel = grpc.insecure_channel(target, options=channel_options)
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.channel.close()

    def call(self, method, request, timeout=None):
        """Calls a stub method with a deadline and UNAVAILABLE retries; raises ServingError."""
        timeout = self.timeout if timeout is None else timeout
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return method(request, timeout=timeout)
            except grpc.RpcError as e:
                code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
                if code in RETRYABLE and attempt < self.retries:
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise ServingError(code, e.details() if hasattr(e, "details") else str(e)) from None
        raise AssertionError("unreachable")

    def predict_response(self, request, timeout=None):
        """Sends a ready PredictRequest; returns the PredictResponse."""
        return self.call(self.prediction.Predict, request, timeout)

    def predict(
        self, model, inputs, signature_name="", version=None, version_label=None, output_filter=(), timeout=None,
        **settings,
    ):
        """Runs a signature; returns {output alias: NumPy array}.

        `inputs` is {alias: array-like}; a bare list of strings is sent as `words` (an empty list as
        an empty string tensor, so the answer has no rows).
        `settings`: decoding settings of keras-seq's ``decode`` signature (see
        `with_decoding_settings`), which is then the signature unless `signature_name` names another.
        """
        if not isinstance(inputs, dict):
            inputs = {"words": np.array([w.encode() if isinstance(w, str) else w for w in inputs], dtype=object)}
        signature_name, inputs = with_decoding_settings(self, model, inputs, signature_name, version, settings, timeout)
        request = make_request(model, inputs, signature_name, version, version_label, output_filter)
        response = self.predict_response(request, timeout)
        return {alias: proto_to_numpy(proto) for alias, proto in response.outputs.items()}

    def metadata(self, model, version=None, timeout=None):
        """{signature name: SignatureDef} of the model (GetModelMetadata)."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        _fill_spec(request.model_spec, model, version=version)
        response = self.call(self.prediction.GetModelMetadata, request, timeout)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return dict(signature_map.signature_def)

    def status(self, model, version=None, timeout=None):
        """[(version, state name, error code name, error message)] newest first (GetModelStatus)."""
        request = get_model_status_pb2.GetModelStatusRequest()
        _fill_spec(request.model_spec, model, version=version)
        return status_rows(self.call(self.models.GetModelStatus, request, timeout))


def status_rows(response):
    """[(version, state name, error code name, error message)] of a GetModelStatusResponse."""
    state_names = get_model_status_pb2.ModelVersionStatus.State
    codes = {code.value[0]: code.name for code in grpc.StatusCode}
    return [
        (s.version, state_names.Name(s.state), codes.get(s.status.error_code, str(s.status.error_code)),
         s.status.error_message)
        for s in response.model_version_status
    ]


# ------------------------------------------------------------------------------------------ CLI


def _cell(value):
    """One printable cell: strings decoded, floats rounded, vectors joined."""
    value = np.asarray(value)
    if value.ndim > 0:
        return " | ".join(_cell(v) for v in value.reshape(-1))
    item = value.item()
    if isinstance(item, bytes):
        return item.decode("utf-8", "replace")
    if isinstance(item, float):
        return f"{item:.4f}"
    return str(item)


def format_table(words, outputs):
    """Rows of `word  output...` for the outputs that have one row per word."""
    columns = [a for a in sorted(outputs) if np.ndim(outputs[a]) >= 1 and len(outputs[a]) == len(words)]
    if "pronunciation" in columns:  # the answer first, scores after
        columns.remove("pronunciation")
        columns.insert(0, "pronunciation")
    rows = [["word", *columns]]
    for i, word in enumerate(words):
        rows.append([word, *(_cell(outputs[a][i]) for a in columns)])
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    other = [a for a in sorted(outputs) if a not in columns]
    for alias in other:
        lines.append(f"{alias}: {_cell(outputs[alias])}")
    return "\n".join(lines)


def format_text_table(texts, outputs):
    """The ``text`` signature's answer: per text, the text, then one row per word (token, word,
    pronunciation, source; padding left out), then the whole ``pronunciation``."""
    lines = []
    for i, text in enumerate(texts):
        count = int(np.asarray(outputs["num_words"])[i])
        rows = [[_cell(outputs[a][i][j]) for a in ("tokens", "words", "pronunciations", "sources")]
                for j in range(count)]
        widths = [max([len(r[c]) for r in rows], default=0) for c in range(4)]
        lines.append(text)
        lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines.append(f"  pronunciation: {_cell(outputs['pronunciation'][i])}")
    return "\n".join(lines)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def build_parser():
    p = argparse.ArgumentParser(
        prog="keras-seq predict", description="Query a TF Serving model over gRPC (or its REST API with --rest)."
    )
    p.add_argument("words", nargs="+", metavar="WORD")
    p.add_argument(
        "--server",
        help="HOST:PORT of TF Serving or keras-seq serve (default 127.0.0.1:8500, or 127.0.0.1:8501 with --rest)",
    )
    p.add_argument(
        "--rest", action="store_true", help="use the REST API (TF Serving's --rest_api_port) instead of gRPC"
    )
    p.add_argument("--model", required=True, help="model name")
    p.add_argument("--signature_name", default="", help="signature (default serving_default)")
    p.add_argument("--input_key", default=None,
                   help="input alias the words are sent under (default: 'texts' for the text signature of a G2P "
                   "export, else 'words')")
    p.add_argument("--version", type=int)
    p.add_argument("--version_label")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="deadline per call, seconds")
    p.add_argument("--ssl_root_certificates", help="PEM file of the CA that signed the server's certificate")
    p.add_argument("--ssl_client_key", help="PEM client key (mutual TLS)")
    p.add_argument("--ssl_client_cert", help="PEM client certificate (mutual TLS)")
    add_decoding_arguments(p)
    return p


def add_decoding_arguments(parser):
    """`--beam-width`, `--num-results`, `--max-length`, `--length-penalty`: per-request decoding
    settings, sent to the ``decode`` signature (unless --signature_name names another)."""
    group = parser.add_argument_group("decoding settings (the decode signature of a keras-seq export)")
    group.add_argument("--beam-width", type=int, help="beam width (default: the export's)")
    group.add_argument("--num-results", type=int, help="outputs per word, at most the beam width (default: all)")
    group.add_argument("--max-length", type=int, help="largest output length (default: the export's)")
    group.add_argument("--length-penalty", type=float, help="GNMT length penalty alpha (default 0)")


def decoding_settings(args):
    """The decoding settings given on the command line, as `Client.predict` keywords."""
    return {name: getattr(args, name) for name in DECODING_SETTINGS if getattr(args, name, None) is not None}


def main(argv=None):
    args = build_parser().parse_args(argv)
    input_key = args.input_key or (TEXT_SIGNATURE_INPUT if args.signature_name == TEXT_SIGNATURE else "words")
    tls = {}
    if args.ssl_root_certificates or args.ssl_client_cert:
        tls = dict(
            root_certificates=_read(args.ssl_root_certificates) if args.ssl_root_certificates else None,
            private_key=_read(args.ssl_client_key) if args.ssl_client_key else None,
            certificate_chain=_read(args.ssl_client_cert) if args.ssl_client_cert else None,
        )
    if args.rest:
        from keras_seq.serving.rest_client import RestClient as client_class

        server = args.server or "127.0.0.1:8501"
    else:
        client_class, server = Client, args.server or "127.0.0.1:8500"
    with client_class(server, timeout=args.timeout, **tls) as client:
        try:
            started = time.perf_counter()
            outputs = client.predict(
                args.model, {input_key: args.words}, args.signature_name, args.version, args.version_label,
                **decoding_settings(args),
            )
            elapsed_ms = (time.perf_counter() - started) * 1000
        except ServingError as e:
            print(f"keras-seq predict: {e.code.name}: {e.message}", file=sys.stderr)
            return 1
    text = args.signature_name == TEXT_SIGNATURE and {"num_words", "tokens", "words"} <= set(outputs)
    print(format_text_table(args.words, outputs) if text else format_table(args.words, outputs))
    print(f"({len(args.words)} word(s) in {elapsed_ms:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
