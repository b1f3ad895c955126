"""Export into a TF Serving repository: layout, atomic versions, SIGKILL safety, disk space, warmup,
the servability audit, and the export read back by a fresh Python process and by TensorFlow's C++
SavedModel loader (the one TF Serving uses)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import cpp_loader
import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from keras_seq import export as ex
from keras_seq.cli.export import main as export_main
from keras_seq.export import repository
from keras_seq.layers import LSTM

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORDS = np.array([b"hello", b"world", b"abc", "z\xfcrich".encode()], dtype=object)


# --------------------------------------------------------------------------- models


class Double(tf.Module):
    """The smallest servable: y = 2x (plus an optional variable of `size` floats)."""

    def __init__(self, size=1):
        self.w = tf.Variable(tf.zeros([size]))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serve(self, x):
        return {"y": 2.0 * x + self.w[0]}


class WordScorer(tf.Module):
    """Words (DT_STRING) → characters → lookup table → Embedding → keras_seq LSTM → a label and scores.

    Exercises string ops, a hash table (the `__saved_model_init_op`), our while loop and its custom
    gradient; a second signature takes token ids.
    """

    def __init__(self):
        chars = list("abcdefghijklmnopqrstuvwxyz")
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(chars, tf.range(1, len(chars) + 1, dtype=tf.int64)), default_value=0
        )
        self.labels = tf.Variable(["short", "long"], trainable=False)
        keras.utils.set_random_seed(3)
        ids = keras.Input((None,), dtype="int64", name="ids")
        h = LSTM(5)(keras.layers.Embedding(27, 4)(ids))
        self.net = keras.Model(ids, keras.layers.Dense(2)(h))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="words")])
    def serve(self, words):
        chars = tf.strings.unicode_split(tf.strings.lower(words), "UTF-8")
        ids = self.table.lookup(chars).to_tensor()
        out = self.tokens(ids)
        out["label"] = tf.gather(self.labels, tf.argmax(out["logits"], axis=-1))
        out["length"] = tf.strings.length(words, unit="UTF8_CHAR")
        return out

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int64, name="ids")])
    def tokens(self, ids):
        logits = self.net(ids, training=False)
        return {"logits": logits, "score": tf.reduce_max(tf.nn.softmax(logits), axis=-1)}


def float_model():
    keras.utils.set_random_seed(1)
    features = keras.Input((None, 3), name="features")
    h = LSTM(4)(features)
    return keras.Model(features, keras.layers.Dense(2, name="scores")(h))


FEATURES = np.random.default_rng(0).normal(size=(3, 5, 3)).astype("float32")
IDS = np.array([[1, 2, 3, 0], [26, 25, 1, 1]], dtype="int64")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="module")
def float_export(repo):
    model = float_model()
    path = ex.export_saved_model(model, repo / "floats", warmup_requests=[{"features": FEATURES[:1]}])
    expected = {"serving_default": ({"features": FEATURES}, {"scores": model(FEATURES).numpy()})}
    return path, expected


@pytest.fixture(scope="module")
def string_export(repo):
    module = WordScorer()
    path = ex.export_saved_model(
        module,
        repo / "words",
        signatures={"serving_default": module.serve, "tokens": module.tokens},
        warmup_requests=[{"words": ["warm", "up"]}, {"signature_name": "tokens", "inputs": {"ids": IDS}}],
    )
    expected = {
        "serving_default": ({"words": WORDS}, {k: v.numpy() for k, v in module.serve(tf.constant(WORDS)).items()}),
        "tokens": ({"ids": IDS}, {k: v.numpy() for k, v in module.tokens(tf.constant(IDS)).items()}),
    }
    return path, expected


def assert_same_outputs(actual, expected):
    assert sorted(actual) == sorted(expected)
    for alias, value in expected.items():
        if value.dtype == object:
            assert actual[alias].tolist() == value.tolist(), alias
        else:
            np.testing.assert_allclose(actual[alias], value, rtol=1e-5, atol=1e-6, err_msg=alias)


def entries(path):
    return sorted(os.listdir(path))


# --------------------------------------------------------------------------- layout and versions


def test_keras_model_gets_a_named_serving_default_and_the_repository_layout(float_export):
    path, expected = float_export
    assert os.path.basename(path) == "1"
    assert {"saved_model.pb", "variables", "assets", "assets.extra"} <= set(entries(path))
    assert entries(os.path.join(path, "assets.extra")) == [ex.WARMUP_FILE]
    fn = tf.saved_model.load(path).signatures["serving_default"]
    assert {k: (s.dtype, s.shape.as_list()) for k, s in fn.structured_input_signature[1].items()} == {
        "features": (tf.float32, [None, None, 3])
    }
    assert list(fn.structured_outputs) == ["scores"]
    inputs, outputs = expected["serving_default"]
    assert_same_outputs({"scores": fn(**inputs)["scores"].numpy()}, outputs)


def test_versions_increase_and_are_never_overwritten(tmp_path):
    base = tmp_path / "m"
    assert [os.path.basename(ex.export_saved_model(Double(), base)) for _ in range(2)] == ["1", "2"]
    assert os.path.basename(ex.export_saved_model(Double(), base, version=7)) == "7"
    assert os.path.basename(ex.export_saved_model(Double(), base)) == "8"

    before = (base / "7" / "saved_model.pb").read_bytes()
    with pytest.raises(ex.VersionExistsError, match="version 7 already exists"):
        ex.export_saved_model(Double(), base, version=7)
    os.rename(base / "8", base / "0008")  # TF Serving reads "0008" as version 8 too
    with pytest.raises(ex.VersionExistsError, match="0008"):
        ex.export_saved_model(Double(), base, version="8")
    assert (base / "7" / "saved_model.pb").read_bytes() == before
    assert entries(base) == ["0008", "1", "2", "7"]  # no temporary left behind
    for bad in (-1, True, "v2", 2**63):
        with pytest.raises(ex.ExportError, match="version must be"):
            ex.export_saved_model(Double(), base, version=bad)


def test_publishing_never_replaces_a_version_that_appears_meanwhile(tmp_path, monkeypatch):
    """Another exporter takes the number between our check and our rename: an explicit version
    fails, an automatic one moves on to the next free number."""
    base = tmp_path / "m"
    real, raced = repository._rename_no_replace, {"3", "4"}

    def racing(src, dst):
        if os.path.basename(dst) in raced:
            raced.discard(os.path.basename(dst))
            os.mkdir(dst)  # empty: a plain rename(2) would silently replace it
        return real(src, dst)

    monkeypatch.setattr(repository, "_rename_no_replace", racing)
    with pytest.raises(ex.VersionExistsError, match="version 3 .* appeared while exporting"):
        ex.export_saved_model(Double(), base, version=3)
    assert os.path.basename(ex.export_saved_model(Double(), base)) == "5"
    assert entries(base) == ["3", "4", "5"] and entries(base / "3") == entries(base / "4") == []


def test_temporaries_are_ignored_and_only_stale_ones_cleaned(tmp_path):
    base = tmp_path / "m"
    ex.export_saved_model(Double(), base)
    fresh, stale = base / ".tmp-2-00ff", base / ".tmp-3-abcdef12"
    for d in (fresh, stale):
        (d / "variables").mkdir(parents=True)
        (d / "saved_model.pb").write_bytes(b"partial")
    (base / ".tmp-notours").mkdir()
    (base / "README").write_text("not a version")
    old = time.time() - 2 * ex.STALE_AFTER_SECONDS
    for p in (stale, stale / "variables", stale / "saved_model.pb", base / ".tmp-notours"):
        os.utime(p, (old, old))

    assert list(ex.list_versions(base)) == [1]
    assert ex.next_version(base) == 2
    assert ex.clean_stale_temporaries(base) == [str(stale)]
    assert entries(base) == [".tmp-2-00ff", ".tmp-notours", "1", "README"]
    assert os.path.basename(ex.export_saved_model(Double(), base)) == "2"  # the leftover's number is free
    assert ex.clean_stale_temporaries(base, max_age_seconds=0) == [str(fresh)]


_KILLED_EXPORT = """
import os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
from keras_seq import export as ex
from keras_seq.export import repository

class Big(tf.Module):
    def __init__(self):
        self.w = tf.Variable(tf.ones([{floats}]))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serve(self, x):
        return {{"y": x * self.w[0]}}

if sys.argv[2] == "before-rename":
    def stall(path):
        open(os.path.join(os.path.dirname(path), "stalled"), "w").close()
        time.sleep(600)
    repository.fsync_tree = stall
print("exporting", flush=True)
ex.export_saved_model(Big(), sys.argv[1])
print("finished", flush=True)
"""


@pytest.mark.parametrize("moment", ["while-writing", "before-rename"])
def test_sigkilled_export_leaves_no_version_behind(tmp_path, moment):
    """SIGKILL while TensorFlow writes 128 MB of variables, and after everything is written and
    audited but before the rename: no numeric directory appears, and the next export works."""
    base = tmp_path / "m"
    base.mkdir()
    script = _KILLED_EXPORT.format(floats=32 << 20)
    proc = subprocess.Popen([sys.executable, "-c", script, str(base), moment], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            temporaries = [p for p in base.iterdir() if p.name.startswith(".tmp-")]
            if moment == "while-writing" and temporaries and (temporaries[0] / "variables").exists():
                break
            if moment == "before-rename" and (base / "stalled").exists():
                break
            time.sleep(0.002)
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    proc.stdout.close()

    leftovers = [p.name for p in base.iterdir() if p.name.startswith(".tmp-")]
    assert len(leftovers) == 1
    assert ex.list_versions(base) == {}
    if moment == "while-writing":
        assert not (base / leftovers[0] / "saved_model.pb").exists()  # killed mid-way
    else:
        assert (base / leftovers[0] / "saved_model.pb").exists()  # complete, never published
    path = ex.export_saved_model(Double(), base)
    assert os.path.basename(path) == "1"
    assert float(tf.saved_model.load(path).signatures["serving_default"](x=tf.constant([1.0]))["y"][0]) == 2.0
    assert ex.clean_stale_temporaries(base, max_age_seconds=0) == [str(base / leftovers[0])]


def test_disk_space_is_checked_before_writing(tmp_path, monkeypatch):
    base = tmp_path / "m"
    real = shutil.disk_usage
    free = {"bytes": 100 << 20}
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=free["bytes"]))
    big = Double(size=(16 << 20) // 4)  # 16 MiB of variables: needs 2 × 16 + 64 MiB
    assert ex.estimate_size_bytes(big) == 16 << 20
    free["bytes"] = 95 << 20
    with pytest.raises(ex.InsufficientDiskSpaceError, match=r"96.0 MiB needed.*95.0 MiB free"):
        ex.export_saved_model(big, base)
    assert entries(base) == []
    free["bytes"] = 97 << 20
    assert os.path.basename(ex.export_saved_model(big, base)) == "1"


def test_keras_model_size_estimate():
    model = float_model()
    sizes = [np.dtype(v.dtype).itemsize * int(np.prod(v.shape)) for v in model.variables]  # seed states too
    assert ex.estimate_size_bytes(model) == sum(sizes)
    assert ex.estimate_size_bytes(model) >= 4 * sum(int(np.prod(w.shape)) for w in model.weights)


# --------------------------------------------------------------------------- warmup


def test_warmup_file_is_a_tfrecord_of_prediction_logs(tmp_path):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "given"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([1.5], "float32")))
    path = ex.write_warmup_requests(
        tmp_path,
        [{"words": ["héllo", "x"]}, {"signature_name": "tokens", "inputs": {"ids": IDS}}, request],
        model_name="g2p",
    )
    assert path == str(tmp_path / "assets.extra" / "tf_serving_warmup_requests")

    raw = tf.data.TFRecordDataset(path).as_numpy_iterator()
    records = [prediction_log_pb2.PredictionLog.FromString(r) for r in raw]
    assert records == ex.read_warmup_requests(tmp_path) == ex.read_warmup_requests(path)
    first, second, third = (r.predict_log.request for r in records)
    assert (first.model_spec.name, first.model_spec.signature_name) == ("g2p", "serving_default")
    assert first.inputs["words"].dtype == tf.string.as_datatype_enum
    assert tf.make_ndarray(first.inputs["words"]).tolist() == ["héllo".encode(), b"x"]
    assert second.model_spec.signature_name == "tokens"
    np.testing.assert_array_equal(tf.make_ndarray(second.inputs["ids"]), IDS)
    assert third == request

    per_signature = ex.write_warmup_requests(tmp_path, {"serving_default": {"x": [1.0]}, "tokens": {"ids": IDS}})
    specs = [r.predict_log.request.model_spec for r in ex.read_warmup_requests(per_signature)]
    assert [(s.name, s.signature_name) for s in specs] == [("model", "serving_default"), ("model", "tokens")]

    with pytest.raises(ex.ExportError, match=r"more than 1000"):
        ex.write_warmup_requests(tmp_path, [{"x": [1.0]}] * 1001)
    ex.write_warmup_requests(tmp_path, [{"x": [1.0]}] * 1000)
    assert len(ex.read_warmup_requests(tmp_path)) == 1000


def test_export_runs_its_warmup_and_refuses_one_that_fails(tmp_path, string_export):
    path, _ = string_export
    logs = ex.read_warmup_requests(path)
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == ["serving_default", "tokens"]
    assert ex.run_warmup_requests(path) == 2

    base = tmp_path / "m"
    for bad, message in [
        ({"z": [1.0]}, r"takes inputs \['x'\], the request has \['z'\]"),
        ({"signature_name": "nope", "inputs": {"x": [1.0]}}, "no signature 'nope'"),
        ({"x": np.array([1], "int32")}, "input 'x' is int32, signature 'serving_default' expects float32"),
        ({"inputs": {"x": [1.0]}, "output_filter": ["w"]}, "output_filter names 'w'"),
    ]:
        with pytest.raises(ex.ExportError, match=message):
            ex.export_saved_model(Double(), base, warmup_requests=[bad])
        assert entries(base) == []


def test_warmup_inputs_add_one_request_per_signature(tmp_path):
    path = ex.export_saved_model(Double(), tmp_path / "m", warmup_requests=[{"x": [1.0]}],
                                 warmup_inputs={"serving_default": {"x": [2.0, 3.0]}})
    logs = ex.read_warmup_requests(path)
    assert [tf.make_ndarray(log.predict_log.request.inputs["x"]).tolist() for log in logs] == [[1.0], [2.0, 3.0]]


def test_extra_assets_are_written_beside_the_warmup(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("a\nb\n")
    path = ex.export_saved_model(Double(), tmp_path / "m", assets={"vocab.txt": str(vocab), "notes/info.json": b"{}"})
    assert (tmp_path / "m" / "1" / "assets.extra" / "vocab.txt").read_text() == "a\nb\n"
    assert (tmp_path / "m" / "1" / "assets.extra" / "notes" / "info.json").read_bytes() == b"{}"
    assert os.path.isdir(os.path.join(path, "assets"))
    for bad in ("../escape", "/abs", ex.WARMUP_FILE):
        with pytest.raises(ex.ExportError):
            ex.export_saved_model(Double(), tmp_path / "m", assets={bad: b""})


# --------------------------------------------------------------------------- servability audit


def library_ops(path):
    ops = set()
    for meta_graph in ex.read_saved_model(path).meta_graphs:
        ops.update(n.op for n in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            ops.update(n.op for n in function.node_def)
    return ops


def test_audit_passes_our_while_loops_string_ops_and_tables(float_export, string_export):
    for path, _ in (float_export, string_export):
        assert ex.audit_saved_model(path) == []
    ops = library_ops(string_export[0])
    assert {"UnicodeDecode", "RaggedTensorToTensor", "LookupTableFindV2", "HashTableV2", "StringLength",
            "Sigmoid"} <= ops, sorted(ops)
    assert ops & {"While", "StatelessWhile"}, sorted(ops)  # the LSTM's loop


# The switches of the LSTM's XLA-compiled training path (the name has changed once already).
JIT_ATTRIBUTES = [a for a in ("jit_compile_backward", "jit_compile_training") if hasattr(LSTM, a)]


class TrainingForward(tf.Module):
    """The LSTM called with training=True: its hand-written gradient (tf.custom_gradient) is traced."""

    def __init__(self, jit_compile):
        self.lstm = LSTM(3)
        for name in JIT_ATTRIBUTES:
            setattr(self.lstm, name, jit_compile)
        self.lstm(np.zeros((1, 2, 2), "float32"))

    @tf.function(input_signature=[tf.TensorSpec([None, None, 2], tf.float32, name="x")])
    def serve(self, x):
        return {"h": self.lstm(x, training=True)}


def test_audit_covers_the_lstm_custom_gradient(tmp_path):
    path = saved(tmp_path, TrainingForward(jit_compile=False), "plain")
    assert "IdentityN" in library_ops(path)  # the custom gradient's marker op
    assert ex.audit_saved_model(path) == []


def test_audit_refuses_the_lstm_xla_compiled_training_path(tmp_path):
    """The LSTM's training path inside a tf.function compiles its backward pass with XLA; the
    gradient is saved with the function that calls it, and the audit names it as unreachable."""
    if not JIT_ATTRIBUTES:
        pytest.skip("this LSTM has no XLA-compiled training path")
    offenders = ex.audit_saved_model(saved(tmp_path, TrainingForward(jit_compile=True), "jit"), strict=False)
    assert offenders and all("_XlaMustCompile" in o.reason for o in offenders)
    assert any("called by no signature" in o.function for o in offenders)


class PythonCallback(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serve(self, x):
        return {"y": tf.py_function(lambda v: v * 2, [x], tf.float32)}


class Compiled(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")], jit_compile=True)
    def serve(self, x):
        return {"y": tf.sin(x)}


def saved(tmp_path, module, name, raw=False):
    """`module` saved without the audit: by tf.saved_model.save itself (`raw`), or by export."""
    if not raw:
        return ex.export_saved_model(module, tmp_path / name, signatures={"serving_default": module.serve}, audit=False)
    path = str(tmp_path / name)
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path


def test_audit_refuses_python_callbacks(tmp_path):
    offenders = ex.audit_saved_model(saved(tmp_path, PythonCallback(), "py"), strict=False)
    assert [o.op for o in offenders] == ["EagerPyFunc"]
    assert offenders[0].function.startswith("function __inference_serve")
    assert "Python" in offenders[0].reason


def test_audit_refuses_functions_that_must_be_xla_compiled(tmp_path):
    path = saved(tmp_path, Compiled(), "xla")
    offenders = ex.audit_saved_model(path, strict=False)
    assert offenders and all("_XlaMustCompile" in o.reason for o in offenders)
    with pytest.raises(ex.ServabilityError, match="jit_compile=True"):
        ex.audit_saved_model(path)


def test_audit_refuses_cudnn_xla_custom_and_kernelless_ops(tmp_path, float_export):
    from tensorflow.core.framework import types_pb2

    path = str(tmp_path / "edited")
    shutil.copytree(float_export[0], path)
    saved_model = ex.read_saved_model(path)
    graph = saved_model.meta_graphs[0].graph_def
    function = next(f for f in graph.library.function if any(n.op == "StatelessWhile" for n in f.node_def))
    function.node_def.add(name="rnn", op="CudnnRNNV3")
    function.node_def.add(name="dus", op="XlaDynamicUpdateSlice")
    function.node_def.add(name="mine", op="MyCustomOp")
    node = graph.node.add(name="unicode_half", op="Sin")
    node.attr["T"].type = types_pb2.DT_STRING  # Sin has no CPU kernel for strings
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
        f.write(saved_model.SerializeToString())

    offenders = ex.audit_saved_model(path, strict=False)
    where = f"function {function.signature.name}"
    assert [(o.op, o.node, o.function) for o in offenders] == [
        ("Sin", "unicode_half", "<main graph>"),
        ("CudnnRNNV3", "rnn", where),
        ("XlaDynamicUpdateSlice", "dus", where),
        ("MyCustomOp", "mine", where),
    ]
    assert "cuDNN" in offenders[1].reason and "XLA" in offenders[2].reason
    assert "not registered" in offenders[3].reason and "no CPU kernel for T=string" in offenders[0].reason
    with pytest.raises(ex.ServabilityError) as error:
        ex.audit_saved_model(path)
    assert "CudnnRNNV3 (node 'rnn' in function" in str(error.value)


class KerasInside(tf.Module):
    """A Keras 3 model held by a tf.Module: saved as is, TF Serving cannot restore its variables."""

    def __init__(self):
        ids = keras.Input((None,), dtype="int64", name="ids")
        self.net = keras.Model(ids, keras.layers.Dense(2)(keras.layers.Embedding(5, 3)(ids)))

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int64, name="ids")])
    def serve(self, ids):
        return {"y": self.net(ids, training=False)}


def test_audit_refuses_variables_that_are_never_restored(tmp_path):
    offenders = ex.audit_saved_model(saved(tmp_path, KerasInside(), "raw", raw=True), strict=False)
    assert len(offenders) == 3
    assert all("never restored" in o.reason and "__inference_signature_wrapper_serve" in o.reason for o in offenders)
    # export_saved_model tracks the variables behind the Keras ones, so the restore op assigns them.
    assert ex.audit_saved_model(ex.export_saved_model(KerasInside(), tmp_path / "m")) == []


def test_export_refuses_to_publish_an_unservable_model(tmp_path):
    base = tmp_path / "m"
    with pytest.raises(ex.ServabilityError, match="EagerPyFunc"):
        ex.export_saved_model(PythonCallback(), base)
    assert entries(base) == []
    ex.export_saved_model(PythonCallback(), base, audit=False)  # on request, for experiments
    assert entries(base) == ["1"]


def test_a_module_without_signatures_is_refused(tmp_path):
    class NoSignature(tf.Module):
        @tf.function
        def serve(self, x):
            return x

    with pytest.raises(ex.ExportError, match="without any signature"):
        ex.export_saved_model(NoSignature(), tmp_path / "m")
    assert entries(tmp_path / "m") == []


# --------------------------------------------------------------------------- read back elsewhere

_FRESH_PROCESS = """
import importlib.abc, json, os, sys
import numpy as np

class NoKerasSeq(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "keras_seq" or name.startswith("keras_seq."):
            raise ImportError("keras_seq must not be imported here")

sys.meta_path.insert(0, NoKerasSeq())
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf

jobs = json.loads(sys.argv[1])
for job in jobs:
    fn = tf.saved_model.load(job["path"]).signatures[job["signature"]]
    inputs = dict(np.load(job["inputs"], allow_pickle=False))
    out = fn(**{k: tf.constant(v.astype(object) if v.dtype.kind == "S" else v) for k, v in inputs.items()})
    out = {k: v.numpy() for k, v in out.items()}
    np.savez(job["outputs"], **{k: v.astype("S") if v.dtype == object else v for k, v in out.items()})
assert not any(m == "keras_seq" or m.startswith("keras_seq.") for m in sys.modules)
print("ok")
"""


def test_export_runs_the_same_in_a_fresh_process_without_keras_seq(tmp_path, float_export, string_export):
    jobs, expected = [], {}
    for path, signatures in (float_export, string_export):
        for signature, (inputs, outputs) in signatures.items():
            key = f"{os.path.basename(os.path.dirname(path))}-{signature}"
            np.savez(tmp_path / f"{key}-in.npz", **{k: np.asarray(v, dtype="S" if v.dtype == object else v.dtype)
                                                   for k, v in inputs.items()})
            jobs.append({"path": path, "signature": signature, "inputs": str(tmp_path / f"{key}-in.npz"),
                         "outputs": str(tmp_path / f"{key}-out.npz")})
            expected[key] = outputs
    result = subprocess.run([sys.executable, "-c", _FRESH_PROCESS, json.dumps(jobs)], check=False,
                            capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    for key, outputs in expected.items():
        got = dict(np.load(tmp_path / f"{key}-out.npz"))
        assert_same_outputs({k: v.astype(object) if v.dtype.kind == "S" else v for k, v in got.items()}, outputs)


def test_cpp_savedmodel_loader_gives_the_same_outputs(cpp_binary, float_export, string_export):
    for path, signatures in (float_export, string_export):
        for signature, (inputs, outputs) in signatures.items():
            assert_same_outputs(cpp_loader.run_signature(cpp_binary, path, signature, inputs), outputs)


def test_cpp_loader_fails_where_the_audit_finds_unrestored_variables(cpp_binary, tmp_path):
    """The premise of the audit's "never restored" rule: Python loads such a SavedModel, C++ not."""
    module = KerasInside()
    ids = np.array([[1, 2]], "int64")
    path = saved(tmp_path, module, "raw", raw=True)
    in_python = tf.saved_model.load(path).signatures["serving_default"](ids=ids)["y"]
    np.testing.assert_allclose(in_python, module.serve(ids)["y"])
    with pytest.raises(RuntimeError, match="Could not find variable"):
        cpp_loader.run_signature(cpp_binary, path, "serving_default", {"ids": ids})
    exported = ex.export_saved_model(module, tmp_path / "m")
    assert_same_outputs(cpp_loader.run_signature(cpp_binary, exported, "serving_default", {"ids": ids}),
                        {"y": module.serve(ids)["y"].numpy()})


def test_cpp_loader_reports_errors(cpp_binary, float_export):
    with pytest.raises(RuntimeError, match="no signature named 'nope'"):
        cpp_loader.run_signature(cpp_binary, float_export[0], "nope", {})
    with pytest.raises(RuntimeError, match="Expects arg\\[0\\] to be float but int32 is provided"):
        cpp_loader.run_signature(cpp_binary, float_export[0], "serving_default",
                                 {"features": np.zeros((1, 2, 3), "int32")})


# --------------------------------------------------------------------------- command line


def test_cli_exports_a_keras_file(tmp_path, capsys):
    model = float_model()
    model.save(tmp_path / "model.keras")
    assert export_main(["--model", str(tmp_path / "model.keras"), "--base-path", str(tmp_path / "export" / "m"),
                    "--version", "3"]) == 0
    path = capsys.readouterr().out.strip()
    assert path == str(tmp_path / "export" / "m" / "3")
    out = tf.saved_model.load(path).signatures["serving_default"](features=tf.constant(FEATURES))
    np.testing.assert_allclose(out["scores"].numpy(), model(FEATURES).numpy(), rtol=1e-5, atol=1e-6)
    assert export_main(["--model", str(tmp_path / "model.keras"), "--base-path", str(tmp_path / "export" / "m"),
                    "--version", "3"]) == 1
    assert "already exists" in capsys.readouterr().err


def test_cli_model_directory_uses_the_registered_loader(tmp_path, capsys):
    """An application registers its model directories by settings file; export imports none."""
    from keras_seq.export import registry

    (tmp_path / "run").mkdir()
    assert export_main(["--model", str(tmp_path / "run"), "--base-path", str(tmp_path / "m")]) == 1
    assert "not a model directory of a registered application" in capsys.readouterr().err

    module = Double()
    (tmp_path / "run" / "fake-app.json").write_text("{}")
    seen = []

    def load(directory, **kwargs):
        seen.append(kwargs)
        return {"module": module, "signatures": {"serving_default": module.serve},
                "warmup_requests": [{"x": [1.0, 2.0]}], "assets": {"from.txt": directory.encode()}}

    registry.register_model_directory("fake-app.json", load)
    try:
        assert export_main(["--model", str(tmp_path / "run"), "--base-path", str(tmp_path / "m")]) == 0
        path = capsys.readouterr().out.strip()
        assert ex.read_warmup_requests(path)[0].predict_log.request.model_spec.name == "m"
        assert (tmp_path / "m" / "1" / "assets.extra" / "from.txt").read_text() == str(tmp_path / "run")
        assert export_main(["--model", str(tmp_path / "missing"), "--base-path", str(tmp_path / "m")]) == 1
        assert "neither a model directory nor a .keras file" in capsys.readouterr().err
        # --shards goes to the loader, and only when given.
        assert export_main(["--model", str(tmp_path / "run"), "--base-path", str(tmp_path / "m"), "--shards", "3"]) == 0
        assert seen == [{}, {"shards": 3}]
    finally:
        registry._MODEL_DIRECTORIES.pop("fake-app.json")


def test_cli_rejects_bad_shards(tmp_path, capsys):
    float_model().save(tmp_path / "model.keras")
    with pytest.raises(SystemExit):
        export_main(["--model", str(tmp_path / "model.keras"), "--base-path", str(tmp_path / "m"), "--shards", "0"])
    assert "--shards must be at least 1, got 0" in capsys.readouterr().err
    assert export_main(["--model", str(tmp_path / "model.keras"), "--base-path", str(tmp_path / "m"), "--shards", "2"]) == 1
    assert "--shards applies to encoder-decoders" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
