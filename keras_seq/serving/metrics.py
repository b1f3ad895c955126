"""Prometheus metrics of `keras-seq serve`, named and labelled as TensorFlow Serving exports them.

Enabled by a `--monitoring_config_file` with `prometheus_config { enable: true }`, and served on
the REST port at the config's `path` (default `/monitoring/prometheus/metrics`), as TF Serving does.
The values are kept by `prometheus_client` (its thread-safe counters and histograms, in a registry
of this server's own); TF Serving's names are its TensorFlow monitoring names with `/` turned into
`:` (tensorflow_serving/util/prometheus_exporter.cc):

- `:tensorflow:serving:request_count{model_name, status}` (counter): every Predict, Classify and
  Regress call over gRPC and every REST call; `status` is the status code's name (`OK`,
  `NOT_FOUND`, `INVALID_ARGUMENT`, ...) (servables/tensorflow/util.cc).
- `:tensorflow:serving:request_latency{model_name, API, entrypoint}` (histogram, microseconds,
  buckets 10 x 1.8^i for i < 33): successful calls only; `API` is `Predict`, `Classify` or
  `Regress` over gRPC and the REST method (`predict`, `classify`, `regress`; empty for the GET
  calls), `entrypoint` is `GRPC` or `REST`.
- `:tensorflow:cc:saved_model:load_attempt_count{model_path, status}` (counter, status `success`
  or `fail`) and `:tensorflow:cc:saved_model:load_latency{model_path}` (counter: microseconds spent
  in successful loads), as TensorFlow's SavedModel loader records them.
- With batching on: `:tensorflow:serving:batching_session:input_batch_size` (rows of each request
  queued), `...:processed_batch_size` (rows of each batch run, padding included) and
  `...:padding_size{execution_batch_size}` (histograms, buckets 1, 2, 4, ... 8192)
  (batching/batching_util.h).

Where this deviates from TF Serving:
- The `request_count` label set is TF Serving's (`model_name`, `status`); there is no
  `entrypoint` label on it (TF Serving has none either).
- TF Serving exports many more metrics (runtime latency, warmup, TensorFlow's own); only the ones
  above are kept.
- `load_latency` includes the version's warmup (TensorFlow's loader counts the load alone), and a
  load attempt counts as failed when its warmup fails.
- The page is written in TF Serving's form from the samples `prometheus_client` collects: a counter
  is exported under its own name (prometheus_client's own page would add `_total`, and `_created`
  samples), so dashboards written for TF Serving work unchanged. `prometheus_client`'s text parser
  reads it (tests/serving/test_serving_rest.py).
"""

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.utils import floatToGoString

DEFAULT_PATH = "/monitoring/prometheus/metrics"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# TensorFlow's Buckets::Exponential(scale, growth, count): the limits scale * growth^i, i < count,
# written with 6 significant digits as TF Serving's page writes them (32.4, not 32.400000000000006).
LATENCY_BUCKETS_US = tuple(float(f"{10 * 1.8**i:.6g}") for i in range(33))
BATCH_SIZE_BUCKETS = tuple(float(2**i) for i in range(14))

REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
LOAD_ATTEMPT_COUNT = ":tensorflow:cc:saved_model:load_attempt_count"
LOAD_LATENCY = ":tensorflow:cc:saved_model:load_latency"
INPUT_BATCH_SIZE = ":tensorflow:serving:batching_session:input_batch_size"
PROCESSED_BATCH_SIZE = ":tensorflow:serving:batching_session:processed_batch_size"
PADDING_SIZE = ":tensorflow:serving:batching_session:padding_size"


def _escape(value):
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """The metrics of one server; `page()` is their Prometheus text page."""

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_count = Counter(
            REQUEST_COUNT, "The total number of requests.", ["model_name", "status"], registry=r
        )
        self.request_latency = Histogram(
            REQUEST_LATENCY,
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            ["model_name", "API", "entrypoint"],
            buckets=LATENCY_BUCKETS_US,
            registry=r,
        )
        self.load_attempt_count = Counter(
            LOAD_ATTEMPT_COUNT,
            "The number of times a SavedModel was successfully loaded.",
            ["model_path", "status"],
            registry=r,
        )
        self.load_latency = Counter(
            LOAD_LATENCY,
            "Latency in microseconds for SavedModels that were successfully loaded.",
            ["model_path"],
            registry=r,
        )
        self.input_batch_size = Histogram(
            INPUT_BATCH_SIZE,
            "Tracks the batch size distribution on the inputs.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.processed_batch_size = Histogram(
            PROCESSED_BATCH_SIZE,
            "Tracks the batch size distribution on processing.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.padding_size = Histogram(
            PADDING_SIZE,
            "Tracks the padding size distribution on batches.",
            ["execution_batch_size"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )

    # -- recording
    def record_request(self, model_name, api, entrypoint, code_name, seconds):
        """One request: counted by model and status; its latency kept when it succeeded."""
        self.request_count.labels(model_name, code_name).inc()
        if code_name == "OK":
            self.request_latency.labels(model_name, api, entrypoint).observe(seconds * 1e6)

    def record_load(self, model_path, ok, seconds):
        """One attempt to load a SavedModel (warmup included)."""
        self.load_attempt_count.labels(model_path, "success" if ok else "fail").inc()
        if ok:
            self.load_latency.labels(model_path).inc(seconds * 1e6)

    def record_input(self, rows):
        """One request queued for batching, of `rows` rows."""
        self.input_batch_size.observe(rows)

    def record_batch(self, rows, padded):
        """One batch run: `rows` rows of requests, padded to `padded`."""
        self.processed_batch_size.observe(padded)
        self.padding_size.labels(str(padded)).observe(padded - rows)

    # -- the page
    def page(self):
        """The Prometheus text page, in TF Serving's form (see the module docstring)."""
        lines = []
        for family in self.registry.collect():
            if not family.samples:
                continue
            lines.append(f"# TYPE {family.name} {family.type}")
            for sample in family.samples:
                name = sample.name
                if name.endswith("_created"):
                    continue
                if family.type == "counter" and name == family.name + "_total":
                    name = family.name
                labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sample.labels.items())
                lines.append(f"{name}{{{labels}}} {floatToGoString(sample.value)}")
        return "\n".join(lines) + "\n"
