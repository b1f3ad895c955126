"""The TF Serving container files in `serving/` are valid, and the local server reads them as the
real one does: models.config with the protos `tensorflow-serving-api` ships, the batching and
monitoring files with messages declared from TF Serving's field names and types.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import re

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

import serving_fixtures
from keras_seq.serving import Client, config as config_lib
from keras_seq.serving.batching import BatchingOptions
from keras_seq.serving.server import create_server

SERVING = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "serving")


def path(name):
    return os.path.join(SERVING, name)


def read(name):
    with open(path(name), encoding="utf-8") as f:
        return f.read()


def test_models_config_parses_with_the_shipped_protos():
    config = text_format.Parse(read("models.config"), model_server_config_pb2.ModelServerConfig())
    models = config.model_config_list.config
    assert [m.name for m in models] == ["g2p"]
    for model in models:
        assert model.model_platform == "tensorflow"
        assert model.base_path == f"/models/{model.name}"  # where docker-compose mounts export/


def test_batching_parameters_parse_and_are_consistent():
    params = config_lib.read_batching_parameters(path("batching_parameters.txt"))
    options = BatchingOptions.from_proto(params)  # validates allowed_batch_sizes against max_batch_size
    assert options.max_batch_size == 256 and options.allowed_batch_sizes[-1] == 256


def test_monitoring_config_parses():
    config = config_lib.read_monitoring_config(path("monitoring.config"))
    assert config.prometheus_config.enable
    assert config.prometheus_config.path == "/monitoring/prometheus/metrics"


def test_declared_messages_reject_unknown_fields():
    with pytest.raises(text_format.ParseError):
        config_lib.parse_text("max_batch_size: 3", config_lib.BatchingParameters)  # needs { value: 3 }
    with pytest.raises(text_format.ParseError):
        config_lib.parse_text("prometheus { enable: true }", config_lib.MonitoringConfig)


@pytest.mark.parametrize("dockerfile, suffix", [("Dockerfile", ""), ("Dockerfile.gpu", "-gpu")])
def test_dockerfiles_pin_tf_serving_and_use_the_config_files(dockerfile, suffix):
    text = read(dockerfile)
    match = re.search(r"^FROM tensorflow/serving:(\S+)$", text, re.M)
    assert match and re.fullmatch(r"\d+\.\d+\.\d+" + re.escape(suffix), match.group(1))
    for flag in (
        "--port=8500",
        "--rest_api_port=8501",
        "--model_config_file=/config/models.config",
        "--batching_parameters_file=/config/batching_parameters.txt",
        "--monitoring_config_file=/config/monitoring.config",
    ):
        assert flag in text
    assert "EXPOSE 8500 8501" in text


def test_docker_compose_mounts_export():
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load(read("docker-compose.yml"))
    for service in compose["services"].values():
        assert "../export:/models:ro" in service["volumes"]
        assert "127.0.0.1:8500:8500" in service["ports"]


def test_local_server_serves_models_config(tmp_path):
    """`keras-seq serve --model_config_file` with the container's config, /models -> a local export."""
    export = tmp_path / "export"
    serving_fixtures.write_words(str(export / "g2p"), 1)
    text = read("models.config").replace('"/models/', f'"{export}/')
    config_file = tmp_path / "models.config"
    config_file.write_text(text)
    server, port = create_server(
        model_config_file=str(config_file),
        port=0,
        enable_batching=True,
        batching_parameters_file=path("batching_parameters.txt"),
        monitoring_config_file=path("monitoring.config"),
        file_system_poll_wait_seconds=-1,
    )
    try:
        with Client(f"127.0.0.1:{port}") as client:
            assert client.predict("g2p", ["abc"])["pronunciation"].tolist() == [b"A B C"]
    finally:
        server.stop(0)


def test_serving_code_never_imports_model_code():
    """The server and client serve SavedModels as TF Serving does: no keras, no keras_seq model code."""
    import ast

    package = os.path.join(os.path.dirname(SERVING), "keras_seq", "serving")
    for filename in sorted(os.listdir(package)):
        if not filename.endswith(".py"):
            continue
        with open(os.path.join(package, filename), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                assert module.split(".")[0] != "keras", f"{filename} imports {module}"
                if module.startswith("keras_seq"):
                    # Its own package, and TF Serving's disk format, which it shares with the exporter.
                    assert module.startswith(("keras_seq.serving", "keras_seq.repository_format")), (
                        f"{filename} imports {module}"
                    )
