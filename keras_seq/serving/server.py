"""`keras-seq serve`: a local server that speaks TensorFlow Serving's gRPC API.

It serves a TF Serving model repository (`base_path/<version>/saved_model.pb`) through the stock
`tensorflow.serving.PredictionService` and `tensorflow.serving.ModelService`, with TF Serving's
flags, status codes and messages, so a client written against one works unchanged against the
other. Production uses the `tensorflow/serving` container (see `serving/README.md`); this server is
the embedded default for development, the demo and the tests.

Example:
    keras-seq serve --model_name=g2p --model_base_path=$PWD/export/g2p --port=8500

    from keras_seq.serving import create_server
    server, port = create_server(model_name="g2p", model_base_path="/abs/export/g2p", port=0)
    ...
    server.stop(grace=5)
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse
import logging
import signal
import sys
import threading
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from keras_seq.serving import config as config_lib
from keras_seq.serving import errors, inference
from keras_seq.serving.batching import BatchingOptions, BatchScheduler
from keras_seq.serving.repository import LoadOptions, ServerCore

log = logging.getLogger("keras_seq.serving")

DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
INT32_MAX = 2**31 - 1


@dataclass
class ServerOptions:
    """The server's settings; the field names are `tensorflow_model_server`'s flag names.

    `model_config` (a ModelServerConfig) and `ssl_config` / `batching` (already parsed) are the
    programmatic forms of `--model_config_file`, `--ssl_config_file` and
    `--batching_parameters_file`.
    """

    host: str = "127.0.0.1"
    port: int = 8500
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
    grpc_max_threads: int = field(default_factory=lambda: 4 * (os.cpu_count() or 1))
    allowed_model_roots: list = None
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60_000_000
    enable_model_warmup: bool = True
    num_request_iterations_for_warmup: int = 1
    tensorflow_intra_op_parallelism: int = 0
    tensorflow_inter_op_parallelism: int = 0


# ------------------------------------------------------------------------------------ servicers


def _deadline_ms(context):
    remaining = context.time_remaining()
    return None if remaining is None else max(1, int(remaining * 1000))


def _call(context, handler):
    """Runs `handler()`; a ServingError (or any failure) becomes the RPC's status, never a crash."""
    try:
        return handler()
    except errors.ServingError as e:
        code, message = e.code, e.message
    except Exception as e:  # noqa: BLE001 - the server must stay up whatever a request does
        log.exception("Request failed unexpectedly")
        code, message = grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}"
    context.abort(code, errors.truncate_message(message))


def _with_servable(core, model_spec, handler):
    servable = core.acquire(model_spec)
    try:
        return handler(servable)
    finally:
        servable.release()


def _require_model_spec(request):
    if not request.HasField("model_spec"):
        raise errors.invalid_argument("Missing ModelSpec")


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """`tensorflow.serving.PredictionService` over a ServerCore."""

    def __init__(self, core, runner):
        self.core = core
        self.runner = runner

    def Predict(self, request, context):
        def handle():
            _require_model_spec(request)
            timeout = None if self.runner is not inference.direct_runner else _deadline_ms(context)
            return _with_servable(
                self.core, request.model_spec, lambda s: inference.predict(s, request, self.runner, timeout)
            )

        return _call(context, handle)

    def GetModelMetadata(self, request, context):
        def handle():
            inference.check_metadata_request(request)
            return _with_servable(self.core, request.model_spec, lambda s: inference.metadata(s, request))

        return _call(context, handle)

    def Classify(self, request, context):
        def handle():
            _require_model_spec(request)
            return _with_servable(self.core, request.model_spec, lambda s: inference.classify(s, request, self.runner))

        return _call(context, handle)

    def Regress(self, request, context):
        def handle():
            _require_model_spec(request)
            return _with_servable(self.core, request.model_spec, lambda s: inference.regress(s, request, self.runner))

        return _call(context, handle)

    def MultiInference(self, request, context):
        def handle():
            if not request.tasks:
                raise errors.invalid_argument("MultiInferenceRequest must specify at least one task.")
            if not request.tasks[0].model_spec.name:
                raise errors.invalid_argument("Found ModelSpec with an empty model name.")
            return _with_servable(
                self.core, request.tasks[0].model_spec, lambda s: inference.multi_inference(s, request, self.runner)
            )

        return _call(context, handle)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """`tensorflow.serving.ModelService`: GetModelStatus and HandleReloadConfigRequest."""

    def __init__(self, core):
        self.core = core

    def GetModelStatus(self, request, context):
        def handle():
            _require_model_spec(request)
            spec = request.model_spec
            manager = self.core.manager(spec.name)
            statuses = manager.version_statuses() if manager is not None else []
            choice = spec.WhichOneof("version_choice")
            if choice == "version_label":
                statuses = self._for_label(spec, statuses)
            elif choice == "version":
                statuses = [s for s in statuses if s[0] == spec.version.value]
                if not statuses:
                    raise errors.not_found(f"Could not find version {spec.version.value} of model {spec.name}")
            if not statuses:
                raise errors.not_found(f"Could not find any versions of model {spec.name}")
            response = get_model_status_pb2.GetModelStatusResponse()
            for version, state, error in statuses:
                entry = response.model_version_status.add(version=version, state=state)
                if error is not None:
                    entry.status.error_code = error.code.value[0]
                    entry.status.error_message = error.message
            return response

        return _call(context, handle)

    def _for_label(self, spec, statuses):
        # Resolve the label as Predict does, then report that version.
        servable = self.core.acquire(spec) if statuses else None
        if servable is None:
            raise errors.not_found(f"Could not find any versions of model {spec.name}")
        servable.release()
        return [s for s in statuses if s[0] == servable.version]

    def HandleReloadConfigRequest(self, request, context):
        def handle():
            self.core.apply_config(request.config)
            return model_management_pb2.ReloadConfigResponse()

        return _call(context, handle)


# ------------------------------------------------------------------------------- server factory


class ModelServer:
    """A running server: the gRPC server, its ServerCore and (optionally) its batch scheduler."""

    def __init__(self, grpc_server, core, scheduler, port):
        self.grpc_server = grpc_server
        self.core = core
        self.scheduler = scheduler
        self.port = port
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
                    log.error("Could not apply the model config file %s: %s", path, e)

        self._config_watcher = threading.Thread(target=watch, name="config-watcher", daemon=True)
        self._config_watcher.start()

    def stop(self, grace=None):
        """Stops accepting RPCs, lets running ones finish for `grace` seconds, unloads models."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._config_watcher is not None:
            self._config_watcher.join(timeout=60)
        self.grpc_server.stop(grace).wait()
        if self.scheduler is not None:
            self.scheduler.close()
        self.core.stop()

    def wait_for_termination(self, timeout=None):
        return self.grpc_server.wait_for_termination(timeout)


def _read_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def _model_config(options):
    if options.model_config is not None:
        return options.model_config
    if options.model_config_file:
        return config_lib.read_model_server_config(options.model_config_file)
    if not options.model_base_path:
        raise ValueError("Both server_model_config_file and model_base_path are empty!")
    return config_lib.single_model_config(options.model_name, options.model_base_path)


def _batching_options(options):
    if options.batching is not None:
        return options.batching
    if options.batching_parameters_file:
        return BatchingOptions.from_proto(config_lib.read_batching_parameters(options.batching_parameters_file))
    return BatchingOptions()


def _credentials(options):
    ssl = options.ssl_config
    if ssl is None and options.ssl_config_file:
        ssl = config_lib.read_ssl_config(options.ssl_config_file)
    if ssl is None:
        return None
    if not ssl.server_key or not ssl.server_cert:
        raise ValueError("The SSL config needs both server_key and server_cert (PEM text)")
    if ssl.client_verify and not ssl.custom_ca:
        raise ValueError("client_verify needs custom_ca to verify client certificates against")
    return grpc.ssl_server_credentials(
        [(ssl.server_key.encode(), ssl.server_cert.encode())],
        root_certificates=ssl.custom_ca.encode() if ssl.custom_ca else None,
        require_client_auth=bool(ssl.client_verify),
    )


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
    if options.monitoring_config_file:
        config_lib.read_monitoring_config(options.monitoring_config_file)  # validated, served by TF Serving only
        log.warning("Monitoring (Prometheus on the REST port) is served only by the tensorflow/serving container")
    if options.batching_parameters_file and not options.enable_batching:
        raise ValueError("--batching_parameters_file is set but --enable_batching is not")
    model_config = _model_config(options)
    credentials = _credentials(options)
    scheduler = BatchScheduler(_batching_options(options)) if options.enable_batching else None
    runner = scheduler.run if scheduler is not None else inference.direct_runner
    load_options = LoadOptions(
        max_num_load_retries=options.max_num_load_retries,
        load_retry_interval_s=options.load_retry_interval_micros / 1e6,
        enable_model_warmup=options.enable_model_warmup,
        warmup_iterations=options.num_request_iterations_for_warmup,
        session_config=_session_config(options),
        runner=runner,
    )
    roots = options.allowed_model_roots or _default_roots(model_config)
    core = ServerCore(load_options, options.file_system_poll_wait_seconds, allowed_roots=roots)
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
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionServicer(core, runner), grpc_server
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(core), grpc_server)
        address = f"{options.host}:{options.port}"
        if credentials is not None:
            port = grpc_server.add_secure_port(address, credentials)
        else:
            port = grpc_server.add_insecure_port(address)
        if not port:
            raise OSError(f"Could not bind {address}")
        grpc_server.start()
    except BaseException:
        core.stop()
        if scheduler is not None:
            scheduler.close()
        raise
    core.start_polling()
    server = ModelServer(grpc_server, core, scheduler, port)
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
        description="Serve a TF Serving model repository over TF Serving's gRPC API (the local, embedded "
        "server; production uses the tensorflow/serving container, see serving/README.md).",
    )
    flag = p.add_argument
    flag("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 to open it up)")
    flag("--port", type=int, default=8500, help="gRPC port (0: pick a free one)")
    flag("--rest_api_port", type=int, default=0, help="accepted for compatibility; REST is not served")
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
    flag("--monitoring_config_file", help="text-format MonitoringConfig (validated only)")
    flag(
        "--max_request_bytes",
        type=int,
        default=DEFAULT_MAX_REQUEST_BYTES,
        help="largest request accepted; larger ones get RESOURCE_EXHAUSTED (default 64 MiB)",
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
        default=10.0,
        help="on SIGTERM, how long running requests may take to finish",
    )
    return p


def options_from_args(args):
    """ServerOptions from parsed command-line arguments."""
    if args.rest_api_port:
        log.warning("--rest_api_port is ignored: keras-seq serve speaks gRPC only")
    base_path = args.model_base_path
    if base_path and not os.path.isabs(base_path):
        # TF Serving insists on absolute paths; on the command line, resolve against the cwd instead.
        base_path = os.path.abspath(base_path)
        log.info("Serving --model_base_path %s as %s", args.model_base_path, base_path)
    return ServerOptions(
        host=args.host,
        port=args.port,
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
    """Runs the server until SIGTERM or SIGINT; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s] %(message)s")
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        server, port = create_server(options_from_args(args))
    except (errors.ServingError, ValueError, OSError) as e:
        print(f"Failed to start server. Error: {e}", file=sys.stderr, flush=True)
        return 1
    stop = threading.Event()

    def on_signal(signum, _frame):
        log.info("Received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"Running gRPC ModelServer at {args.host}:{port} ...", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop(grace=args.shutdown_grace_seconds)
    log.info("Server stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
