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
TensorFlow does not know (custom ops), ops without a CPU kernel for their dtypes, and variables the
checkpoint restore op never assigns. The last is what a Keras 3 model held by a `tf.Module` gives
when saved as is: Python loads it, TF Serving's C++ loader fails with "Could not find variable";
`export_saved_model` avoids it by tracking the tf.Variables behind the Keras variables too.

`write_warmup_requests` / `read_warmup_requests` handle `assets.extra/tf_serving_warmup_requests`:
a TFRecord file of `PredictionLog` records that TF Serving replays at load time.

Modules: `repository` (versions, temporaries, atomic publishing, disk space), `saved_model`
(`export_saved_model`), `warmup`, `audit`, `errors`; everything public is re-exported here.

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
import os
import sys

from keras_seq.export.audit import Offender, audit_saved_model, read_saved_model
from keras_seq.export.errors import (
    ExportError,
    InsufficientDiskSpaceError,
    ServabilityError,
    VersionExistsError,
)
from keras_seq.export.repository import (
    DISK_MARGIN_BYTES,
    STALE_AFTER_SECONDS,
    check_disk_space,
    clean_stale_temporaries,
    estimate_size_bytes,
    list_versions,
    next_version,
    parse_version,
)
from keras_seq.export.saved_model import (
    KERAS_VARIABLES_ATTRIBUTE,
    export_saved_model,
    keras_serving_function,
)
from keras_seq.export.warmup import (
    MAX_WARMUP_RECORDS,
    WARMUP_FILE,
    read_warmup_requests,
    run_warmup_requests,
    write_warmup_requests,
)

__all__ = [
    "DISK_MARGIN_BYTES", "KERAS_VARIABLES_ATTRIBUTE", "MAX_WARMUP_RECORDS", "STALE_AFTER_SECONDS", "WARMUP_FILE",
    "ExportError", "InsufficientDiskSpaceError", "Offender", "ServabilityError", "VersionExistsError",
    "audit_saved_model", "check_disk_space", "clean_stale_temporaries", "estimate_size_bytes", "export_saved_model",
    "keras_serving_function", "list_versions", "main", "next_version", "parse_version", "read_saved_model",
    "read_warmup_requests", "run_warmup_requests", "write_warmup_requests",
]


def main(argv=None):
    """`keras-seq export --model PATH --base-path export/NAME [--version N] [--name NAME] [--shards N]`."""
    parser = argparse.ArgumentParser(
        prog="keras-seq export",
        description="Export a trained model into a TF Serving model repository (base_path/<version>/), atomically.",
    )
    parser.add_argument("--model", required=True, help="a model directory (keras-seq G2P) or a .keras file")
    parser.add_argument("--base-path", required=True, help="the model's directory in the repository, e.g. export/g2p")
    parser.add_argument("--version", type=int, default=None, help="version number (default: the next one)")
    parser.add_argument(
        "--name", default=None, help="model name written into warmup requests (default: base path's name)"
    )
    parser.add_argument(
        "--shards", type=int, default=None,
        help="G2P model directories: decode a batch of at least 2*N words as N parts side by side, one core "
        "each (default 2; 1 decodes every batch in one loop)",
    )
    args = parser.parse_args(argv)
    if args.shards is not None and args.shards < 1:
        parser.error(f"--shards must be at least 1, got {args.shards}")
    try:
        loaded = _load_model_for_export(args.model, shards=args.shards)
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


def _load_model_for_export(model_path, shards=None):
    """{"module": ..., and optionally "signatures", "warmup_requests", "assets"} for `model_path`."""
    if os.path.isfile(model_path) and model_path.endswith(".keras"):
        import keras

        if shards is not None:
            raise ExportError("--shards applies to G2P model directories, not to a .keras file")
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
    return _normalize_loaded(load_for_export(model_path, **({} if shards is None else {"shards": shards})))


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
            raise ExportError(
                f"load_for_export returned a dict with keys {sorted(loaded)}; expected 'module' and {keys}"
            )
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
