"""`keras-seq serve`: a local server that speaks TensorFlow Serving's gRPC and REST APIs.

It serves a TF Serving model repository (`base_path/<version>/saved_model.pb`) through the stock
`tensorflow.serving.PredictionService` and `tensorflow.serving.ModelService`, and, with
`--rest_api_port`, TF Serving's REST API and Prometheus metrics (`rest.py`, `metrics.py`), with TF
Serving's flags, status codes and messages, so a client written against one works unchanged against
the other. Production uses the `tensorflow/serving` container (see `serving/README.md`); this server is
the embedded default for development, the demo and the tests.

Example:
    keras-seq serve --model_name=g2p --model_base_path=$PWD/export/g2p --port=8500 --rest_api_port=8501

    from keras_seq.serving import create_server
    server, port = create_server(model_name="g2p", model_base_path="/abs/export/g2p", port=0)
    ...
    server.stop(grace=5)
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse
import ctypes
import errno
import ipaddress
import logging
import signal
import socket
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from google.protobuf import text_format
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from keras_seq.serving import config as config_lib
from keras_seq.serving import errors, inference, tls
from keras_seq.serving.batching import BatchingOptions, BatchScheduler
from keras_seq.serving.repository import LoadOptions, ServerCore

log = logging.getLogger("keras_seq.serving")

DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
# The parsed input tensors of one request; a TensorProto can stand for far more memory than its
# bytes (a shape of 10^9 with one value), so this is checked before parsing.
DEFAULT_MAX_REQUEST_TENSOR_BYTES = 64 * 1024 * 1024
DEFAULT_SHUTDOWN_GRACE_SECONDS = 10.0
DEFAULT_REST_API_TIMEOUT_MS = 30_000  # TF Serving's --rest_api_timeout_in_ms
DEFAULT_REST_API_NUM_THREADS = 4 * (os.cpu_count() or 1)  # TF Serving's --rest_api_num_threads
INT32_MAX = 2**31 - 1
SHUTTING_DOWN = "Server is shutting down"


@dataclass
class ServerOptions:
    """The server's settings; the field names are `tensorflow_model_server`'s flag names.

    `model_config` (a ModelServerConfig) and `ssl_config` / `batching` (already parsed) are the
    programmatic forms of `--model_config_file`, `--ssl_config_file` and
    `--batching_parameters_file`.
    """

    host: str = "127.0.0.1"
    port: int = 8500
    rest_api_port: int = 0  # 0: no REST API (as TF Serving); -1: a free port (tests, benchmarks)
    rest_api_timeout_in_ms: int = DEFAULT_REST_API_TIMEOUT_MS
    rest_api_num_threads: int = DEFAULT_REST_API_NUM_THREADS
    model_name: str = "default"
    model_base_path: str = None
    model_config_file: str = None
    model_config_file_poll_wait_seconds: float = 0
    model_config: object = None
    file_system_poll_wait_seconds: float = 1.0
    enable_batching: bool = False
    batching_parameters_file: str = None
    batching: BatchingOptions = None
    ssl_config_file: str = None
    ssl_config: object = None
    monitoring_config_file: str = None
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_request_tensor_bytes: int = DEFAULT_MAX_REQUEST_TENSOR_BYTES
    grpc_max_threads: int = field(default_factory=lambda: 4 * (os.cpu_count() or 1))
    allowed_model_roots: list = None
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60_000_000
    enable_model_warmup: bool = True
    num_request_iterations_for_warmup: int = 1
    tensorflow_intra_op_parallelism: int = 0
    tensorflow_inter_op_parallelism: int = 0


# ------------------------------------------------------------------------------------ servicers


def _deadline(context):
    """The client's deadline as a `time.monotonic()` time, or None when it set none."""
    remaining = context.time_remaining()
    if remaining is None or remaining > 1e8:  # gRPC reports "no deadline" as a huge remainder
        return None
    return time.monotonic() + remaining


class RequestTracker:
    """The RPCs in flight and the servables they hold, for a bounded shutdown.

    `drain()` makes every later RPC fail with UNAVAILABLE (retryable: another replica, or this one
    restarted, can answer it); `wait_idle()` waits for the running ones; `cancel()` cancels the
    TensorFlow runs of those still running.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._running = 0
        self._servables = {}  # Servable -> number of RPCs holding it
        self.draining = False

    def enter(self):
        with self._cond:
            if self.draining:
                raise errors.unavailable(SHUTTING_DOWN)
            self._running += 1

    def exit(self):
        with self._cond:
            self._running -= 1
            self._cond.notify_all()

    def hold(self, servable):
        with self._cond:
            self._servables[servable] = self._servables.get(servable, 0) + 1

    def unhold(self, servable):
        with self._cond:
            self._servables[servable] -= 1
            if not self._servables[servable]:
                del self._servables[servable]

    @property
    def running(self):
        with self._cond:
            return self._running

    def drain(self):
        with self._cond:
            self.draining = True

    def wait_idle(self, timeout):
        """True when no RPC is running within `timeout` seconds."""
        end = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while self._running:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def cancel(self):
        """Cancels the TensorFlow runs of every servable a running RPC holds."""
        with self._cond:
            servables = list(self._servables)
        for servable in servables:
            servable.cancel()
        return len(servables)


def _call(context, handler, tracker=None, metrics=None, model_name="", api=""):
    """Runs `handler()`; a ServingError (or any failure) becomes the RPC's status, never a crash.

    With `metrics`, the call is counted (and timed when it succeeds) under `model_name` and `api`.
    """
    started = time.perf_counter()
    try:
        if tracker is not None:
            tracker.enter()
        try:
            response = handler()
        finally:
            if tracker is not None:
                tracker.exit()
        if metrics is not None:
            metrics.record_request(model_name, api, "GRPC", "OK", time.perf_counter() - started)
        return response
    except errors.ServingError as e:
        code, message = e.code, e.message
    except Exception as e:  # noqa: BLE001 - the server must stay up whatever a request does
        log.exception("Request failed unexpectedly")
        code, message = grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}"
    if metrics is not None:
        metrics.record_request(model_name, api, "GRPC", code.name, time.perf_counter() - started)
    context.abort(code, errors.truncate_message(message))


def with_servable(core, model_spec, handler, tracker=None):
    """Runs `handler(servable)` on the servable `model_spec` resolves to (held for shutdown by
    `tracker`), and releases it; the gRPC servicers and the REST API both go through here."""
    servable = core.acquire(model_spec)
    try:
        if tracker is None:
            return handler(servable)
        tracker.hold(servable)
        try:
            return handler(servable)
        finally:
            tracker.unhold(servable)
    finally:
        servable.release()


def _require_model_spec(request):
    if not request.HasField("model_spec"):
        raise errors.invalid_argument("Missing ModelSpec")


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """`tensorflow.serving.PredictionService` over a ServerCore."""

    def __init__(self, core, runner, tracker=None, max_tensor_bytes=None, metrics=None):
        self.core = core
        self.runner = runner
        self.tracker = tracker
        self.max_tensor_bytes = max_tensor_bytes
        self.metrics = metrics

    def _run(self, context, model_spec, method, request):
        deadline = _deadline(context)
        return with_servable(
            self.core,
            model_spec,
            lambda s: method(s, request, self.runner, deadline, self.max_tensor_bytes),
            self.tracker,
        )

    def Predict(self, request, context):
        def handle():
            message = inference.request_message(request)  # a HeldRequest from the gRPC server
            _require_model_spec(message)
            # A copy: a submessage keeps its whole request (inputs included) in memory.
            model_spec = model_pb2.ModelSpec()
            model_spec.CopyFrom(message.model_spec)
            del message
            return self._run(context, model_spec, inference.predict, request)

        name = inference.request_message(request).model_spec.name
        return _call(context, handle, self.tracker, self.metrics, name, "Predict")

    def GetModelMetadata(self, request, context):
        def handle():
            inference.check_metadata_request(request)
            return with_servable(self.core, request.model_spec, lambda s: inference.metadata(s, request))

        return _call(context, handle, self.tracker)

    def Classify(self, request, context):
        def handle():
            _require_model_spec(request)
            return self._run(context, request.model_spec, inference.classify, request)

        return _call(context, handle, self.tracker, self.metrics, request.model_spec.name, "Classify")

    def Regress(self, request, context):
        def handle():
            _require_model_spec(request)
            return self._run(context, request.model_spec, inference.regress, request)

        return _call(context, handle, self.tracker, self.metrics, request.model_spec.name, "Regress")

    def MultiInference(self, request, context):
        def handle():
            if not request.tasks:
                raise errors.invalid_argument("MultiInferenceRequest must specify at least one task.")
            if not request.tasks[0].model_spec.name:
                raise errors.invalid_argument("Found ModelSpec with an empty model name.")
            return self._run(context, request.tasks[0].model_spec, inference.multi_inference, request)

        return _call(context, handle, self.tracker)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """`tensorflow.serving.ModelService`: GetModelStatus and HandleReloadConfigRequest."""

    def __init__(self, core, tracker=None):
        self.core = core
        self.tracker = tracker

    def GetModelStatus(self, request, context):
        return _call(context, lambda: model_status(self.core, request), self.tracker)

    def HandleReloadConfigRequest(self, request, context):
        def handle():
            self.core.apply_config(request.config)
            return model_management_pb2.ReloadConfigResponse()

        return _call(context, handle, self.tracker)


def model_status(core, request):
    """GetModelStatus: the versions of `request.model_spec`'s model and their states (gRPC and REST)."""
    _require_model_spec(request)
    spec = request.model_spec
    manager = core.manager(spec.name)
    statuses = manager.version_statuses() if manager is not None else []
    choice = spec.WhichOneof("version_choice")
    if choice == "version_label":
        # Resolve the label as Predict does, then report that version.
        servable = core.acquire(spec) if statuses else None
        if servable is None:
            raise errors.not_found(f"Could not find any versions of model {spec.name}")
        servable.release()
        statuses = [s for s in statuses if s[0] == servable.version]
    elif choice == "version":
        statuses = [s for s in statuses if s[0] == spec.version.value]
        if not statuses:
            raise errors.not_found(f"Could not find version {spec.version.value} of model {spec.name}")
    if not statuses:
        raise errors.not_found(f"Could not find any versions of model {spec.name}")
    response = get_model_status_pb2.GetModelStatusResponse()
    for version, state, error in statuses:
        entry = response.model_version_status.add(version=version, state=state)
        entry.status.SetInParent()  # OK: code 0, no message, as TF Serving's ToStatusProto
        if error is not None:
            entry.status.error_code = error.code.value[0]
            entry.status.error_message = error.message
    return response


# ------------------------------------------------------------------------------- server factory


def _malloc_trim():
    """glibc's `malloc_trim(0)`, or a no-op where there is none."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda pad: 0


_MALLOC_TRIM = _malloc_trim()
TRIM_FROM_BYTES = 16 << 20


def _held_predict_request(data):
    """The Predict deserializer: the request boxed as an `inference.HeldRequest`.

    gRPC Python has just copied a request of `data`'s size twice (in chunks, then joined) and freed
    the chunks; glibc keeps much of that freed memory (up to 64 MiB at the top of a heap). For a
    big request it is handed back now, before the message, NumPy and TensorFlow copies are made.
    """
    if len(data) >= TRIM_FROM_BYTES:
        _MALLOC_TRIM(0)
    return inference.HeldRequest.from_string(data)


def _held_predict_handler(servicer):
    """Predict with a deserializer that boxes the request (`inference.HeldRequest`), so that its
    inputs are freed once parsed instead of when the RPC ends."""
    handler = grpc.unary_unary_rpc_method_handler(
        servicer.Predict,
        request_deserializer=_held_predict_request,
        response_serializer=predict_pb2.PredictResponse.SerializeToString,
    )
    return grpc.method_handlers_generic_handler("tensorflow.serving.PredictionService", {"Predict": handler})


class ModelServer:
    """A running server: the gRPC server, its ServerCore, (optionally) its batch scheduler, REST
    port (`rest_port`, None when off) and metrics (`metrics.Metrics`, None when off)."""

    def __init__(self, grpc_server, core, scheduler, port, tracker=None, rest_server=None, metrics=None):
        self.grpc_server = grpc_server
        self.core = core
        self.scheduler = scheduler
        self.port = port
        self.tracker = tracker or RequestTracker()
        self.rest_server = rest_server
        self.rest_port = rest_server.port if rest_server is not None else None
        self.metrics = metrics
        self._stopped = threading.Event()
        self._config_watcher = None

    def watch_config_file(self, path, poll_wait_seconds):
        """Re-reads `path` every `poll_wait_seconds` and applies it when it changed
        (`--model_config_file_poll_wait_seconds`); a bad file is logged and the old config kept."""
        last = [_read_text(path)]

        def watch():
            while not self._stopped.wait(poll_wait_seconds):
                try:
                    text = _read_text(path)
                    if text == last[0]:
                        continue
                    last[0] = text
                    self.core.apply_config(config_lib.parse_text(text, config_lib.ModelServerConfig))
                    log.info("Applied the changed model config file %s", path)
                except Exception as e:  # noqa: BLE001 - keep serving the previous config
                    log.error("Could not apply the model config file %s: %s", path, _one_line(e))

        self._config_watcher = threading.Thread(target=watch, name="config-watcher", daemon=True)
        self._config_watcher.start()

    def stop(self, grace=None):
        """Stops within about `grace` seconds (None or 0: now), then unloads the models.

        New RPCs get UNAVAILABLE at once; running ones may finish within `grace`; after that their
        TensorFlow runs are cancelled (they get UNAVAILABLE too) and the server closes.
        """
        if self._stopped.is_set():
            return
        self._stopped.set()
        started = time.monotonic()
        grace = max(0.0, grace or 0.0)
        self.tracker.drain()
        if not self.tracker.wait_idle(grace):
            running = self.tracker.running
            cancelled = self.tracker.cancel()
            log.warning(
                "%d request(s) still running after the %.3g s shutdown grace period; cancelled the "
                "TensorFlow runs of %d model version(s)",
                running,
                grace,
                cancelled,
            )
            self.tracker.wait_idle(0.5)
        # What is left to do gets a short, bounded time: the answers above are sent, the batch
        # workers and the pollers stop (a model load in progress cannot be interrupted and is
        # abandoned with its daemon thread).
        self.grpc_server.stop(0.2).wait(1.0)
        if self.rest_server is not None:
            self.rest_server.stop(timeout=0.2)
        if self._config_watcher is not None:
            self._config_watcher.join(timeout=0.2)
        if self.scheduler is not None:
            self.scheduler.close(timeout=0.3)
        self.core.stop(timeout=0.2)
        log.info("Stopped %.2f s after the shutdown began", time.monotonic() - started)

    def wait_for_termination(self, timeout=None):
        return self.grpc_server.wait_for_termination(timeout)


def _read_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def _one_line(error):
    return " ".join(str(error).split())


def _read_config(flag, path, reader):
    """Reads a config file; any failure is a ValueError of one line naming the flag and the file."""
    try:
        return reader(path)
    except OSError as e:
        raise ValueError(f"{flag} {path}: {e.strerror or e}") from None
    except (text_format.ParseError, UnicodeDecodeError) as e:
        raise ValueError(f"{flag} {path}: {_one_line(e)}") from None


def _model_config(options):
    if options.model_config is not None:
        return options.model_config
    if options.model_config_file:
        return _read_config("--model_config_file", options.model_config_file, config_lib.read_model_server_config)
    if not options.model_base_path:
        raise ValueError("Both server_model_config_file and model_base_path are empty!")
    return config_lib.single_model_config(options.model_name, options.model_base_path)


def _batching_options(options):
    if options.batching is not None:
        return options.batching
    if options.batching_parameters_file:
        path = options.batching_parameters_file
        params = _read_config("--batching_parameters_file", path, config_lib.read_batching_parameters)
        try:
            return BatchingOptions.from_proto(params)
        except errors.ServingError as e:
            raise ValueError(f"--batching_parameters_file {path}: {e.message}") from None
    return BatchingOptions()


def _ssl_config(options):
    """The SSLConfig of the gRPC and REST ports, checked (see `tls.check_ssl_config`), or None."""
    ssl = options.ssl_config
    source = "ssl_config"
    if ssl is None and options.ssl_config_file:
        source = f"--ssl_config_file {options.ssl_config_file}"
        ssl = _read_config("--ssl_config_file", options.ssl_config_file, config_lib.read_ssl_config)
    if ssl is None:
        return None
    tls.check_ssl_config(ssl, source)
    return ssl


def _credentials(ssl):
    """gRPC server credentials from a checked SSLConfig (None: plaintext)."""
    if ssl is None:
        return None
    return grpc.ssl_server_credentials(
        [(ssl.server_key.encode(), ssl.server_cert.encode())],
        root_certificates=ssl.custom_ca.encode() if ssl.custom_ca else None,
        require_client_auth=bool(ssl.client_verify),
    )


def _is_loopback(host):
    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(name, None)}
        except OSError:
            return False
        return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def _monitoring(options):
    """(Metrics, path) when `--monitoring_config_file` enables Prometheus, else (None, None)."""
    if not options.monitoring_config_file:
        return None, None
    path = options.monitoring_config_file
    config = _read_config("--monitoring_config_file", path, config_lib.read_monitoring_config)
    if not config.prometheus_config.enable:
        return None, None
    if not options.rest_api_port:
        # TF Serving ignores the file then; say so rather than serve nothing silently.
        log.warning("--monitoring_config_file %s enables Prometheus metrics, which are served on the REST port: "
                    "set --rest_api_port to serve them", path)
        return None, None
    from keras_seq.serving.metrics import DEFAULT_PATH, Metrics

    metrics_path = config.prometheus_config.path or DEFAULT_PATH
    if not metrics_path.startswith("/") or metrics_path.lower().startswith("/v1/"):
        raise ValueError(f"--monitoring_config_file {path}: path {metrics_path!r} must start with '/' and not '/v1/'")
    return Metrics(), metrics_path


def _check_port_free(host, port, what="gRPC"):
    """OSError naming the address when something already listens on it (before models load).

    The probe uses SO_REUSEADDR, as gRPC does, so only a listening socket counts, not a
    connection of a previous server still in TIME_WAIT.
    """
    if not port:
        return
    name = host.strip("[]") or None
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as e:
        raise OSError(f"Could not bind {host}:{port}: {e}") from None
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    raise OSError(f"Could not bind the {what} port {host}:{port}: it is already in use") from None
                # Other errors (an address family this host lacks) are left to gRPC's own bind.


def _default_roots(model_config):
    """Without `--allowed_model_roots`, reloads may use the parents of the startup base paths."""
    return sorted({os.path.dirname(os.path.normpath(m.base_path)) for m in model_config.model_config_list.config})


def _session_config(options):
    import tensorflow as tf

    return tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=options.tensorflow_intra_op_parallelism,
        inter_op_parallelism_threads=options.tensorflow_inter_op_parallelism,
    )


def create_server(options=None, **overrides):
    """Loads the models, then opens the gRPC port (as TF Serving does); returns (server, port).

    Args:
        options: a ServerOptions (default settings when None).
        **overrides: ServerOptions fields to set, e.g. `model_base_path=..., port=0`.

    Raises:
        ServingError: a model did not become available (UNKNOWN) or the config is invalid.
        ValueError: inconsistent flags.
    """
    options = options or ServerOptions()
    for name, value in overrides.items():
        if not hasattr(options, name):
            raise TypeError(f"create_server() got an unexpected option {name!r}")
        setattr(options, name, value)
    metrics, metrics_path = _monitoring(options)
    if options.batching_parameters_file and not options.enable_batching:
        raise ValueError("--batching_parameters_file is set but --enable_batching is not")
    # Everything that can be wrong with the flags and files is found before any model loads.
    model_config = _model_config(options)
    ssl_config = _ssl_config(options)
    credentials = _credentials(ssl_config)
    batching = _batching_options(options) if options.enable_batching else None
    rest_port = max(0, options.rest_api_port) if options.rest_api_port else None
    if options.rest_api_num_threads < 1:
        raise ValueError(f"--rest_api_num_threads must be at least 1, not {options.rest_api_num_threads}")
    if rest_port is not None and rest_port and rest_port == options.port:
        raise ValueError(f"--rest_api_port {rest_port} is the gRPC --port too: give them different ports")
    _check_port_free(options.host, options.port)
    if rest_port:
        _check_port_free(options.host, rest_port, "REST API")
    if credentials is None and not _is_loopback(options.host):
        log.warning(
            "Serving on %s:%s without TLS: anyone who can reach it can call Predict, Classify, Regress, "
            "MultiInference and GetModelMetadata, and the ModelService, including "
            "HandleReloadConfigRequest, which loads and unloads models (under --allowed_model_roots). "
            "Use --ssl_config_file with client_verify: true, or bind 127.0.0.1",
            options.host,
            options.port,
        )
    scheduler = BatchScheduler(batching, metrics) if batching is not None else None
    runner = scheduler.run if scheduler is not None else inference.direct_runner
    load_options = LoadOptions(
        max_num_load_retries=options.max_num_load_retries,
        load_retry_interval_s=options.load_retry_interval_micros / 1e6,
        enable_model_warmup=options.enable_model_warmup,
        warmup_iterations=options.num_request_iterations_for_warmup,
        session_config=_session_config(options),
        runner=runner,
        metrics=metrics,
    )
    roots = options.allowed_model_roots or _default_roots(model_config)
    core = ServerCore(load_options, options.file_system_poll_wait_seconds, allowed_roots=roots)
    rest_server = None
    try:
        core.apply_config(model_config, initial=True)
        grpc_server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=options.grpc_max_threads, thread_name_prefix="grpc"),
            options=[
                ("grpc.max_receive_message_length", int(options.max_request_bytes)),
                ("grpc.max_send_message_length", INT32_MAX),
                ("grpc.so_reuseport", 0),
            ],
        )
        tracker = RequestTracker()
        servicer = PredictionServicer(core, runner, tracker, options.max_request_tensor_bytes, metrics)
        grpc_server.add_generic_rpc_handlers((_held_predict_handler(servicer),))  # before the stock one
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, grpc_server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(core, tracker), grpc_server)
        address = f"{options.host}:{options.port}"
        try:
            if credentials is not None:
                port = grpc_server.add_secure_port(address, credentials)
            else:
                port = grpc_server.add_insecure_port(address)
        except RuntimeError:
            port = 0
        if not port:
            raise OSError(f"Could not bind {address}: is the port in use?")
        if rest_port is not None:
            from keras_seq.serving import rest

            api = rest.RestApi(
                core,
                runner,
                tracker,
                options.max_request_bytes,
                options.max_request_tensor_bytes,
                options.rest_api_timeout_in_ms / 1000 if options.rest_api_timeout_in_ms > 0 else None,
                metrics,
                metrics_path,
            )
            rest_server = rest.RestServer(api, options.host, rest_port, ssl_config, options.rest_api_num_threads)
        grpc_server.start()
    except BaseException:
        if rest_server is not None:
            rest_server.stop()
        core.stop()
        if scheduler is not None:
            scheduler.close()
        raise
    core.start_polling()
    server = ModelServer(grpc_server, core, scheduler, port, tracker, rest_server, metrics)
    if options.model_config_file and options.model_config_file_poll_wait_seconds > 0:
        server.watch_config_file(options.model_config_file, options.model_config_file_poll_wait_seconds)
    return server, port


# ------------------------------------------------------------------------------------------ CLI


def _bool(text):
    value = str(text).lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser():
    p = argparse.ArgumentParser(
        prog="keras-seq serve",
        description="Serve a TF Serving model repository over TF Serving's gRPC API and, with --rest_api_port, "
        "its REST API (the local, embedded server; production uses the tensorflow/serving container, see "
        "serving/README.md).",
    )
    flag = p.add_argument
    flag("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 to open it up)")
    flag("--port", type=int, default=8500, help="gRPC port (0: pick a free one)")
    flag(
        "--rest_api_port",
        type=int,
        default=0,
        help="port of TF Serving's REST API (/v1/models/...) and the Prometheus metrics (0, the default: no "
        "REST API; -1: a free one); same host, TLS and request limits as the gRPC port",
    )
    flag(
        "--rest_api_timeout_in_ms",
        type=int,
        default=DEFAULT_REST_API_TIMEOUT_MS,
        help="deadline of each REST request (default 30000; 0: none)",
    )
    flag(
        "--rest_api_num_threads",
        type=int,
        default=DEFAULT_REST_API_NUM_THREADS,
        help="threads serving REST calls (default 4 per core)",
    )
    flag("--model_name", default="default", help="name of the model (ignored with --model_config_file)")
    flag("--model_base_path", help="absolute path of the model's versions directory")
    flag("--model_config_file", help="text-format ModelServerConfig (models.config)")
    flag(
        "--model_config_file_poll_wait_seconds",
        type=float,
        default=0,
        help="seconds between re-reads of --model_config_file (0: read once)",
    )
    flag(
        "--file_system_poll_wait_seconds",
        type=float,
        default=1.0,
        help="seconds between polls for new versions (0: once, negative: never)",
    )
    flag("--enable_batching", type=_bool, nargs="?", const=True, default=False)
    flag("--batching_parameters_file", help="text-format BatchingParameters")
    flag("--ssl_config_file", help="text-format SSLConfig (server_key, server_cert, custom_ca, client_verify)")
    flag(
        "--monitoring_config_file",
        help="text-format MonitoringConfig; prometheus_config { enable: true path: "
        "\"/monitoring/prometheus/metrics\" } serves TF Serving's metrics at that path of the REST port "
        "(needs --rest_api_port)",
    )
    flag(
        "--max_request_bytes",
        type=int,
        default=DEFAULT_MAX_REQUEST_BYTES,
        help="largest request accepted; larger ones get RESOURCE_EXHAUSTED (default 64 MiB)",
    )
    flag(
        "--max_request_tensor_bytes",
        type=int,
        default=DEFAULT_MAX_REQUEST_TENSOR_BYTES,
        help="most memory the input tensors of one request may take once parsed (estimated before "
        "parsing: elements x dtype size, strings 24 bytes each plus their bytes); larger requests get "
        "RESOURCE_EXHAUSTED (default 64 MiB)",
    )
    flag("--grpc_max_threads", type=int, default=4 * (os.cpu_count() or 1))
    flag("--allowed_model_roots", help="comma-separated directories reloaded configs may use")
    flag("--max_num_load_retries", type=int, default=5)
    flag("--load_retry_interval_micros", type=int, default=60_000_000)
    flag("--enable_model_warmup", type=_bool, nargs="?", const=True, default=True)
    flag("--num_request_iterations_for_warmup", type=int, default=1)
    flag("--tensorflow_intra_op_parallelism", type=int, default=0)
    flag("--tensorflow_inter_op_parallelism", type=int, default=0)
    flag(
        "--shutdown_grace_seconds",
        type=float,
        default=DEFAULT_SHUTDOWN_GRACE_SECONDS,
        help="on SIGTERM, how long running requests may take to finish; new ones get UNAVAILABLE, and "
        "after it the running ones are cancelled and the process exits within one more second",
    )
    return p


def options_from_args(args):
    """ServerOptions from parsed command-line arguments."""
    base_path = args.model_base_path
    if base_path and not os.path.isabs(base_path):
        # TF Serving insists on absolute paths; on the command line, resolve against the cwd instead.
        base_path = os.path.abspath(base_path)
        log.info("Serving --model_base_path %s as %s", args.model_base_path, base_path)
    return ServerOptions(
        host=args.host,
        port=args.port,
        rest_api_port=args.rest_api_port,
        rest_api_timeout_in_ms=args.rest_api_timeout_in_ms,
        rest_api_num_threads=args.rest_api_num_threads,
        model_name=args.model_name,
        model_base_path=base_path,
        model_config_file=args.model_config_file,
        model_config_file_poll_wait_seconds=args.model_config_file_poll_wait_seconds,
        file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
        enable_batching=args.enable_batching,
        batching_parameters_file=args.batching_parameters_file,
        ssl_config_file=args.ssl_config_file,
        monitoring_config_file=args.monitoring_config_file,
        max_request_bytes=args.max_request_bytes,
        max_request_tensor_bytes=args.max_request_tensor_bytes,
        grpc_max_threads=args.grpc_max_threads,
        allowed_model_roots=args.allowed_model_roots.split(",") if args.allowed_model_roots else None,
        max_num_load_retries=args.max_num_load_retries,
        load_retry_interval_micros=args.load_retry_interval_micros,
        enable_model_warmup=args.enable_model_warmup,
        num_request_iterations_for_warmup=args.num_request_iterations_for_warmup,
        tensorflow_intra_op_parallelism=args.tensorflow_intra_op_parallelism,
        tensorflow_inter_op_parallelism=args.tensorflow_inter_op_parallelism,
    )


def main(argv=None):
    """Runs the server until SIGTERM or SIGINT, then ends the process (status 0); returns 1 when the
    server cannot start."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s] %(message)s")
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        server, port = create_server(options_from_args(args))
    except (errors.ServingError, ValueError, OSError) as e:
        print(f"Failed to start server. Error: {_one_line(e)}", file=sys.stderr, flush=True)
        return 1
    stop = threading.Event()

    def on_signal(signum, _frame):
        log.info("Received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"Running gRPC ModelServer at {args.host}:{port} ...", flush=True)
    if server.rest_port is not None:
        print(f"Exporting HTTP/REST API at:{args.host}:{server.rest_port} ...", flush=True)
    while not stop.wait(0.1):
        pass
    grace = max(0.0, args.shutdown_grace_seconds)
    _exit_at(time.monotonic() + grace + 0.9)
    server.stop(grace=grace)
    log.info("Server stopped")
    # Tearing down the interpreter with TensorFlow loaded takes seconds on a busy machine; nothing
    # is left to flush but the output, so leave now to keep the shutdown within its bound.
    _exit_now(0)


def _exit_now(status):
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _exit_at(when):
    """Ends the process at `when` whatever still runs (a model load, an op that ignores
    cancellation, a non-daemon thread), so a shutdown is bounded by the grace period plus one second."""

    def watchdog():
        time.sleep(max(0.0, when - time.monotonic()))
        log.error("Shutdown did not finish in time; exiting now")
        _exit_now(1)

    threading.Thread(target=watchdog, name="shutdown-watchdog", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
