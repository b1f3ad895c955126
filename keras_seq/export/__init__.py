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

`load_for_export(path)` turns a model into what `export_saved_model` writes: a model directory
of an application that registered itself (`register_model_directory`: G2P, TextSeq2Seq), or a
`.keras` file (an encoder-decoder gets `TokenServingModule`'s decoding signatures, any other model
its forward pass). The general string-in/string-out module for any encoder-decoder is
`keras_seq.export.seq2seq.Seq2SeqServingModule`; this package imports no application.

Modules: `repository` (versions, temporaries, atomic publishing, disk space), `saved_model`
(`export_saved_model`), `seq2seq` (serving modules), `registry`, `warmup`, `audit`, `errors`;
everything public but the serving modules is re-exported here (they need TensorFlow).

Example:

>>> import os, tempfile, numpy as np, tensorflow as tf
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
from keras_seq.export.registry import load_for_export, register_model_directory
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
    "keras_serving_function", "list_versions", "load_for_export", "next_version", "parse_version", "read_saved_model",
    "read_warmup_requests", "register_model_directory", "run_warmup_requests", "write_warmup_requests",
]
