"""TF Serving's model repository on disk, written once for the exporter and the server.

A model's base path holds one child directory per version:

    <base_path>/<version>/saved_model.pb, variables/, assets/, assets.extra/tf_serving_warmup_requests

- A child is a version when absl::SimpleAtoi parses its name as an int64 (`0007` is version 7,
  ` 7 ` too); files and every other name (an export's `.tmp-<version>-<hex>`, `1.5`, `abc`) are
  ignored. Two names for one number (`1` and `01`) keep the first in sorted order, with a warning
  (sources/storage_path/file_system_storage_path_source.cc).
- The warmup file is `<version>/assets.extra/tf_serving_warmup_requests`, a TFRecord file of at
  most 1000 `PredictionLog` records (servables/tensorflow/saved_model_warmup_util.cc).

`keras_seq.export` writes this layout and `keras_seq.serving` reads it; neither imports the other,
both import this module, which imports only the standard library.
"""

import logging
import os
import re

__all__ = [
    "ASSETS_EXTRA_DIR", "MAX_WARMUP_RECORDS", "WARMUP_FILE",
    "list_versions", "parse_version", "warmup_path",
]

log = logging.getLogger(__name__)

# The folder beside the SavedModel for files TF Serving (not the graph) reads.
ASSETS_EXTRA_DIR = "assets.extra"
# The warmup file's name inside ASSETS_EXTRA_DIR.
WARMUP_FILE = "tf_serving_warmup_requests"
# TF Serving refuses a warmup file with more records than this
# (INVALID_ARGUMENT "Number of warmup records exceeds the maximum (1000) at ...").
MAX_WARMUP_RECORDS = 1000

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# absl::SimpleAtoi: ASCII whitespace on both sides, an optional sign, decimal digits only.
_VERSION_NAME = re.compile(r"[ \t\n\v\f\r]*[+-]?[0-9]+[ \t\n\v\f\r]*")


def parse_version(name):
    """The version a directory name stands for, as absl::SimpleAtoi reads it, or None.

    `0001` -> 1, ` 7 ` -> 7, `+7` -> 7, `-3` -> -3 (an int64: what a negative version means is the
    caller's to decide); `1.5`, `abc`, `1e3`, `1_000`, non-ASCII digits, the empty name and numbers
    outside int64 -> None.
    """
    if not _VERSION_NAME.fullmatch(name):
        return None
    value = int(name)
    return value if _INT64_MIN <= value <= _INT64_MAX else None


def list_versions(base_path):
    """{version: directory} of the version directories of `base_path`.

    Only directories count (a file named `3` is not a version); two directories for one version
    (`1` and `01`) keep the first in sorted name order and log a warning, as TF Serving does.

    Raises OSError (FileNotFoundError for a missing `base_path`), as TF Serving's poll does
    ("Could not find base path"): a server must tell "no versions" from "cannot read the folder",
    since a listing that fails must change nothing that is loaded. A caller for whom a missing
    folder means "no versions yet" (an exporter about to create it) catches FileNotFoundError.
    """
    versions = {}
    for entry in sorted(os.listdir(base_path)):
        version = parse_version(entry)
        path = os.path.join(base_path, entry)
        if version is None or not os.path.isdir(path):
            continue
        if version in versions:
            log.warning("Duplicate version directories detected: %s and %s", versions[version], path)
            continue
        versions[version] = path
    return versions


def warmup_path(version_path):
    """The warmup file of the version directory (SavedModel) at `version_path`."""
    return os.path.join(os.fspath(version_path), ASSETS_EXTRA_DIR, WARMUP_FILE)
