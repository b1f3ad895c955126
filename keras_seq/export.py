"""Export into a TensorFlow Serving model repository, safely.

`export_saved_model` writes `base_path/<version>/` — `saved_model.pb`, `variables/`, `assets/`,
`assets.extra/` — the layout TF Serving (and `keras-seq serve`) polls. TF Serving has no
completeness check: a version directory is picked up the moment it appears (tensorflow/serving#1086),
so a version is never written in place. The export goes to a hidden, non-numeric temporary
directory beside the versions (`.tmp-<version>-<random>`, which the version scanner ignores), is
audited, has its warmup requests run, is fsync'd, and only then is renamed to `<version>` in one
`rename(2)` that refuses to replace anything. An export killed at any point leaves at most a
temporary directory behind, never a numeric one; `clean_stale_temporaries` removes old leftovers.

`audit_saved_model` walks every graph an export holds — the main graph and every function of the
function library — and names each op a CPU TensorFlow Serving cannot run: cuDNN ops, Python
callbacks (`PyFunc`, `EagerPyFunc`), XLA-only ops and functions that must be XLA-compiled, ops this
TensorFlow does not know (custom ops), and ops without a CPU kernel for their dtypes.

`write_warmup_requests` / `read_warmup_requests` handle `assets.extra/tf_serving_warmup_requests`:
a TFRecord file of `PredictionLog` records that TF Serving replays at load time.

Example:

>>> import numpy as np, tensorflow as tf, tempfile
>>> class Double(tf.Module):
...     @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
...     def serve(self, x):
...         return {"y": 2.0 * x}
>>> base = tempfile.mkdtemp()
>>> path = export_saved_model(Double(), base, warmup_requests=[{"x": np.ones(2, "float32")}])
>>> os.path.basename(path), sorted(os.listdir(path))
('1', ['assets', 'assets.extra', 'fingerprint.pb', 'saved_model.pb', 'variables'])
>>> os.path.basename(export_saved_model(Double(), base))
'2'
"""

import argparse
import ctypes
import errno
import functools
import logging
import os
import re
import secrets
import shutil
import sys
import time
from dataclasses import dataclass

log = logging.getLogger("keras_seq.export")

WARMUP_FILE = "tf_serving_warmup_requests"
# TF Serving refuses a warmup file with more records than this
# (servables/tensorflow/saved_model_warmup_util.cc).
MAX_WARMUP_RECORDS = 1000
# Room asked for beyond twice the variables' size: the graph, assets, filesystem overhead.
DISK_MARGIN_BYTES = 64 << 20
# Temporary directories older than this are leftovers of killed exports.
STALE_AFTER_SECONDS = 3600.0

_INT64_MAX = 2**63 - 1
# Names TF Serving reads as versions: what absl::SimpleAtoi accepts (as keras_seq.serving does).
_VERSION_NAME = re.compile(r"^\s*[+-]?\d+\s*$")
_TEMPORARY_NAME = re.compile(r"^\.tmp-\d+-[0-9a-f]+$")


class ExportError(Exception):
    """An export that could not be written; nothing was published."""


class VersionExistsError(ExportError, FileExistsError):
    """The version asked for is already in the repository; it is never overwritten."""


class InsufficientDiskSpaceError(ExportError, OSError):
    """Less free disk space than the export needs."""


class ServabilityError(ExportError):
    """A SavedModel holds ops that a CPU TensorFlow Serving cannot run.

    `offenders` lists each as an `Offender`.
    """

    def __init__(self, path, offenders):
        self.path = path
        self.offenders = list(offenders)
        lines = [f"{path} is not servable on CPU TensorFlow Serving ({len(self.offenders)} offending ops):"]
        lines += [f"  - {o}" for o in self.offenders]
        super().__init__("\n".join(lines))


# --------------------------------------------------------------------------- versions and layout


def parse_version(name):
    """The version a directory name stands for (as TF Serving's absl::SimpleAtoi reads it), or None."""
    if not _VERSION_NAME.match(name):
        return None
    value = int(name)
    return value if -_INT64_MAX - 1 <= value <= _INT64_MAX else None


def list_versions(base_path):
    """{version: directory} of the numeric subdirectories of `base_path`.

    Temporary directories of exports in progress (or killed) are not numeric and never listed.
    """
    versions = {}
    try:
        entries = sorted(os.listdir(base_path))
    except FileNotFoundError:
        return versions
    for entry in entries:
        version = parse_version(entry)
        if version is not None and os.path.isdir(os.path.join(base_path, entry)):
            versions.setdefault(version, os.path.join(base_path, entry))
    return versions


def next_version(base_path):
    """One more than the highest version in `base_path`, or 1 when there is none."""
    versions = list_versions(base_path)
    return max(max(versions) + 1, 1) if versions else 1


def clean_stale_temporaries(base_path, max_age_seconds=STALE_AFTER_SECONDS):
    """Remove the temporary directories that killed exports left in `base_path`.

    Only directories named like an export's temporary (`.tmp-<version>-<hex>`) in which nothing has
    changed for `max_age_seconds` are removed, so an export still running is left alone. Returns
    the removed paths.
    """
    removed = []
    try:
        entries = os.listdir(base_path)
    except FileNotFoundError:
        return removed
    now = time.time()
    for entry in entries:
        path = os.path.join(base_path, entry)
        if not _TEMPORARY_NAME.match(entry) or not os.path.isdir(path) or os.path.islink(path):
            continue
        if now - _newest_mtime(path) < max_age_seconds:
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            log.info("removed stale export temporary %s", path)
            removed.append(path)
    return removed


def _newest_mtime(path):
    newest = os.lstat(path).st_mtime
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
            except OSError:
                pass
    return newest


def _check_version(version):
    if isinstance(version, bool) or not isinstance(version, (int, str)):
        raise ExportError(f"version must be a non-negative integer, got {version!r}")
    parsed = parse_version(str(version)) if isinstance(version, str) else version
    if parsed is None or not 0 <= parsed <= _INT64_MAX:
        raise ExportError(f"version must be a non-negative 64-bit integer, got {version!r}")
    return parsed


def _fsync_tree(path):
    """fsync every file and directory under `path`, children before their directory."""
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(root)


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as e:  # some filesystems cannot fsync a directory
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _rename_no_replace(src, dst):
    """rename(2) `src` to `dst`, failing with FileExistsError if `dst` exists.

    Uses renameat2(RENAME_NOREPLACE) where the kernel and filesystem have it, so two exporters
    racing for one version cannot replace each other's; elsewhere, a check then os.rename.
    """
    renameat2 = getattr(_libc(), "renameat2", None) if sys.platform.startswith("linux") else None
    if renameat2 is not None:
        renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        at_fdcwd, rename_noreplace = -100, 1
        if renameat2(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), rename_noreplace) == 0:
            return
        err = ctypes.get_errno()
        if err in (errno.EEXIST, errno.ENOTEMPTY):
            raise FileExistsError(err, os.strerror(err), dst)
        if err not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), src, None, dst)
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst)
    os.rename(src, dst)


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


# --------------------------------------------------------------------------- disk space


def estimate_size_bytes(module_or_model):
    """Bytes of the variables a module or Keras model will write (strings counted as empty)."""
    variables = getattr(module_or_model, "variables", None)
    if variables is None or callable(variables):
        variables = getattr(module_or_model, "weights", ())
    total, seen = 0, set()
    for v in variables:
        if id(v) in seen:
            continue
        seen.add(id(v))
        try:
            size = int(v.dtype.size) if hasattr(v.dtype, "size") else int(_np_itemsize(v.dtype))
            count = 1
            for d in v.shape:
                count *= int(d)
        except (TypeError, ValueError, AttributeError):
            continue
        total += size * count
    return total


def _np_itemsize(dtype):
    import numpy as np

    return np.dtype(str(dtype)).itemsize


def check_disk_space(base_path, needed_bytes):
    """Raise InsufficientDiskSpaceError unless `base_path`'s filesystem has `needed_bytes` free."""
    free = shutil.disk_usage(base_path).free
    if free < needed_bytes:
        raise InsufficientDiskSpaceError(
            errno.ENOSPC,
            f"not enough free disk space to export into {base_path}: {_mib(needed_bytes)} needed "
            f"(twice the variables plus {_mib(DISK_MARGIN_BYTES)}), {_mib(free)} free",
        )
    return free


def _mib(n):
    return f"{n / (1 << 20):.1f} MiB"


def _assets_size(assets):
    total = 0
    for source in (assets or {}).values():
        if isinstance(source, (bytes, bytearray)):
            total += len(source)
        elif os.path.isdir(source):
            for root, _, files in os.walk(source):
                total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
        elif os.path.exists(source):
            total += os.path.getsize(source)
    return total


# --------------------------------------------------------------------------- export


def export_saved_model(
    module_or_model,
    base_path,
    version=None,
    signatures=None,
    warmup_requests=None,
    assets=None,
    *,
    model_name=None,
    audit=True,
    verify_warmup=True,
):
    """Write `module_or_model` as version `version` of the TF Serving model at `base_path`.

    Args:
        module_or_model: a `tf.Module` (or any trackable) whose signatures are `tf.function`s with
            input signatures, or a Keras model. A functional Keras model given no `signatures`
            gets a `serving_default` forward pass: inputs named after its `keras.Input`s, outputs
            after its output layers (or its output dict's keys).
        base_path: the model's directory in the repository (`export/<name>`); created if missing.
        version: a non-negative integer. None: one more than the highest version present (1 if
            none). An existing version is never overwritten (`VersionExistsError`).
        signatures: as for `tf.saved_model.save`: a `tf.function` with an input signature, a
            concrete function, or a dict from signature name to either. For a Keras model, a dict
            of `tf.function`s with input signatures (added as `ExportArchive` endpoints).
        warmup_requests: up to 1000 requests written to `assets.extra/tf_serving_warmup_requests`
            (see `write_warmup_requests` for the accepted forms).
        assets: {file name: bytes, or the path of a file or directory to copy} written under
            `assets.extra/`, beside the SavedModel (files the graph reads belong in `assets/`
            through `tf.saved_model.Asset`).
        model_name: the model name inside warmup requests; default: `base_path`'s last component.
        audit: refuse (`ServabilityError`) an export holding ops CPU TF Serving cannot run.
        verify_warmup: load the written SavedModel and run every warmup request on it before
            publishing, since TF Serving refuses to load a version whose warmup fails.

    Returns:
        The path of the published version directory.

    Raises:
        VersionExistsError, InsufficientDiskSpaceError, ServabilityError, ExportError.
    """
    base_path = os.path.abspath(os.fspath(base_path))
    model_name = model_name or os.path.basename(base_path.rstrip(os.sep))
    asked = None if version is None else _check_version(version)
    os.makedirs(base_path, exist_ok=True)
    clean_stale_temporaries(base_path)
    _check_assets(assets)
    requests = None if warmup_requests is None else _to_predict_logs(warmup_requests, model_name)

    variables_bytes = estimate_size_bytes(module_or_model)
    check_disk_space(base_path, 2 * variables_bytes + _assets_size(assets) + DISK_MARGIN_BYTES)

    chosen = asked if asked is not None else next_version(base_path)
    _refuse_existing(base_path, chosen)
    temporary = os.path.join(base_path, f".tmp-{chosen}-{secrets.token_hex(4)}")
    os.mkdir(temporary)
    try:
        _save(module_or_model, temporary, signatures)
        os.makedirs(os.path.join(temporary, "assets"), exist_ok=True)
        os.makedirs(os.path.join(temporary, "assets.extra"), exist_ok=True)
        _copy_assets(assets, os.path.join(temporary, "assets.extra"))
        if requests:
            write_warmup_requests(temporary, requests, model_name=model_name)
        offenders = audit_saved_model(temporary, strict=False) if audit else []
        if offenders:
            raise ServabilityError(f"the export of {model_name} version {chosen}", offenders)
        if requests and verify_warmup:
            run_warmup_requests(temporary)
        _fsync_tree(temporary)
        chosen = _publish(temporary, base_path, chosen, retry=asked is None)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    final = os.path.join(base_path, str(chosen))
    log.info("exported %s version %d to %s", model_name, chosen, final)
    return final


def _refuse_existing(base_path, version):
    existing = list_versions(base_path).get(version)
    if existing is not None or os.path.lexists(os.path.join(base_path, str(version))):
        existing = existing or os.path.join(base_path, str(version))
        raise VersionExistsError(
            errno.EEXIST,
            f"version {version} already exists at {existing}; versions are never overwritten "
            f"(export a new version, or delete the old one yourself)",
        )


def _publish(temporary, base_path, version, retry):
    """Rename `temporary` to the version directory; with `retry`, move on to the next free number
    if another exporter took `version` meanwhile. Returns the version published."""
    for _ in range(100):
        try:
            _refuse_existing(base_path, version)
            _rename_no_replace(temporary, os.path.join(base_path, str(version)))
        except FileExistsError:
            if not retry:
                raise VersionExistsError(
                    errno.EEXIST, f"version {version} of {base_path} appeared while exporting; not overwritten"
                ) from None
            version = max(version + 1, next_version(base_path))
            continue
        _fsync_dir(base_path)
        return version
    raise ExportError(f"could not find a free version number in {base_path}")


def _save(module_or_model, path, signatures):
    import tensorflow as tf

    if _is_keras_model(module_or_model):
        _save_keras(module_or_model, path, signatures)
        return
    _track_keras_variables(module_or_model)
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=True)
    try:
        tf.saved_model.save(module_or_model, path, signatures=signatures, options=options)
    except (TypeError, ValueError) as e:
        raise ExportError(f"could not save {type(module_or_model).__name__} as a SavedModel: {e}") from e
    if not _signature_names(path):
        raise ExportError(
            f"{type(module_or_model).__name__} was saved without any signature; TF Serving needs at "
            "least one: pass signatures= (tf.functions with input_signature)"
        )


# The attribute through which `_track_keras_variables` tracks the tf.Variables of Keras layers.
KERAS_VARIABLES_ATTRIBUTE = "_export_keras_variables"


def _track_keras_variables(module):
    """Track the tf.Variables behind the Keras 3 variables reachable from `module`, on `module`.

    A `tf.Module` that holds a Keras 3 model as an attribute saves a SavedModel that Python loads
    fine but TensorFlow's C++ loader (TF Serving's) cannot run: the signatures read the Keras
    variables' handles while the checkpoint restore op assigns other handles, so serving fails with
    "Could not find variable dense/kernel". Tracking the underlying tf.Variables as well (as
    `ExportArchive.track` does for Keras models) makes the restore op assign the handles the
    signatures read. `audit_saved_model` checks the outcome ("never restored").
    """
    try:
        import keras
        import tensorflow as tf
    except ImportError:
        return
    if keras.backend.backend() != "tensorflow":
        return
    values, seen = [], set()
    for trackable in tf.train.TrackableView(module).descendants():
        value = getattr(trackable, "value", None) if isinstance(trackable, keras.Variable) else None
        if isinstance(value, tf.Variable) and id(value) not in seen:
            seen.add(id(value))
            values.append(value)
    if values:
        setattr(module, KERAS_VARIABLES_ATTRIBUTE, values)


def _is_keras_model(obj):
    try:
        import keras
    except ImportError:
        return False
    return isinstance(obj, keras.Model)


def _save_keras(model, path, signatures):
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    if signatures is None:
        fn, input_signature = keras_serving_function(model)
        archive.add_endpoint("serving_default", fn, input_signature=input_signature)
    else:
        if not isinstance(signatures, dict):
            signatures = {"serving_default": signatures}
        for name, fn in signatures.items():
            if getattr(fn, "input_signature", None) is None:
                raise ExportError(f"signature {name!r} of a Keras model must be a tf.function with an input_signature")
            archive.add_endpoint(name, fn)
    archive.write_out(path, verbose=False)


def keras_serving_function(model):
    """`(fn, input_signature)`: a forward pass of a functional Keras model with named inputs/outputs.

    The inputs are the model's `keras.Input`s, named as they are (give them names: Keras numbers
    unnamed inputs with a global counter); the batch dimension is left unknown. The outputs are a
    dict named after the output layers, or the keys of a dict output.
    """
    import keras
    import tensorflow as tf

    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise ExportError(
            f"{type(model).__name__} has no symbolic inputs (a subclassed or unbuilt model): pass "
            "signatures= (tf.functions with input_signature) to export it"
        )
    names = [t.name for t in inputs]
    if len(set(names)) != len(names):
        raise ExportError(f"the model's inputs need distinct names, got {names}")
    input_signature = [
        tf.TensorSpec((None,) + tuple(t.shape[1:]), tf.as_dtype(t.dtype), name=n) for t, n in zip(inputs, names)
    ]
    structure = model.input
    output_names = list(getattr(model, "output_names", None) or [])

    def serve(*args):
        x = keras.tree.pack_sequence_as(structure, list(args))
        y = model(x, training=False)
        if isinstance(y, dict):
            return dict(y)
        flat = keras.tree.flatten(y)
        keys = output_names if len(output_names) == len(flat) and len(set(output_names)) == len(flat) else [
            f"output_{i}" for i in range(len(flat))
        ]
        return dict(zip(keys, flat))

    return serve, input_signature


def _check_assets(assets):
    for name, source in (assets or {}).items():
        parts = os.path.normpath(name).split(os.sep)
        if os.path.isabs(name) or ".." in parts or name in ("", "."):
            raise ExportError(f"asset name {name!r} must be a relative path inside assets.extra/")
        if name == WARMUP_FILE:
            raise ExportError(f"{WARMUP_FILE!r} is written from warmup_requests=, not from assets=")
        if not isinstance(source, (bytes, bytearray)) and not os.path.exists(source):
            raise ExportError(f"asset {name!r}: no such file or directory {source!r}")


def _copy_assets(assets, directory):
    for name, source in (assets or {}).items():
        target = os.path.join(directory, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if isinstance(source, (bytes, bytearray)):
            with open(target, "wb") as f:
                f.write(source)
        elif os.path.isdir(source):
            shutil.copytree(source, target)
        else:
            shutil.copyfile(source, target)


def _signature_names(path):
    names = set()
    for meta_graph in _read_saved_model(path).meta_graphs:
        names.update(meta_graph.signature_def.keys())
    names.discard("__saved_model_init_op")
    return names


# --------------------------------------------------------------------------- warmup


def write_warmup_requests(path, requests, model_name="model"):
    """Write `requests` to `<path>/assets.extra/tf_serving_warmup_requests`; return the file's path.

    `path` is a SavedModel directory. Each request is a `PredictionLog`, a `PredictRequest`, or a
    dict — either `{"inputs": {alias: array}, "signature_name": ..., "model_name": ...}` or just
    `{alias: array}` for `serving_default` — whose arrays (NumPy arrays, lists, Python strings)
    become TensorProtos. At most 1000 records, TF Serving's limit.
    """
    import tensorflow as tf

    logs = _to_predict_logs(requests, model_name)
    directory = os.path.join(os.fspath(path), "assets.extra")
    os.makedirs(directory, exist_ok=True)
    target = os.path.join(directory, WARMUP_FILE)
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
        path = os.path.join(path, "assets.extra", WARMUP_FILE)
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


def _to_predict_logs(requests, model_name):
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    if isinstance(requests, (dict, predict_pb2.PredictRequest, prediction_log_pb2.PredictionLog)):
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
            raise ExportError(f"warmup request {i}: expected a PredictRequest, PredictionLog or dict, got {type(request)}")
        logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    if len(logs) > MAX_WARMUP_RECORDS:
        raise ExportError(
            f"{len(logs)} warmup requests: TF Serving refuses more than {MAX_WARMUP_RECORDS} "
            "(Number of warmup records exceeds the maximum)"
        )
    return logs


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


# --------------------------------------------------------------------------- servability audit


@dataclass(frozen=True)
class Offender:
    """One op that CPU TF Serving cannot run: its type, node, the function holding it, and why."""

    op: str
    node: str
    function: str  # "<main graph>" for nodes outside the function library
    reason: str

    def __str__(self):
        return f"{self.op} (node {self.node!r} in {self.function}): {self.reason}"


_PYTHON_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}
_MAIN_GRAPH = "<main graph>"


def audit_saved_model(path, strict=True):
    """Check every op of the SavedModel at `path` against a CPU TensorFlow Serving.

    Walks the main graph and every function of the function library of each `serve` MetaGraphDef.
    An op is refused when it is a cuDNN op, a Python callback (`PyFunc`, `PyFuncStateless`,
    `EagerPyFunc`), an XLA op (`Xla*`, `_Xla*`), unknown to this TensorFlow (a custom op), or has no
    CPU kernel matching its dtypes; a function marked `_XlaMustCompile` (`jit_compile=True`) is
    refused too, since TF Serving runs with XLA off. Calls of library functions, `Placeholder`,
    `Const`, `NoOp`, `Identity`, `While`, `If` and other ops with CPU (or any-device) kernels pass.

    Returns the list of `Offender`s; with `strict` (the default), raises ServabilityError if any.
    """
    saved_model = _read_saved_model(path)
    offenders = []
    serve_graphs = [m for m in saved_model.meta_graphs if "serve" in m.meta_info_def.tags]
    if not serve_graphs:
        offenders.append(Offender("-", "-", _MAIN_GRAPH, "no MetaGraphDef tagged 'serve', which TF Serving loads"))
    for meta_graph in serve_graphs:
        offenders += _unrestored_variables(meta_graph)
        graph = meta_graph.graph_def
        library = {f.signature.name: f for f in graph.library.function}
        for node in graph.node:
            offenders += _check_node(node, _MAIN_GRAPH, library)
        for name, function in sorted(library.items()):
            if _attr_true(function.attr.get("_XlaMustCompile")):
                offenders.append(
                    Offender("-", "-", f"function {name}", "marked _XlaMustCompile (jit_compile=True): needs XLA at serving time")
                )
            for node in function.node_def:
                offenders += _check_node(node, f"function {name}", library)
    offenders = list(dict.fromkeys(offenders))
    if strict and offenders:
        raise ServabilityError(path, offenders)
    return offenders


def _unrestored_variables(meta_graph):
    """Variables the graph reads that its checkpoint restore op never assigns.

    TF Serving's loader restores variables only through `saver_def.restore_op_name`; a variable
    handle read elsewhere but not passed to that op stays uninitialized ("Could not find variable").
    Checked for TF2 SavedModels, whose restore op is one function call taking every handle.
    """
    graph, saver = meta_graph.graph_def, meta_graph.saver_def
    nodes = {n.name: n for n in graph.node}
    restore = nodes.get(_node_name(saver.restore_op_name))
    if restore is None or restore.op not in ("StatefulPartitionedCall", "PartitionedCall"):
        return []
    save = _node_name(saver.save_tensor_name)

    def handle(name):
        node = nodes.get(_node_name(name))
        while node is not None and node.op == "Identity" and node.input:
            node = nodes.get(_node_name(node.input[0]))
        return node if node is not None and node.op in ("VarHandleOp", "_VarHandlesOp") else None

    restored = {h.name for h in map(handle, restore.input) if h is not None}
    offenders = []
    for node in graph.node:
        # Signatures and the init op run graph nodes only through function calls; other readers
        # (the `<name>/Read/ReadVariableOp` nodes every save writes) are never run.
        if node.name in (restore.name, save) or node.op not in ("StatefulPartitionedCall", "PartitionedCall"):
            continue
        for name in node.input:
            h = None if name.startswith("^") else handle(name)
            if h is not None and h.name not in restored:
                reader = f"{node.name} ({node.attr['f'].func.name})"
                offenders.append(Offender(
                    h.op, h.name, _MAIN_GRAPH,
                    f"variable {h.attr['shared_name'].s.decode() or h.name!r} is read by {reader} but never "
                    "restored from variables/: TensorFlow's C++ loader (TF Serving) fails with 'Could not find "
                    "variable' (a Keras 3 model tracked by a tf.Module? track [v.value for v in model.variables] too)",
                ))
    return offenders


def _node_name(tensor_name):
    return tensor_name.lstrip("^").split(":")[0]


def _read_saved_model(path):
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.fspath(path)
    saved_model = saved_model_pb2.SavedModel()
    binary, text = os.path.join(path, "saved_model.pb"), os.path.join(path, "saved_model.pbtxt")
    if os.path.exists(binary):
        with open(binary, "rb") as f:
            saved_model.ParseFromString(f.read())
    elif os.path.exists(text):
        with open(text) as f:
            text_format.Parse(f.read(), saved_model)
    else:
        raise ExportError(f"no saved_model.pb in {path}")
    return saved_model


def _check_node(node, where, library):
    op = node.op
    reason = None
    if _attr_true(node.attr.get("_XlaMustCompile")):
        reason = "called with _XlaMustCompile (jit_compile=True): needs XLA at serving time"
    elif op in library:
        return []  # a direct call of a library function; its body is checked on its own
    elif op.startswith("Cudnn"):
        reason = "cuDNN op: runs only on NVIDIA GPUs"
    elif op in _PYTHON_OPS:
        reason = "calls back into Python, which TF Serving does not have"
    elif op.startswith(("Xla", "_Xla")):
        reason = "XLA op: TF Serving runs with XLA compilation off"
    else:
        reason = _kernel_problem(node)
    missing = [f for f in _called_functions(node) if f not in library]
    offenders = [Offender(op, node.name, where, reason)] if reason else []
    offenders += [Offender(op, node.name, where, f"calls function {f!r}, missing from the library") for f in missing]
    return offenders


def _kernel_problem(node):
    from tensorflow.python.framework import op_def_registry

    op_def = op_def_registry.get(node.op)
    if op_def is None:
        return "op not registered in this TensorFlow (a custom op needs a custom model server build)"
    cpu = _cpu_kernels(node.op)
    if not cpu:
        return "no CPU kernel registered"
    defaults = {a.name: a.default_value for a in op_def.attr if a.HasField("default_value")}
    if any(_constraints_hold(k, node.attr, defaults) for k in cpu):
        return None
    dtypes = ", ".join(f"{c.name}={_attr_text(node.attr.get(c.name, defaults.get(c.name)))}" for c in cpu[0].constraint)
    return f"no CPU kernel for {dtypes}"


@functools.lru_cache(maxsize=None)
def _cpu_kernels(op):
    """The KernelDefs registered for `op` on CPU or on any device (ms per call: cached)."""
    from tensorflow.python.framework import kernels

    return tuple(k for k in kernels.get_registered_kernels_for_op(op).kernel if k.device_type in ("CPU", "DEFAULT"))


def _constraints_hold(kernel, attrs, defaults):
    for constraint in kernel.constraint:
        value = attrs.get(constraint.name, defaults.get(constraint.name))
        if value is None:
            continue  # unknown here (e.g. a placeholder attr): give the benefit of the doubt
        allowed = set(constraint.allowed_values.list.type)
        kind = value.WhichOneof("value")
        if kind == "type" and value.type not in allowed:
            return False
        if kind == "list" and any(t not in allowed for t in value.list.type):
            return False
    return True


def _attr_text(value):
    import tensorflow as tf

    if value is None:
        return "?"
    if value.WhichOneof("value") == "type":
        return tf.dtypes.as_dtype(value.type).name
    if value.WhichOneof("value") == "list":
        return "[" + ", ".join(tf.dtypes.as_dtype(t).name for t in value.list.type) + "]"
    return "?"


def _attr_true(value):
    return value is not None and value.WhichOneof("value") == "b" and value.b


def _called_functions(node):
    names = []
    for value in node.attr.values():
        kind = value.WhichOneof("value")
        if kind == "func" and value.func.name:
            names.append(value.func.name)
        elif kind == "list":
            names += [f.name for f in value.list.func if f.name]
    return names


# --------------------------------------------------------------------------- command line


def main(argv=None):
    """`keras-seq export --model PATH --base-path export/NAME [--version N]`."""
    parser = argparse.ArgumentParser(
        prog="keras-seq export",
        description="Export a trained model into a TF Serving model repository (base_path/<version>/), atomically.",
    )
    parser.add_argument("--model", required=True, help="a model directory (keras-seq G2P) or a .keras file")
    parser.add_argument("--base-path", required=True, help="the model's directory in the repository, e.g. export/g2p")
    parser.add_argument("--version", type=int, default=None, help="version number (default: the next one)")
    parser.add_argument("--name", default=None, help="model name written into warmup requests (default: base path's name)")
    args = parser.parse_args(argv)
    try:
        loaded = _load_model_for_export(args.model)
        path = export_saved_model(
            loaded.pop("module"),
            args.base_path,
            version=args.version,
            model_name=args.name,
            **loaded,
        )
    except (ExportError, OSError) as e:
        print(f"keras-seq export: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


def _load_model_for_export(model_path):
    """{"module": ..., and optionally "signatures", "warmup_requests", "assets"} for `model_path`."""
    if os.path.isfile(model_path) and model_path.endswith(".keras"):
        import keras

        _register_keras_seq_objects()
        return {"module": keras.saving.load_model(model_path, safe_mode=True)}
    if not os.path.isdir(model_path):
        raise ExportError(f"--model {model_path!r} is neither a model directory nor a .keras file")
    try:
        from keras_seq.g2p.model import load_for_export
    except ImportError as e:
        raise ExportError(
            f"cannot export the model directory {model_path!r}: keras_seq.g2p.model.load_for_export is not "
            f"available in this build ({e})"
        ) from e
    return _normalize_loaded(load_for_export(model_path))


def _register_keras_seq_objects():
    """Import the keras-seq packages whose classes a .keras file may name, so that
    `load_model(safe_mode=True)` finds them registered (nothing is unpickled)."""
    import importlib

    for name in ("keras_seq.cells", "keras_seq.layers", "keras_seq.models"):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise


def _normalize_loaded(loaded):
    """Accept what `load_for_export` returns: a dict with a "module" key and export_saved_model's
    keyword arguments, a tuple (module, signatures[, warmup_requests[, assets]]), or a module alone
    (its `signatures` and `warmup_requests` attributes, if any, are used)."""
    keys = ("signatures", "warmup_requests", "assets")
    if isinstance(loaded, dict):
        unknown = set(loaded) - {"module", *keys}
        if "module" not in loaded or unknown:
            raise ExportError(f"load_for_export returned a dict with keys {sorted(loaded)}; expected 'module' and {keys}")
        return dict(loaded)
    if isinstance(loaded, (tuple, list)):
        if not 1 <= len(loaded) <= 4:
            raise ExportError("load_for_export returned a tuple of the wrong length")
        return {"module": loaded[0], **dict(zip(keys, loaded[1:]))}
    result = {"module": loaded}
    for key in ("signatures", "warmup_requests"):
        value = getattr(loaded, key, None)
        if value is not None:
            result[key] = value
    return result


if __name__ == "__main__":
    sys.exit(main())
