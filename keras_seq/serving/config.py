"""Text-format configuration files of TF Serving, read as `tensorflow_model_server` reads them.

- `models.config`: a `ModelServerConfig`, with the proto that `tensorflow-serving-api` ships.
- `batching_parameters.txt`, `monitoring.config` and the `--ssl_config_file`: TF Serving's
  `BatchingParameters`, `MonitoringConfig` and `SSLConfig`. `tensorflow-serving-api` does not ship
  these protos, so they are declared here from their field names and types (a private descriptor
  pool, so nothing clashes with other protos) and files are parsed with `text_format` into them: a
  misspelt or unknown field is an error, as it is for the real server.
"""

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2
from tensorflow_serving.config import model_server_config_pb2

_PACKAGE = "tensorflow.serving"

# message name -> [(field name, type, label, wrapper or message type name)]
_T = descriptor_pb2.FieldDescriptorProto
_MESSAGES = {
    "BatchingParameters": [
        ("max_batch_size", _T.TYPE_MESSAGE, _T.LABEL_OPTIONAL, ".google.protobuf.Int64Value"),
        ("batch_timeout_micros", _T.TYPE_MESSAGE, _T.LABEL_OPTIONAL, ".google.protobuf.Int64Value"),
        ("max_enqueued_batches", _T.TYPE_MESSAGE, _T.LABEL_OPTIONAL, ".google.protobuf.Int64Value"),
        ("num_batch_threads", _T.TYPE_MESSAGE, _T.LABEL_OPTIONAL, ".google.protobuf.Int64Value"),
        ("thread_pool_name", _T.TYPE_MESSAGE, _T.LABEL_OPTIONAL, ".google.protobuf.StringValue"),
        ("allowed_batch_sizes", _T.TYPE_INT64, _T.LABEL_REPEATED, None),
        ("pad_variable_length_inputs", _T.TYPE_BOOL, _T.LABEL_OPTIONAL, None),
        ("enable_large_batch_splitting", _T.TYPE_MESSAGE, _T.LABEL_OPTIONAL, ".google.protobuf.BoolValue"),
        ("max_execution_batch_size", _T.TYPE_MESSAGE, _T.LABEL_OPTIONAL, ".google.protobuf.Int64Value"),
    ],
    "PrometheusConfig": [
        ("enable", _T.TYPE_BOOL, _T.LABEL_OPTIONAL, None),
        ("path", _T.TYPE_STRING, _T.LABEL_OPTIONAL, None),
    ],
    "MonitoringConfig": [
        ("prometheus_config", _T.TYPE_MESSAGE, _T.LABEL_OPTIONAL, f".{_PACKAGE}.PrometheusConfig"),
    ],
    "SSLConfig": [
        ("server_key", _T.TYPE_STRING, _T.LABEL_OPTIONAL, None),
        ("server_cert", _T.TYPE_STRING, _T.LABEL_OPTIONAL, None),
        ("custom_ca", _T.TYPE_STRING, _T.LABEL_OPTIONAL, None),
        ("client_verify", _T.TYPE_BOOL, _T.LABEL_OPTIONAL, None),
    ],
}


def _declare_messages():
    """Builds the message classes of `_MESSAGES` in a private descriptor pool."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(wrappers_pb2.DESCRIPTOR.serialized_pb))
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="keras_seq/serving/tf_serving_configs.proto",
        package=_PACKAGE,
        syntax="proto3",
        dependency=[wrappers_pb2.DESCRIPTOR.name],
    )
    for message_name, fields in _MESSAGES.items():
        message = file_proto.message_type.add(name=message_name)
        for number, (field_name, field_type, label, type_name) in enumerate(fields, start=1):
            field = message.field.add(name=field_name, number=number, type=field_type, label=label)
            if type_name:
                field.type_name = type_name
    pool.Add(file_proto)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}")) for name in _MESSAGES
    }


_CLASSES = _declare_messages()
BatchingParameters = _CLASSES["BatchingParameters"]
MonitoringConfig = _CLASSES["MonitoringConfig"]
SSLConfig = _CLASSES["SSLConfig"]
ModelServerConfig = model_server_config_pb2.ModelServerConfig


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def parse_text(text, message_class):
    """Parses text-format `text` into a new `message_class`; raises `text_format.ParseError`."""
    return text_format.Parse(text, message_class())


def read_model_server_config(path):
    """Reads a `--model_config_file` (text-format ModelServerConfig)."""
    return parse_text(_read(path), ModelServerConfig)


def read_batching_parameters(path):
    """Reads a `--batching_parameters_file` (text-format BatchingParameters)."""
    return parse_text(_read(path), BatchingParameters)


def read_monitoring_config(path):
    """Reads a `--monitoring_config_file` (text-format MonitoringConfig)."""
    return parse_text(_read(path), MonitoringConfig)


def read_ssl_config(path):
    """Reads an `--ssl_config_file` (text-format SSLConfig; key and certificates are PEM text)."""
    return parse_text(_read(path), SSLConfig)


def single_model_config(name, base_path):
    """The ModelServerConfig that `--model_name`/`--model_base_path` stand for."""
    config = ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = name
    model.base_path = base_path
    model.model_platform = "tensorflow"
    return config
